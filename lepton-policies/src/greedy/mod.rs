//! Greedy policies: each looks at the feasible nodes once and keeps the best
//! by a simple score. Ties go to the earliest node in cluster order, so
//! results are deterministic.

mod best_fit;
mod first_fit;
mod spread;

pub use best_fit::BestFit;
pub use first_fit::FirstFit;
pub use spread::Spread;

use lepton_core::{ClusterNode, ClusterState, TaskSpec};

/// What would be left on `node` after placing `task`, over CPU and GPU, each
/// normalised by the largest node of the cluster and weighted ½ (the BestFit
/// score of the FGD paper's simulator, with its constants generalised).
/// `node` must fit `task`.
fn normalized_leftover(task: &TaskSpec, node: &ClusterNode, cluster: &ClusterState) -> f64 {
    let largest = cluster.largest_node();
    let share = |left: u64, request: u64, norm: u64| {
        if norm == 0 {
            0.0
        } else {
            left.saturating_sub(request) as f64 / norm as f64
        }
    };
    let cpu = share(
        node.free().cpu_milli,
        task.request.cpu_milli,
        largest.cpu_milli,
    );
    let gpu = share(
        node.gpu_free_milli_total(),
        task.gpu.total_milli(),
        largest.gpu_milli,
    );
    0.5 * cpu + 0.5 * gpu
}

/// The feasible node with the lowest `score`, first one on ties.
fn feasible_min_by<'a>(
    task: &'a TaskSpec,
    cluster: &'a ClusterState,
    mut score: impl FnMut(&ClusterNode) -> f64,
) -> Option<&'a ClusterNode> {
    let mut best: Option<(&ClusterNode, f64)> = None;
    for node in cluster.feasible_nodes(task) {
        let s = score(node);
        if best.is_none_or(|(_, b)| s < b) {
            best = Some((node, s));
        }
    }
    best.map(|(node, _)| node)
}

#[cfg(test)]
mod tests {
    use lepton_core::{
        ClusterState, GpuRequest, Gpus, NodeId, NodeSpec, Placement, Policy, Resources, TaskId,
        TaskSpec,
    };

    use super::{normalized_leftover, BestFit, FirstFit, Spread};

    /// Node 1: 64 cores, 2 GPUs. Node 2: 128 cores, 8 GPUs (the largest).
    /// Node 3: 16 cores, no GPU. Task 100 already uses 40 cores and one
    /// whole GPU on node 1, so its free CPU is 24 cores and 1 GPU.
    fn cluster() -> ClusterState {
        let mut cluster = ClusterState::new();
        let nodes = [
            NodeSpec::new(NodeId(1), Resources::new(64_000, 262_144))
                .with_gpus(Gpus::new("V100M16", 2)),
            NodeSpec::new(NodeId(2), Resources::new(128_000, 786_432))
                .with_gpus(Gpus::new("V100M32", 8)),
            NodeSpec::new(NodeId(3), Resources::new(16_000, 65_536)),
        ];
        for node in nodes {
            cluster.add_node(node).unwrap();
        }
        let busy = TaskSpec::new(TaskId(100), Resources::new(40_000, 1_024))
            .with_gpu(GpuRequest::whole(1));
        cluster.reserve(&busy, &Placement::on(NodeId(1))).unwrap();
        cluster
    }

    fn select(mut policy: impl Policy, task: &TaskSpec, cluster: &ClusterState) -> Option<NodeId> {
        policy.select(task, cluster).map(|placement| placement.node)
    }

    #[test]
    fn leftover_matches_a_hand_computation() {
        let cluster = cluster();
        let task = TaskSpec::new(TaskId(1), Resources::new(8_000, 1_024))
            .with_gpu(GpuRequest::shared(500));
        // Node 1: CPU (24000 - 8000) / 128000 = 0.125; GPU (1000 - 500) / 8000 = 0.0625.
        let node1 = cluster.node(NodeId(1)).unwrap();
        assert!(
            (normalized_leftover(&task, node1, &cluster) - (0.5 * 0.125 + 0.5 * 0.0625)).abs()
                < 1e-12
        );
        // Node 2: CPU 120000 / 128000 = 0.9375; GPU 7500 / 8000 = 0.9375.
        let node2 = cluster.node(NodeId(2)).unwrap();
        assert!((normalized_leftover(&task, node2, &cluster) - 0.9375).abs() < 1e-12);
    }

    #[test]
    fn best_fit_packs_spread_spreads_first_fit_takes_the_first() {
        let cluster = cluster();
        let gpu_task = TaskSpec::new(TaskId(1), Resources::new(8_000, 1_024))
            .with_gpu(GpuRequest::shared(500));
        assert_eq!(select(BestFit, &gpu_task, &cluster), Some(NodeId(1)));
        assert_eq!(select(Spread, &gpu_task, &cluster), Some(NodeId(2)));
        assert_eq!(select(FirstFit, &gpu_task, &cluster), Some(NodeId(1)));

        // CPU-only, 10 cores: node 3 leaves ½·6000/128000 and no GPU, the
        // least; node 2 leaves the most.
        let cpu_task = TaskSpec::new(TaskId(2), Resources::new(10_000, 1_024));
        assert_eq!(select(BestFit, &cpu_task, &cluster), Some(NodeId(3)));
        assert_eq!(select(Spread, &cpu_task, &cluster), Some(NodeId(2)));
        assert_eq!(select(FirstFit, &cpu_task, &cluster), Some(NodeId(1)));
    }

    #[test]
    fn multi_gpu_and_model_constraints_filter_nodes() {
        let cluster = cluster();
        // Two whole GPUs: node 1 has only one left.
        let two_gpus =
            TaskSpec::new(TaskId(3), Resources::new(1_000, 1_024)).with_gpu(GpuRequest::whole(2));
        assert_eq!(select(BestFit, &two_gpus, &cluster), Some(NodeId(2)));
        assert_eq!(select(FirstFit, &two_gpus, &cluster), Some(NodeId(2)));
        // Only V100M16 is accepted: node 1 even though spread prefers node 2.
        let pinned = TaskSpec::new(TaskId(4), Resources::new(1_000, 1_024))
            .with_gpu(GpuRequest::shared(100))
            .with_gpu_models([lepton_core::GpuModel::new("V100M16")]);
        assert_eq!(select(Spread, &pinned, &cluster), Some(NodeId(1)));
        // Nothing has 9 GPUs.
        let too_big =
            TaskSpec::new(TaskId(5), Resources::new(1_000, 1_024)).with_gpu(GpuRequest::whole(9));
        assert_eq!(select(BestFit, &too_big, &cluster), None);
        assert_eq!(select(Spread, &too_big, &cluster), None);
        assert_eq!(select(FirstFit, &too_big, &cluster), None);
    }

    #[test]
    fn ties_go_to_the_first_node() {
        let mut cluster = ClusterState::new();
        for id in [7, 3, 5] {
            cluster
                .add_node(NodeSpec::new(NodeId(id), Resources::new(4_000, 4_096)))
                .unwrap();
        }
        let task = TaskSpec::new(TaskId(1), Resources::new(1_000, 1_024));
        assert_eq!(select(BestFit, &task, &cluster), Some(NodeId(7)));
        assert_eq!(select(Spread, &task, &cluster), Some(NodeId(7)));
    }
}
