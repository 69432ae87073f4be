//! The labels every backend puts on the nodes it offers: the backend that
//! offers the node, and its host's operating system and architecture where
//! the backend reports them.

use lepton_core::model::NodeKind;
use lepton_core::{NodeId, NodeSpec, Resources};

/// Node label naming the backend that offers the node (`docker`, `libvirt`,
/// `aws`).
pub const NODE_LABEL_BACKEND: &str = "lepton.backend";
/// Node label holding the operating system of the node's host, when the
/// backend reports it (`linux`).
pub const NODE_LABEL_OS: &str = "lepton.os";
/// Node label holding the processor architecture, when the backend reports
/// it (`x86_64`, `arm64`).
pub const NODE_LABEL_ARCH: &str = "lepton.arch";

/// A node offered by `backend`: of `kind`, labelled
/// [`NODE_LABEL_BACKEND`]`=<backend>`.
pub(crate) fn backend_node(
    backend: &str,
    id: NodeId,
    capacity: Resources,
    kind: NodeKind,
) -> NodeSpec {
    NodeSpec::new(id, capacity)
        .with_kind(kind)
        .with_label(NODE_LABEL_BACKEND, backend)
}

/// `node` with the label `key=value` when the backend reported a value and
/// the node has no `key` label yet (one its owner set wins); none, or an
/// empty one, adds nothing.
#[cfg(any(feature = "docker", feature = "libvirt", feature = "aws"))]
pub(crate) fn with_reported_label(
    mut node: NodeSpec,
    key: &str,
    value: Option<String>,
) -> NodeSpec {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        node.labels.entry(key.to_owned()).or_insert(value);
    }
    node
}

#[cfg(all(test, any(feature = "docker", feature = "libvirt", feature = "aws")))]
mod tests {
    use super::*;

    #[test]
    fn nodes_carry_the_backend_and_only_reported_labels() {
        let node = backend_node("docker", NodeId(1), Resources::new(1, 1), NodeKind::Vm);
        assert_eq!(node.labels[NODE_LABEL_BACKEND], "docker");
        assert_eq!(node.kind, NodeKind::Vm);
        let node = with_reported_label(node, NODE_LABEL_OS, Some(String::new()));
        let node = with_reported_label(node, NODE_LABEL_ARCH, None);
        let node = with_reported_label(node, "x", Some("y".to_owned()));
        assert_eq!(node.labels.len(), 2);
        assert_eq!(node.labels["x"], "y");
        // A label already set wins over a reported one.
        let node = with_reported_label(node, "x", Some("z".to_owned()));
        assert_eq!(node.labels["x"], "y");
    }
}
