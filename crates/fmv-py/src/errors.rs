//! fmv's errors as Python exceptions, typed by kind: `FmvError`, and under it `BadCheckpoint`
//! (weights that cannot be read or used), `BadInput` (images, folders and files of settings),
//! `BadConfig` (a setting outside its range, an unknown layer or channel) and `OutOfMemory`. A
//! run stopped by Ctrl-C raises `KeyboardInterrupt`. The messages are the libraries'.

use fmv::core::Error as CoreError;
use fmv::models::Error as ModelError;
use fmv::report::Error as ReportError;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;

pyo3::create_exception!(_fmv, FmvError, PyException, "Any error of fmv.");
pyo3::create_exception!(
    _fmv,
    BadCheckpoint,
    FmvError,
    "Weights that cannot be read or do not make a network fmv knows."
);
pyo3::create_exception!(
    _fmv,
    BadInput,
    FmvError,
    "An image, a folder or a file of settings that cannot be used."
);
pyo3::create_exception!(
    _fmv,
    BadConfig,
    FmvError,
    "A setting outside its range, an unknown layer or channel."
);
pyo3::create_exception!(
    _fmv,
    OutOfMemory,
    FmvError,
    "A run whose maps alone would exceed the memory available."
);

/// Adds the exceptions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FmvError", py.get_type::<FmvError>())?;
    m.add("BadCheckpoint", py.get_type::<BadCheckpoint>())?;
    m.add("BadInput", py.get_type::<BadInput>())?;
    m.add("BadConfig", py.get_type::<BadConfig>())?;
    m.add("OutOfMemory", py.get_type::<OutOfMemory>())?;
    Ok(())
}

/// A network's error as its exception.
pub fn model_error(e: &ModelError) -> PyErr {
    let msg = e.to_string();
    match e {
        ModelError::UnknownLayer { .. }
        | ModelError::LayerIndexOutOfRange { .. }
        | ModelError::UnknownArch { .. }
        | ModelError::DeviceUnavailable { .. }
        | ModelError::BadInput { .. } => BadConfig::new_err(msg),
        _ => BadCheckpoint::new_err(msg),
    }
}

/// An analysis's error as its exception.
pub fn core_error(e: &CoreError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreError::Model(m) => model_error(m),
        CoreError::Stopped => PyKeyboardInterrupt::new_err("stopped"),
        CoreError::InvalidConfig { .. } | CoreError::ChannelOutOfRange { .. } => {
            BadConfig::new_err(msg)
        }
        CoreError::OutOfMemory { .. } => OutOfMemory::new_err(msg),
        _ => BadInput::new_err(msg),
    }
}

/// A report's error as its exception.
pub fn report_error(e: &ReportError) -> PyErr {
    let msg = e.to_string();
    match e {
        ReportError::Analysis(c) => core_error(c),
        ReportError::ClassesDiffer { .. } | ReportError::Unreadable { .. } => {
            BadInput::new_err(msg)
        }
        ReportError::LabelsDiffer { .. } => BadConfig::new_err(msg),
        _ => FmvError::new_err(msg),
    }
}

/// Turns any of fmv's results into a Python one.
pub trait ToPyResult<T> {
    /// The value, or the error as its exception.
    fn py_err(self) -> PyResult<T>;
}

impl<T> ToPyResult<T> for Result<T, CoreError> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(|e| core_error(&e))
    }
}

impl<T> ToPyResult<T> for Result<T, ModelError> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(|e| model_error(&e))
    }
}

impl<T> ToPyResult<T> for Result<T, ReportError> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(|e| report_error(&e))
    }
}

impl<T> ToPyResult<T> for Result<T, serde_json::Error> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(|e| FmvError::new_err(e.to_string()))
    }
}

impl<T> ToPyResult<T> for Result<T, fmv::render::RenderError> {
    /// A picture's inputs that do not fit (a map of the wrong size) are the caller's.
    fn py_err(self) -> PyResult<T> {
        self.map_err(|e| BadConfig::new_err(e.to_string()))
    }
}
