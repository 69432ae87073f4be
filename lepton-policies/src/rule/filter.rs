//! Filters: which nodes a rules file lets a task run on.

use lepton_core::cluster::ClusterNode;
use lepton_core::model::{Labels, NodeKind};
use lepton_core::{Misfit, TaskSpec};

use crate::greedy::usage_after;

/// One condition a node must meet; every filter of a rules file must pass.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Filter {
    /// The node has every one of these labels, with these values.
    RequireLabel(Labels),
    /// The node has none of these labels with these values.
    ForbidLabel(Labels),
    /// The node's use of `resource` after placement is at most `max`
    /// (0.0..=1.0); a node without that resource passes.
    MaxUtilization {
        /// Which resource.
        resource: Utilized,
        /// The largest fraction allowed.
        max: f64,
    },
    /// The node is one of these kinds.
    NodeKind(Vec<NodeKind>),
    /// The node is in one of these zones (a node without a zone fails).
    Zone(Vec<String>),
}

/// A resource whose utilization a filter caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Utilized {
    /// CPU.
    Cpu,
    /// Memory.
    Memory,
    /// GPU, in milli-GPUs over all the node's GPUs.
    Gpu,
}

impl Filter {
    /// Whether `node` may take `task` as far as this filter is concerned;
    /// a refusal names the rules file's key. Refusals are borrowed text,
    /// so refusing costs no allocation.
    pub(super) fn check(&self, task: &TaskSpec, node: &ClusterNode) -> Result<(), Misfit> {
        let spec = node.spec();
        let has = |(key, value): (&String, &String)| spec.labels.get(key) == Some(value);
        let (admitted, reason) = match self {
            Filter::RequireLabel(labels) => (
                labels.iter().all(has),
                "a label the rules' require_label asks for is missing",
            ),
            Filter::ForbidLabel(labels) => (
                !labels.iter().any(has),
                "it has a label the rules' forbid_label forbids",
            ),
            Filter::MaxUtilization { resource, max } => {
                let usage = usage_after(task, node);
                let (fraction, reason) = match resource {
                    Utilized::Cpu => (
                        usage.cpu,
                        "its CPU would be used beyond the rules' max_cpu_utilization",
                    ),
                    Utilized::Memory => (
                        usage.memory,
                        "its memory would be used beyond the rules' max_memory_utilization",
                    ),
                    Utilized::Gpu => (
                        usage.gpu,
                        "its GPUs would be used beyond the rules' max_gpu_utilization",
                    ),
                };
                (fraction.is_none_or(|fraction| fraction <= *max), reason)
            }
            Filter::NodeKind(kinds) => (
                kinds.contains(&spec.kind),
                "its kind is not one of the rules' node_kind",
            ),
            Filter::Zone(zones) => (
                spec.zone.as_ref().is_some_and(|zone| zones.contains(zone)),
                "its zone is not one of the rules' zone",
            ),
        };
        if admitted {
            Ok(())
        } else {
            Err(Misfit::Policy(reason.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use lepton_core::{
        ClusterState, GpuRequest, Gpus, NodeId, NodeSpec, Placement, Resources, TaskId,
    };

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// One node of 8 cores, 8 GiB and 4 GPUs, labelled zone=a and
    /// disk=ssd, a VM in zone eu-1, with 2 cores, 1 GiB and one GPU in use.
    fn node() -> ClusterState {
        let mut cluster = ClusterState::new();
        let spec = NodeSpec::new(NodeId(1), Resources::new(8_000, 8_192))
            .with_gpus(Gpus::new("T4", 4))
            .with_label("zone", "a")
            .with_label("disk", "ssd")
            .with_kind(NodeKind::Vm)
            .with_zone("eu-1");
        cluster.add_node(spec).unwrap();
        let busy =
            TaskSpec::new(TaskId(100), Resources::new(2_000, 1_024)).with_gpu(GpuRequest::whole(1));
        cluster.reserve(&busy, &Placement::on(NodeId(1))).unwrap();
        cluster
    }

    fn task(cpu_milli: u64, memory_mib: u64, gpu: GpuRequest) -> TaskSpec {
        TaskSpec::new(TaskId(1), Resources::new(cpu_milli, memory_mib)).with_gpu(gpu)
    }

    fn admits(filter: Filter, task: &TaskSpec) -> bool {
        let cluster = node();
        filter.check(task, cluster.node(NodeId(1)).unwrap()).is_ok()
    }

    #[test]
    fn require_label_needs_every_pair() {
        let t = task(1_000, 1_024, GpuRequest::NONE);
        assert!(admits(Filter::RequireLabel(labels(&[("zone", "a")])), &t));
        assert!(admits(
            Filter::RequireLabel(labels(&[("zone", "a"), ("disk", "ssd")])),
            &t
        ));
        assert!(!admits(
            Filter::RequireLabel(labels(&[("zone", "a"), ("disk", "hdd")])),
            &t
        ));
        assert!(!admits(Filter::RequireLabel(labels(&[("rack", "1")])), &t));
        assert!(admits(Filter::RequireLabel(Labels::new()), &t));
    }

    #[test]
    fn forbid_label_rejects_any_pair() {
        let t = task(1_000, 1_024, GpuRequest::NONE);
        assert!(!admits(Filter::ForbidLabel(labels(&[("disk", "ssd")])), &t));
        assert!(!admits(
            Filter::ForbidLabel(labels(&[("disk", "hdd"), ("zone", "a")])),
            &t
        ));
        // Same key, other value: allowed.
        assert!(admits(Filter::ForbidLabel(labels(&[("zone", "b")])), &t));
        assert!(admits(Filter::ForbidLabel(labels(&[("rack", "1")])), &t));
    }

    #[test]
    fn utilization_caps_count_the_task_being_placed() {
        let cpu = |max| Filter::MaxUtilization {
            resource: Utilized::Cpu,
            max,
        };
        // 2000 used + 4000 asked of 8000 = 0.75.
        let t = task(4_000, 1_024, GpuRequest::NONE);
        assert!(admits(cpu(0.75), &t));
        assert!(!admits(cpu(0.7), &t));
        // Memory: (1024 + 3072) / 8192 = 0.5.
        let memory = |max| Filter::MaxUtilization {
            resource: Utilized::Memory,
            max,
        };
        let t = task(1_000, 3_072, GpuRequest::NONE);
        assert!(admits(memory(0.5), &t));
        assert!(!admits(memory(0.49), &t));
        // GPU: 1000 used + 2000 asked of 4000 = 0.75.
        let gpu = |max| Filter::MaxUtilization {
            resource: Utilized::Gpu,
            max,
        };
        let t = task(1_000, 1_024, GpuRequest::whole(2));
        assert!(admits(gpu(0.75), &t));
        assert!(!admits(gpu(0.5), &t));
        // A CPU-only task still sees the GPU already in use: 0.25.
        assert!(!admits(gpu(0.2), &task(1_000, 1_024, GpuRequest::NONE)));
    }

    #[test]
    fn a_node_without_the_resource_passes_its_cap() {
        let mut cluster = ClusterState::new();
        cluster
            .add_node(NodeSpec::new(NodeId(1), Resources::new(8_000, 8_192)))
            .unwrap();
        let filter = Filter::MaxUtilization {
            resource: Utilized::Gpu,
            max: 0.0,
        };
        let t = task(1_000, 1_024, GpuRequest::NONE);
        assert!(filter.check(&t, cluster.node(NodeId(1)).unwrap()).is_ok());
    }

    #[test]
    fn node_kind_and_zone_match_any_listed() {
        let t = task(1_000, 1_024, GpuRequest::NONE);
        assert!(admits(Filter::NodeKind(vec![NodeKind::Vm]), &t));
        assert!(admits(
            Filter::NodeKind(vec![NodeKind::Server, NodeKind::Vm]),
            &t
        ));
        assert!(!admits(
            Filter::NodeKind(vec![NodeKind::Server, NodeKind::ContainerHost]),
            &t
        ));
        assert!(admits(Filter::Zone(vec!["eu-1".into()]), &t));
        assert!(admits(Filter::Zone(vec!["us-1".into(), "eu-1".into()]), &t));
        assert!(!admits(Filter::Zone(vec!["us-1".into()]), &t));
        // The zone filter reads the node's zone, not a `zone` label.
        assert!(!admits(Filter::Zone(vec!["a".into()]), &t));

        let mut cluster = ClusterState::new();
        cluster
            .add_node(NodeSpec::new(NodeId(2), Resources::new(8_000, 8_192)))
            .unwrap();
        let zoneless = cluster.node(NodeId(2)).unwrap();
        assert_eq!(
            Filter::Zone(vec!["eu-1".into()]).check(&t, zoneless),
            Err(Misfit::Policy(
                "its zone is not one of the rules' zone".into()
            ))
        );
    }
}
