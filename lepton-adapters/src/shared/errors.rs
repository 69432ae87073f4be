//! The errors the backends build alike: a value refused before anything is
//! sent, and an SDK error's chain of messages, redacted, as one text.

use lepton_core::backend::BackendError;

#[cfg(any(feature = "docker", feature = "aws"))]
use crate::shared::redact::redact;

/// A value from the caller that `backend` refuses before sending anything.
pub(crate) fn invalid(
    backend: &str,
    what: &'static str,
    value: impl Into<String>,
    why: &'static str,
) -> BackendError {
    BackendError::Invalid {
        backend: backend.to_owned(),
        what,
        value: value.into(),
        why,
    }
}

/// The error and its sources' messages, joined by `: `, empty and repeated
/// messages skipped, [redacted](redact). `Debug` forms are left out: they
/// are noisy and may show more of a request than a log should. The SDKs'
/// wrappers often say only "dispatch failure" and keep the cause in the
/// chain.
#[cfg(any(feature = "docker", feature = "aws"))]
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !message.is_empty() && !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    redact(&text)
}

#[cfg(all(test, any(feature = "docker", feature = "aws")))]
mod tests {
    use super::*;

    #[test]
    fn error_chains_join_messages_without_debug_forms() {
        #[derive(Debug)]
        struct Dispatch(std::io::Error);
        impl std::fmt::Display for Dispatch {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Dispatch {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused to http://u:p@h",
        );
        assert_eq!(
            error_chain(&Dispatch(refused)),
            "dispatch failure: Connection refused to http://***@h"
        );
        let empty = std::io::Error::other("");
        assert_eq!(error_chain(&Dispatch(empty)), "dispatch failure");
    }
}
