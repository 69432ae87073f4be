//! The interface a backend implements so that Lepton can run tasks on it:
//! Docker hosts, hypervisors, a cloud API.
//!
//! A backend reports its nodes ([`inventory`](Backend::inventory)), starts a
//! [`Run`] on a node ([`launch`](Backend::launch), returning a [`Handle`]),
//! stops it, and tells how it is doing ([`status`](Backend::status), polled
//! by the control loop). It tags what it starts with the run, so that after
//! a restart [`running`](Backend::running) finds everything again: no
//! orphans, and launching a run that already exists returns the existing
//! handle instead of starting a second copy.
//!
//! The trait is async (through `async-trait`) but ties Lepton's core to no
//! runtime; the adapters and the control loop bring tokio.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::cluster::GpuSlots;
use crate::node::{NodeId, NodeSpec};
use crate::task::{Run, TaskSpec};

/// What the backend is asked to start: run `run` of `task` on `node`.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The run (task and attempt), to tag what is started.
    pub run: Run,
    /// The node chosen.
    pub node: NodeId,
    /// The task, with its request (for limits) and `config` (what to run).
    pub task: TaskSpec,
    /// GPU indexes on the node.
    pub gpus: GpuSlots,
}

/// A run as a backend knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Handle {
    /// The run.
    pub run: Run,
    /// The node it runs on.
    pub node: NodeId,
    /// The backend's own id (container id, domain name, instance id).
    pub id: String,
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {} ({})", self.run, self.node, self.id)
    }
}

/// How a run is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum RunStatus {
    /// Created, not running yet.
    Starting,
    /// Running.
    Running,
    /// Ended by itself with this exit code (0 is success).
    Exited {
        /// The exit code.
        code: i64,
    },
    /// Ended abnormally: killed from outside, crashed, lost with its host.
    Failed {
        /// What the backend said.
        reason: String,
    },
    /// The backend no longer knows it.
    Gone,
    /// Recorded, but its process was never started: the launch was cut
    /// short (the service crashed in between). Nothing of the task ran,
    /// so the controller queues it again without charging its budget.
    NeverStarted,
}

/// Resource usage of a run, where the backend exposes it (`None` where not).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// CPU in use, milli-cores.
    pub cpu_milli: Option<u64>,
    /// Memory in use, MiB.
    pub memory_mib: Option<u64>,
    /// Bytes received over the network since start.
    pub network_rx_bytes: Option<u64>,
    /// Bytes sent over the network since start.
    pub network_tx_bytes: Option<u64>,
    /// Bytes read from storage since start.
    pub storage_read_bytes: Option<u64>,
    /// Bytes written to storage since start.
    pub storage_write_bytes: Option<u64>,
}

impl Usage {
    /// Adds `other`'s figures to these (a figure stays `None` only when
    /// both are): the usage of a node from that of its runs.
    pub fn accumulate(&mut self, other: &Usage) {
        let add = |total: &mut Option<u64>, more: Option<u64>| {
            if let Some(more) = more {
                *total = Some(total.unwrap_or(0).saturating_add(more));
            }
        };
        add(&mut self.cpu_milli, other.cpu_milli);
        add(&mut self.memory_mib, other.memory_mib);
        add(&mut self.network_rx_bytes, other.network_rx_bytes);
        add(&mut self.network_tx_bytes, other.network_tx_bytes);
        add(&mut self.storage_read_bytes, other.storage_read_bytes);
        add(&mut self.storage_write_bytes, other.storage_write_bytes);
    }
}

/// What went wrong talking to a backend. [`is_retryable`](Self::is_retryable)
/// says whether trying again later can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The server could not be reached (connection refused, socket gone).
    #[error("{backend}: server unreachable: {detail}")]
    Unreachable {
        /// The backend's name.
        backend: String,
        /// What failed.
        detail: String,
    },
    /// The server did not answer in time.
    #[error("{backend}: {operation} timed out")]
    Timeout {
        /// The backend's name.
        backend: String,
        /// What was asked.
        operation: String,
    },
    /// The server refused the request; repeating it will not help.
    #[error("{backend}: {operation} refused: {detail}")]
    Rejected {
        /// The backend's name.
        backend: String,
        /// What was asked.
        operation: String,
        /// What the server said.
        detail: String,
    },
    /// The server does not know this run or node.
    #[error("{backend}: {what} not found")]
    NotFound {
        /// The backend's name.
        backend: String,
        /// What was looked for.
        what: String,
    },
    /// The backend cannot do this (live migration, usage figures).
    #[error("{backend} does not support {operation}")]
    Unsupported {
        /// The backend's name.
        backend: String,
        /// What was asked.
        operation: &'static str,
    },
    /// A value from the task or node cannot be used safely in a name,
    /// label, XML document or API path.
    #[error("{backend}: invalid {what} {value:?}: {why}")]
    Invalid {
        /// The backend's name.
        backend: String,
        /// Which value.
        what: &'static str,
        /// The value.
        value: String,
        /// Why it is refused.
        why: &'static str,
    },
}

impl BackendError {
    /// True when the same request may succeed later (the server was
    /// unreachable or slow); false when it never will.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BackendError::Unreachable { .. } | BackendError::Timeout { .. }
        )
    }
}

/// A backend: where Lepton's decisions run.
#[async_trait]
pub trait Backend: Send + Sync {
    /// A short name for logs and errors (`docker`, `libvirt`, `aws`).
    fn name(&self) -> &str;

    /// The nodes this backend offers, with capacity, labels, kind and price.
    async fn inventory(&self) -> Result<Vec<NodeSpec>, BackendError>;

    /// Refuses a task this backend could never run, whatever the state of
    /// the cluster: a config it cannot launch (no `command`, no `image`),
    /// GPUs it cannot attach, a request larger than any node it will ever
    /// offer. A service checks submissions with it, so that such a task is
    /// refused at once rather than accepted and failed (or left waiting)
    /// later. By default every task is accepted.
    ///
    /// # Errors
    /// [`BackendError::Invalid`] or [`BackendError::Unsupported`], naming
    /// what the task cannot have.
    fn validate(&self, _task: &TaskSpec) -> Result<(), BackendError> {
        Ok(())
    }

    /// Starts a run. Launching a run that already exists returns its handle
    /// and starts nothing.
    async fn launch(&self, launch: &Launch) -> Result<Handle, BackendError>;

    /// Stops a run and removes what it left. Stopping a run that is already
    /// gone succeeds.
    async fn stop(&self, handle: &Handle) -> Result<(), BackendError>;

    /// How a run is doing.
    async fn status(&self, handle: &Handle) -> Result<RunStatus, BackendError>;

    /// Every run this backend holds for Lepton, found by its tags: what a
    /// control loop adopts after a restart.
    async fn running(&self) -> Result<Vec<Handle>, BackendError>;

    /// The run's resource usage.
    async fn usage(&self, handle: &Handle) -> Result<Usage, BackendError> {
        let _ = handle;
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "usage",
        })
    }

    /// Whether [`migrate`](Self::migrate) can move a live run of this
    /// backend to node `to` (which may belong to another backend: a
    /// hypervisor migrates to its peers).
    fn can_migrate_to(&self, to: NodeId) -> bool {
        let _ = to;
        false
    }

    /// Moves the live run of `handle` to `to.node`, where it continues as
    /// run `to.run` without restarting, and returns its new handle. When
    /// this fails the run is where it was (or gone), never on both nodes;
    /// the caller then stops it and launches `to` afresh.
    async fn migrate(&self, handle: &Handle, to: &Launch) -> Result<Handle, BackendError> {
        let _ = (handle, to);
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "live migration",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_accumulates_what_is_known() {
        let mut total = Usage::default();
        total.accumulate(&Usage {
            cpu_milli: Some(300),
            memory_mib: Some(64),
            ..Usage::default()
        });
        total.accumulate(&Usage {
            cpu_milli: Some(200),
            network_rx_bytes: Some(10),
            ..Usage::default()
        });
        assert_eq!(total.cpu_milli, Some(500));
        assert_eq!(total.memory_mib, Some(64));
        assert_eq!(total.network_rx_bytes, Some(10));
        assert_eq!(total.storage_read_bytes, None);
    }

    #[test]
    fn only_unreachable_and_timeout_are_retryable() {
        let backend = "b".to_owned();
        let unreachable = BackendError::Unreachable {
            backend: backend.clone(),
            detail: "refused".into(),
        };
        let rejected = BackendError::Rejected {
            backend,
            operation: "launch".into(),
            detail: "no such image".into(),
        };
        assert!(unreachable.is_retryable());
        assert!(!rejected.is_retryable());
        assert_eq!(rejected.to_string(), "b: launch refused: no such image");
    }
}
