use lepton_core::cluster::ClusterNode;
use lepton_core::model::GPU_MILLI_PER_GPU;
use lepton_core::{FeasibleNodes, GpuRequest, Placement, Policy, TaskSpec};

use super::RankedScores;

/// Packs GPU tasks onto GPUs already in use (the FGD paper's "GpuPacking").
///
/// Preference, best first: the task fits on partly used GPUs (the less free
/// milli they have, the better: 50..=100); it needs some fully free GPUs of
/// a partly used node (fewer is better: 33..=49); the node is idle (0..=32).
/// CPU-only tasks score 0 everywhere, so they land at random.
#[derive(Debug, Clone, Default)]
pub struct GpuPacking {
    /// The nodes ranked per task request, re-scored when they change.
    ranked: RankedScores<(u64, GpuRequest)>,
}

impl GpuPacking {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "packing";
}

impl Policy for GpuPacking {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let task = nodes.task();
        let kind = (task.request.cpu_milli, task.gpu);
        self.ranked
            .best(kind, nodes, |node| score(task, node))
            .map(|node| Placement::on(node.id()))
    }
}

/// The node's score for `task`, 0..=100 (see [`GpuPacking`]).
pub(crate) fn score(task: &TaskSpec, node: &ClusterNode) -> i64 {
    if task.gpu.is_none() {
        return 0;
    }
    let free = node.gpu_free_milli();
    let fully_free = free.iter().filter(|&&m| m == GPU_MILLI_PER_GPU).count() as i64;
    if fully_free == free.len() as i64 {
        return (33 - fully_free).max(fully_free);
    }
    // The GPUs the task would take: tightest first.
    let mut fitting: Vec<u32> = free
        .iter()
        .copied()
        .filter(|&m| m >= task.gpu.milli_per_gpu)
        .collect();
    fitting.sort_unstable();
    let taken = &fitting[..fitting.len().min(task.gpu.count as usize)];
    let newly_used = taken.iter().filter(|&&m| m == GPU_MILLI_PER_GPU).count() as i64;
    if newly_used > 0 {
        return (50 - newly_used).max(33);
    }
    let free_percent: i64 = taken.iter().map(|&m| i64::from(m) * 100 / 1000).sum();
    (100 - free_percent / 10).max(50)
}

#[cfg(test)]
mod tests {
    use lepton_core::{GpuRequest, Gpus, NodeId, NodeSpec, Placement, Resources, TaskId};

    use super::*;
    use lepton_core::{ClusterState, TaskSpec};

    #[test]
    fn scores_match_the_three_tiers() {
        let mut cluster = ClusterState::new();
        for id in 1..=3 {
            let node = NodeSpec::new(NodeId(id), Resources::new(64_000, 65_536))
                .with_gpus(Gpus::new("T4", 8));
            cluster.add_node(node).unwrap();
        }
        // Node 2: one GPU at 100 milli free. Node 3: one whole GPU used.
        let share =
            TaskSpec::new(TaskId(1), Resources::new(1_000, 1)).with_gpu(GpuRequest::shared(900));
        cluster.reserve(&share, &Placement::on(NodeId(2))).unwrap();
        let whole =
            TaskSpec::new(TaskId(2), Resources::new(1_000, 1)).with_gpu(GpuRequest::whole(1));
        cluster.reserve(&whole, &Placement::on(NodeId(3))).unwrap();
        let node = |id| cluster.node(NodeId(id)).unwrap();

        let small =
            TaskSpec::new(TaskId(3), Resources::new(1_000, 1)).with_gpu(GpuRequest::shared(100));
        assert_eq!(score(&small, node(1)), 25); // idle 8-GPU node: max(33 - 8, 8)
        assert_eq!(score(&small, node(2)), 99); // 100 free on the used GPU: 100 - 10/10
        assert_eq!(score(&small, node(3)), 49); // must open a free GPU: 50 - 1
        let two = TaskSpec::new(TaskId(4), Resources::new(1_000, 1)).with_gpu(GpuRequest::whole(2));
        assert_eq!(score(&two, node(3)), 48);
        let cpu_only = TaskSpec::new(TaskId(5), Resources::new(1_000, 1));
        assert_eq!(score(&cpu_only, node(2)), 0);

        let mut policy = GpuPacking::default();
        assert_eq!(
            policy.decide(&small, &cluster).map(|p| p.node),
            Some(NodeId(2))
        );
    }
}
