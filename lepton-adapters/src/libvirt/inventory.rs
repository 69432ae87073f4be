//! What the hypervisor offers: one node, sized from libvirt's node info.

use lepton_core::backend::BackendError;
use lepton_core::model::NodeKind;
use lepton_core::{NodeSpec, Resources};
use virt::error::Error as VirtError;

use super::{LibvirtBackend, BACKEND};
use crate::shared::node_labels::{backend_node, with_reported_label};

impl LibvirtBackend {
    /// This hypervisor as a node: its CPU count × 1000 and memory, labelled
    /// with its driver, model and (when it says) version.
    pub(super) async fn hypervisor_node(&self) -> Result<NodeSpec, BackendError> {
        let node = self.node;
        self.call("inventory", move |shared, connection| {
            let fail = |e: VirtError| shared.error("inventory", "node", &e);
            let info = connection.node_info().map_err(fail)?;
            let driver = connection.driver_type().map_err(fail)?;
            let capacity = Resources::new(
                u64::from(info.cpus).saturating_mul(1000),
                info.memory / 1024,
            );
            let spec = backend_node(BACKEND, node, capacity, NodeKind::Server)
                .with_name(
                    connection
                        .hostname()
                        .unwrap_or_else(|_| shared.shown_uri.clone()),
                )
                .with_label("libvirt.hypervisor", driver.to_lowercase())
                .with_label("libvirt.arch", info.model);
            let version = connection.hyp_version().ok().map(version_string);
            Ok(with_reported_label(
                spec,
                "libvirt.hypervisor-version",
                version,
            ))
        })
        .await
    }
}

/// libvirt's version number (major × 1 000 000 + minor × 1000 + release)
/// as `major.minor.release`.
fn version_string(version: u32) -> String {
    format!(
        "{}.{}.{}",
        version / 1_000_000,
        version / 1000 % 1000,
        version % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_dotted() {
        assert_eq!(version_string(9_000_000), "9.0.0");
        assert_eq!(version_string(7_002_022), "7.2.22");
    }
}
