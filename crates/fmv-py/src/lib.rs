//! The Rust half of the `fmv` Python package: the module `fmv._fmv`, which the Python half
//! (`python/fmv/`) wraps into a Pythonic API and the original's.
//!
//! Every analysis returns its result as the JSON document the CLI prints (`fmv rank --json`,
//! …), which the Python half decodes: a Python call and the matching command give the same
//! numbers by construction. Images travel as raw RGB bytes with their size. Heavy calls release
//! the GIL; between batches and steps they take it back to report progress to an optional
//! callback and to check for Ctrl-C, which stops the run and raises `KeyboardInterrupt`.

mod errors;
mod model;
mod observer;
mod visualizer;

use pyo3::prelude::*;

/// The compiled half of the `fmv` package.
#[pymodule]
fn _fmv(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<visualizer::PyVisualizer>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
