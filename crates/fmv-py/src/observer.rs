//! The observer of a run started from Python: progress to an optional callback
//! (`callback(done, total)`, tqdm-friendly), and Ctrl-C. The run itself goes on without the GIL;
//! between batches and steps the observer takes it back, calls the callback and checks for
//! signals. A signal (or an exception raised by the callback) stops the run at the next batch
//! or step, and the error is raised once the run has returned.

use fmv::Event;
use fmv::core::Observer;
use pyo3::prelude::*;

/// Progress and Ctrl-C for a run started from Python.
pub struct PyObserver {
    callback: Option<Py<PyAny>>,
    /// The first Python error seen (a signal, or the callback's exception).
    pub error: Option<PyErr>,
}

impl PyObserver {
    /// An observer calling `callback(done, total)` on progress, if given.
    pub fn new(callback: Option<Py<PyAny>>) -> Self {
        PyObserver {
            callback,
            error: None,
        }
    }

    /// The run's result, or the Python error that stopped it.
    pub fn finish<T>(self, result: PyResult<T>) -> PyResult<T> {
        match self.error {
            Some(e) => Err(e),
            None => result,
        }
    }
}

impl Observer for PyObserver {
    fn on_event(&mut self, event: &Event<'_>) {
        let (done, total) = match event {
            Event::Progress { done, total } | Event::Step { done, total, .. } => (*done, *total),
            _ => return,
        };
        if self.error.is_some() {
            return;
        }
        if let Some(cb) = &self.callback
            && let Err(e) = Python::attach(|py| cb.call1(py, (done, total)).map(drop))
        {
            self.error = Some(e);
        }
    }

    fn should_stop(&mut self) -> bool {
        if self.error.is_none()
            && let Err(e) = Python::attach(|py| py.check_signals())
        {
            self.error = Some(e);
        }
        self.error.is_some()
    }
}
