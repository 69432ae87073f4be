use lepton_core::cluster::ClusterNode;
use lepton_core::model::GPU_MILLI_PER_GPU;
use lepton_core::{FeasibleNodes, Placement, Policy, TaskSpec};
use smallvec::SmallVec;

use super::{best_scoring, percent};

/// The node whose CPU, memory and GPU would be most evenly used after
/// placement (kube-scheduler's `NodeResourcesBalancedAllocation`).
///
/// For each resource the node has, the fraction in use once the task is
/// placed, `(capacity − free + request) / capacity`; score =
/// ⌊(1 − population standard deviation of those fractions) × 100⌋. GPU
/// counts only on nodes that have GPUs. The highest score wins, ties to the
/// earliest node.
///
/// Balanced nodes waste less: a node whose CPU is full while its memory is
/// idle can take nothing more, however much memory it has.
#[derive(Debug, Clone, Copy, Default)]
pub struct Balanced;

impl Balanced {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "balanced";
}

impl Policy for Balanced {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let task = nodes.task();
        best_scoring(nodes, |node| Some((percent(balance(task, node)), ())))
            .map(|(node, ())| Placement::on(node.id()))
    }
}

/// The fraction (0.0..=1.0) of each resource of a node in use once a task is
/// placed there; `None` for a resource the node does not have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct UsageAfter {
    /// CPU.
    pub(crate) cpu: Option<f64>,
    /// Memory.
    pub(crate) memory: Option<f64>,
    /// GPU, in milli-GPUs over all the node's GPUs.
    pub(crate) gpu: Option<f64>,
}

/// What `node` would have in use, as fractions of its capacity, once `task`
/// is placed there.
pub(crate) fn usage_after(task: &TaskSpec, node: &ClusterNode) -> UsageAfter {
    let capacity = &node.spec().capacity;
    let free = node.free();
    let gpu_capacity = u64::from(node.spec().gpus.count) * u64::from(GPU_MILLI_PER_GPU);
    UsageAfter {
        cpu: fraction_after(capacity.cpu_milli, free.cpu_milli, task.request.cpu_milli),
        memory: fraction_after(
            capacity.memory_mib,
            free.memory_mib,
            task.request.memory_mib,
        ),
        gpu: fraction_after(
            gpu_capacity,
            node.gpu_free_milli_total(),
            task.gpu.total_milli(),
        ),
    }
}

/// `(capacity − free + request) / capacity`, at most 1; `None` when there is
/// no capacity.
fn fraction_after(capacity: u64, free: u64, request: u64) -> Option<f64> {
    if capacity == 0 {
        return None;
    }
    let used = capacity.saturating_sub(free).saturating_add(request);
    Some((used as f64 / capacity as f64).min(1.0))
}

/// 1 − the population standard deviation of [`usage_after`]'s fractions:
/// 1.0 when every resource would be equally used, lower the more uneven.
///
/// Computed as kube-scheduler does: with two fractions the deviation is
/// `|f1 − f2| / 2` exactly; with fewer than two it is 0.
pub(crate) fn balance(task: &TaskSpec, node: &ClusterNode) -> f64 {
    let usage = usage_after(task, node);
    let fractions: SmallVec<[f64; 3]> = [usage.cpu, usage.memory, usage.gpu]
        .into_iter()
        .flatten()
        .collect();
    let deviation = match fractions[..] {
        [] | [_] => 0.0,
        [a, b] => (a - b).abs() / 2.0,
        _ => {
            let count = fractions.len() as f64;
            let mean = fractions.iter().sum::<f64>() / count;
            let variance = fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / count;
            variance.sqrt()
        }
    };
    1.0 - deviation
}

#[cfg(test)]
mod tests {
    use lepton_core::{GpuRequest, Gpus, NodeId, NodeSpec, Resources, TaskId};

    use super::*;
    use lepton_core::{ClusterState, TaskSpec};

    /// Three nodes of 8 cores and 8 GiB (fractions are exact in binary).
    /// Node 2 already runs 4 cores and 2 GiB; node 3 has two GPUs, idle.
    fn cluster() -> ClusterState {
        let mut cluster = ClusterState::new();
        let capacity = Resources::new(8_000, 8_192);
        cluster
            .add_node(NodeSpec::new(NodeId(1), capacity.clone()))
            .unwrap();
        cluster
            .add_node(NodeSpec::new(NodeId(2), capacity.clone()))
            .unwrap();
        cluster
            .add_node(NodeSpec::new(NodeId(3), capacity).with_gpus(Gpus::new("T4", 2)))
            .unwrap();
        let busy = TaskSpec::new(TaskId(100), Resources::new(4_000, 2_048));
        cluster.reserve(&busy, &Placement::on(NodeId(2))).unwrap();
        cluster
    }

    fn task(cpu_milli: u64, memory_mib: u64, gpu: GpuRequest) -> TaskSpec {
        TaskSpec::new(TaskId(1), Resources::new(cpu_milli, memory_mib)).with_gpu(gpu)
    }

    #[test]
    fn usage_after_counts_what_is_used_plus_the_request() {
        let cluster = cluster();
        let task = task(2_000, 4_096, GpuRequest::whole(1));
        let node2 = cluster.node(NodeId(2)).unwrap();
        // (4000 + 2000) / 8000, (2048 + 4096) / 8192, no GPU.
        assert_eq!(
            usage_after(&task, node2),
            UsageAfter {
                cpu: Some(0.75),
                memory: Some(0.75),
                gpu: None
            }
        );
        let node3 = cluster.node(NodeId(3)).unwrap();
        // 1000 of 2000 milli-GPUs.
        assert_eq!(usage_after(&task, node3).gpu, Some(0.5));
    }

    #[test]
    fn scores_match_a_hand_computation() {
        let cluster = cluster();
        let node = |id| cluster.node(NodeId(id)).unwrap();
        let cpu_only = task(2_000, 4_096, GpuRequest::NONE);
        // Node 1: CPU 0.25, memory 0.5 → |0.25 − 0.5| / 2 = 0.125 → ⌊87.5⌋.
        assert_eq!(percent(balance(&cpu_only, node(1))), 87);
        // Node 2: CPU 0.75, memory 0.75 → perfectly balanced.
        assert_eq!(percent(balance(&cpu_only, node(2))), 100);
        // Node 3: CPU 0.25, memory 0.5, GPU 0 → mean 0.25, variance
        // (0 + 0.0625 + 0.0625) / 3, deviation 0.2041 → ⌊79.59⌋.
        assert_eq!(percent(balance(&cpu_only, node(3))), 79);
        // With one GPU: 0.25, 0.5, 0.5 → mean 5/12, variance
        // (1/36 + 1/144 + 1/144) / 3 = 1/72, deviation 0.1179 → ⌊88.21⌋.
        let gpu_task = task(2_000, 4_096, GpuRequest::whole(1));
        assert_eq!(percent(balance(&gpu_task, node(3))), 88);
    }

    #[test]
    fn one_resource_or_none_is_always_balanced() {
        let mut cluster = ClusterState::new();
        cluster
            .add_node(NodeSpec::new(NodeId(1), Resources::new(8_000, 0)))
            .unwrap();
        let node = cluster.node(NodeId(1)).unwrap();
        assert_eq!(balance(&task(6_000, 0, GpuRequest::NONE), node), 1.0);
    }

    #[test]
    fn the_most_balanced_node_wins_ties_to_the_earliest() {
        let cluster = cluster();
        let mut policy = Balanced;
        let cpu_only = task(2_000, 4_096, GpuRequest::NONE);
        assert_eq!(
            policy.decide(&cpu_only, &cluster).map(|p| p.node),
            Some(NodeId(2))
        );
        // A CPU task on an idle GPU node leaves its GPU dimension at 0:
        // the GPU node scores 79, the plain one 87, though it comes later.
        let mut mixed = ClusterState::new();
        mixed
            .add_node(
                NodeSpec::new(NodeId(1), Resources::new(8_000, 8_192))
                    .with_gpus(Gpus::new("T4", 2)),
            )
            .unwrap();
        mixed
            .add_node(NodeSpec::new(NodeId(2), Resources::new(8_000, 8_192)))
            .unwrap();
        assert_eq!(
            policy.decide(&cpu_only, &mixed).map(|p| p.node),
            Some(NodeId(2))
        );
        // Equal nodes: the earliest.
        let mut equal = ClusterState::new();
        for id in [9, 4] {
            equal
                .add_node(NodeSpec::new(NodeId(id), Resources::new(8_000, 8_192)))
                .unwrap();
        }
        assert_eq!(
            policy.decide(&cpu_only, &equal).map(|p| p.node),
            Some(NodeId(9))
        );
    }
}
