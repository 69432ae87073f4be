//! Helpers for the backends' unit tests.

use lepton_core::backend::BackendError;

/// Fails unless `result` is [`BackendError::Invalid`] about `what`, which
/// is never worth retrying.
pub(crate) fn assert_invalid<T: std::fmt::Debug>(result: Result<T, BackendError>, what: &str) {
    match &result {
        Err(error @ BackendError::Invalid { what: actual, .. }) => {
            assert_eq!(*actual, what);
            assert!(!error.is_retryable(), "{error:?}");
        }
        other => panic!("expected Invalid {what}, got {other:?}"),
    }
}

/// A runtime for a test that drives a backend's futures.
#[cfg(any(feature = "docker", feature = "aws"))]
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
