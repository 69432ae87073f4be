//! What the host offers: one node, sized from the daemon's system info.

use lepton_core::backend::BackendError;
use lepton_core::{NodeSpec, Resources};

use super::{DockerBackend, BACKEND, MIB};
use crate::shared::node_labels::{with_reported_label, NODE_LABEL_ARCH, NODE_LABEL_OS};

impl DockerBackend {
    /// This host as a node: the one the caller set up, with the host's CPU
    /// count × 1000 and total memory, and its OS, architecture and name
    /// where the caller set none.
    pub(super) async fn host_node(&self) -> Result<NodeSpec, BackendError> {
        let docker = self.client().await?;
        let info = docker
            .info()
            .await
            .map_err(|e| self.error("read system info of", &self.endpoint.to_string(), e))?;
        let cpus = info.ncpu.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        let memory_bytes = info
            .mem_total
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        if cpus == 0 || memory_bytes == 0 {
            return Err(BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: format!("read system info of {}", self.endpoint),
                detail: format!(
                    "the daemon reports NCPU {:?} and MemTotal {:?}",
                    info.ncpu, info.mem_total
                ),
            });
        }
        let mut node = self.node.clone();
        node.capacity = Resources::new(cpus.saturating_mul(1000), memory_bytes / MIB);
        let node = with_reported_label(node, NODE_LABEL_OS, info.os_type);
        let mut node = with_reported_label(node, NODE_LABEL_ARCH, info.architecture);
        if node.name.is_none() {
            node.name = info.name.filter(|s| !s.is_empty());
        }
        Ok(node)
    }
}
