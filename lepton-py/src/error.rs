//! Rust errors as Python exceptions: the message is the Rust error's.

use lepton::sim::Error;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::{PyErr, PyResult};

/// `OSError` for a file that cannot be read, `RuntimeError` for a step
/// without an episode, `ValueError` for everything else (bad input: an
/// infeasible action, a malformed file, an out-of-range setting).
pub(crate) fn to_py(err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::Io { .. } => PyOSError::new_err(message),
        Error::NoEpisode => PyRuntimeError::new_err(message),
        _ => PyValueError::new_err(message),
    }
}

/// `value` as JSON, the form the Python half reads results in (an
/// encoding failure, which Lepton's types never cause, is a
/// `RuntimeError`).
pub(crate) fn to_json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}
