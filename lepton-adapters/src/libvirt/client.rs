//! The connection to the hypervisor and the thread each blocking libvirt
//! call runs on, and how libvirt's errors become [`BackendError`]s with
//! the URI's credentials scrubbed from them.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, Once, PoisonError};
use std::time::Duration;

use lepton_core::backend::BackendError;
use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::{Error as VirtError, ErrorDomain, ErrorNumber};

use super::usage::CpuSample;
use super::{LibvirtBackend, BACKEND};
use crate::shared::redact::{redact, redact_url, userinfo, MASK};
use crate::shared::sync::lock;

/// What the blocking calls share with the backend.
pub(super) struct Shared {
    /// The URI to (re)open; `None` for a connection the caller gave.
    uri: Option<String>,
    /// The URI as errors show it, credentials removed.
    pub(super) shown_uri: String,
    /// The `user:password` part of the URI, scrubbed from libvirt's messages.
    userinfo: Option<String>,
    connection: Mutex<Slot>,
    /// Signalled when an opening attempt ends.
    opened: Condvar,
    /// The last CPU-time reading of each domain, for rates.
    pub(super) cpu_samples: Mutex<HashMap<String, CpuSample>>,
}

/// The backend's connection.
enum Slot {
    /// None yet, or the last one broke.
    Closed,
    /// A call is opening it; the others wait for it.
    Opening,
    Open(Connect),
}

impl LibvirtBackend {
    /// Runs `call` with the connection on a thread of its own, under the
    /// timeout.
    ///
    /// A thread rather than tokio's blocking pool: a call stuck in libvirt
    /// (a hypervisor that accepted the connection and went silent) must not
    /// hold up the runtime's shutdown, which waits for its blocking tasks.
    /// A call that timed out is abandoned; its thread ends when libvirt
    /// returns.
    ///
    /// # Panics
    /// Outside a tokio runtime with time enabled.
    pub(super) async fn call<T, F>(
        &self,
        operation: &'static str,
        call: F,
    ) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Shared, &Connect) -> Result<T, BackendError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let patience = self.timeout;
        let (done, result) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("libvirt-{operation}"))
            .spawn(move || {
                let outcome = shared.connection(patience).and_then(|connection| {
                    let outcome = call(&shared, &connection);
                    if matches!(outcome, Err(BackendError::Unreachable { .. })) {
                        shared.forget_connection();
                    }
                    outcome
                });
                // The caller may have given up waiting: nothing to do then.
                let _ = done.send(outcome);
            });
        if let Err(error) = spawned {
            return Err(BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: operation.to_owned(),
                detail: format!("cannot start a thread for the libvirt call: {error}"),
            });
        }
        match tokio::time::timeout(self.timeout, result).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: operation.to_owned(),
                detail: "the libvirt call panicked".to_owned(),
            }),
            Err(_elapsed) => {
                // A stuck connection should not be handed to the next call.
                self.shared.forget_connection();
                Err(BackendError::Timeout {
                    backend: BACKEND.to_owned(),
                    operation: operation.to_owned(),
                })
            }
        }
    }
}

impl Shared {
    pub(super) fn new(uri: Option<String>, shown: &str, connection: Option<Connect>) -> Self {
        Shared {
            uri,
            shown_uri: redact_url(shown),
            userinfo: userinfo(shown).map(str::to_owned),
            connection: Mutex::new(connection.map_or(Slot::Closed, Slot::Open)),
            opened: Condvar::new(),
            cpu_samples: Mutex::new(HashMap::new()),
        }
    }

    /// The connection, opened now if there is none. While one call opens
    /// it, the others wait up to `patience` for the outcome, so that a
    /// hypervisor that never answers ties up one thread, not one per call.
    pub(super) fn connection(&self, patience: Duration) -> Result<Connect, BackendError> {
        let mut slot = lock(&self.connection);
        loop {
            match &*slot {
                Slot::Open(connection) => return Ok(connection.clone()),
                Slot::Closed => break,
                Slot::Opening => {
                    let (guard, waited) = self
                        .opened
                        .wait_timeout(slot, patience)
                        .unwrap_or_else(PoisonError::into_inner);
                    slot = guard;
                    if waited.timed_out() && matches!(*slot, Slot::Opening) {
                        return Err(BackendError::Timeout {
                            backend: BACKEND.to_owned(),
                            operation: "connect".to_owned(),
                        });
                    }
                }
            }
        }
        let Some(uri) = &self.uri else {
            // Only a URI-built backend ever closes the slot.
            return Err(self.unreachable("the connection was closed".to_owned()));
        };
        *slot = Slot::Opening;
        drop(slot);
        let opened = Connect::open(Some(uri));
        let mut slot = lock(&self.connection);
        let outcome = match opened {
            Ok(connection) => {
                *slot = Slot::Open(connection.clone());
                Ok(connection)
            }
            Err(e) => {
                *slot = Slot::Closed;
                Err(self.open_error(&e))
            }
        };
        self.opened.notify_all();
        outcome
    }

    /// Drops a connection found broken, so that the next call reopens it
    /// (only when the backend was built from a URI; an opening attempt in
    /// progress is left to finish).
    fn forget_connection(&self) {
        if self.uri.is_some() {
            let mut slot = lock(&self.connection);
            if matches!(*slot, Slot::Open(_)) {
                let broken = std::mem::replace(&mut *slot, Slot::Closed);
                drop(slot);
                // Closing may talk to the hypervisor: not under the lock.
                drop(broken);
            }
        }
    }

    /// `error` with this URI's credentials removed from its detail too (for
    /// an error that involved two hypervisors).
    pub(super) fn scrub_error(&self, mut error: BackendError) -> BackendError {
        if let BackendError::Unreachable { detail, .. } | BackendError::Rejected { detail, .. } =
            &mut error
        {
            *detail = self.scrub(detail);
        }
        error
    }

    /// libvirt's message with this URI's credentials removed wherever they
    /// stand (libvirt may quote the user and password alone), then
    /// [redacted](redact) like any other text.
    fn scrub(&self, message: &str) -> String {
        let mut message = message.to_owned();
        if let Some(uri) = &self.uri {
            message = message.replace(uri.as_str(), &self.shown_uri);
        }
        if let Some(userinfo) = self.userinfo.as_deref().filter(|u| !u.is_empty()) {
            message = message.replace(userinfo, MASK);
        }
        redact(&message)
    }

    fn unreachable(&self, detail: String) -> BackendError {
        BackendError::Unreachable {
            backend: BACKEND.to_owned(),
            detail: format!("{}: {detail}", self.shown_uri),
        }
    }

    /// An error from opening the connection.
    fn open_error(&self, error: &VirtError) -> BackendError {
        match error.code().known() {
            Some(ErrorNumber::OperationTimeout) => BackendError::Timeout {
                backend: BACKEND.to_owned(),
                operation: "connect".to_owned(),
            },
            Some(
                ErrorNumber::NoConnect
                | ErrorNumber::SystemError
                | ErrorNumber::Rpc
                | ErrorNumber::AuthUnavailable,
            ) => self.unreachable(self.scrub(error.message())),
            _ => BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: "connect".to_owned(),
                detail: format!("{}: {}", self.shown_uri, self.scrub(error.message())),
            },
        }
    }

    /// An error from `operation` on an open connection; `what` names the
    /// object looked for, for `NotFound`.
    pub(super) fn error(&self, operation: &str, what: &str, error: &VirtError) -> BackendError {
        let lost_connection = error.domain().is(ErrorDomain::Rpc)
            || error.domain().is(ErrorDomain::Remote)
            || error.code().is(ErrorNumber::InvalidConn)
            || error.code().is(ErrorNumber::NoConnect);
        match error.code().known() {
            Some(ErrorNumber::NoDomain) => BackendError::NotFound {
                backend: BACKEND.to_owned(),
                what: what.to_owned(),
            },
            Some(ErrorNumber::OperationTimeout) => BackendError::Timeout {
                backend: BACKEND.to_owned(),
                operation: operation.to_owned(),
            },
            Some(ErrorNumber::Rpc) => self.unreachable(self.scrub(error.message())),
            Some(ErrorNumber::SystemError) if lost_connection => {
                self.unreachable(self.scrub(error.message()))
            }
            _ if lost_connection => self.unreachable(self.scrub(error.message())),
            _ => BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: operation.to_owned(),
                detail: self.scrub(error.message()),
            },
        }
    }

    /// The domain named `name`, `None` if there is none.
    pub(super) fn lookup(
        &self,
        connection: &Connect,
        operation: &str,
        name: &str,
    ) -> Result<Option<Domain>, BackendError> {
        match connection.lookup_domain_by_name(name) {
            Ok(domain) => Ok(Some(domain)),
            Err(e) if e.code().is(ErrorNumber::NoDomain) => Ok(None),
            Err(e) => Err(self.error(operation, &format!("domain {name}"), &e)),
        }
    }
}

/// libvirt prints every error to stderr by default; errors come back as
/// values anyway. The handler is process-wide, so this is done once.
pub(super) fn quiet_libvirt() {
    static QUIET: Once = Once::new();
    QUIET.call_once(virt::error::clear_error_callback);
}

#[cfg(test)]
mod tests {
    use lepton_core::NodeId;

    use super::*;

    #[test]
    fn libvirt_messages_are_scrubbed() {
        let backend = LibvirtBackend::new("qemu+tcp://bob:s3cret@nowhere/system", NodeId(1));
        let scrubbed = backend
            .shared
            .scrub("cannot reach qemu+tcp://bob:s3cret@nowhere/system as bob:s3cret");
        assert_eq!(
            scrubbed,
            "cannot reach qemu+tcp://***@nowhere/system as ***"
        );
        assert!(!format!("{backend:?}").contains("s3cret"));
        assert_eq!(backend.uri(), "qemu+tcp://***@nowhere/system");
    }
}
