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

use crate::errors::ToPyResult;

/// Resizes a `height` x `width` float32 map (little-endian bytes) to `out_height` x
/// `out_width` as OpenCV's `INTER_LINEAR` does, the original's overlays' resize.
#[pyfunction]
fn resize_map(
    map: Vec<u8>,
    height: usize,
    width: usize,
    out_height: usize,
    out_width: usize,
) -> PyResult<Vec<u8>> {
    let values: Vec<f32> = map
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let out =
        fmv::render::resize_map_bilinear(&values, width, height, out_width, out_height).py_err()?;
    Ok(out.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// The compiled half of the `fmv` package.
#[pymodule]
fn _fmv(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<visualizer::PyVisualizer>()?;
    m.add_function(wrap_pyfunction!(resize_map, m)?)?;
    m.add_function(wrap_pyfunction!(model::check_device, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
