use lepton_core::cluster::ClusterNode;
use lepton_core::model::GPU_MILLI_PER_GPU;
use lepton_core::{FeasibleNodes, GpuRequest, Placement, Policy, TaskSpec};

use super::RankedScores;

/// Groups alike GPU tasks on the same nodes (the FGD paper's "GpuClustering").
///
/// A task's kind is "GPU share" or "k whole GPUs". Score: 75 when the node
/// hosts only tasks of the task's kind, 50 when it hosts that kind among
/// others, 25 when it hosts no GPU task, 0 when only other kinds; plus up to
/// 25 for how full the node's GPUs are (relative to the largest node).
/// CPU-only tasks score 0 everywhere, so they land at random.
#[derive(Debug, Clone, Default)]
pub struct GpuClustering {
    /// The nodes ranked per task request, re-scored when they change.
    ranked: RankedScores<(u64, GpuRequest)>,
}

impl GpuClustering {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "clustering";
}

impl Policy for GpuClustering {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let task = nodes.task();
        let largest_gpu_milli = nodes.cluster().largest_node().gpu_milli;
        let kind = (task.request.cpu_milli, task.gpu);
        self.ranked
            .best(kind, nodes, |node| score(task, node, largest_gpu_milli))
            .map(|node| Placement::on(node.id()))
    }
}

/// `Some(0)` for a GPU share, `Some(k)` for k whole GPUs, `None` for no GPU.
fn kind(request: GpuRequest) -> Option<u32> {
    match request {
        r if r.is_none() => None,
        r if r.count == 1 && r.milli_per_gpu < GPU_MILLI_PER_GPU => Some(0),
        r => Some(r.count),
    }
}

pub(crate) fn score(task: &TaskSpec, node: &ClusterNode, largest_gpu_milli: u64) -> i64 {
    let Some(own) = kind(task.gpu) else {
        return 0;
    };
    let kinds = || node.gpu_requests().iter().filter_map(|(r, _)| kind(*r));
    let grouping = if kinds().any(|k| k == own) {
        if kinds().all(|k| k == own) {
            75
        } else {
            50
        }
    } else if node.gpu_requests().is_empty() {
        25
    } else {
        0
    };
    let used = largest_gpu_milli.saturating_sub(node.gpu_free_milli_total());
    let fullness = (25 * used).checked_div(largest_gpu_milli).unwrap_or(0);
    grouping + fullness as i64
}

#[cfg(test)]
mod tests {
    use lepton_core::{Gpus, NodeId, NodeSpec, Placement, Resources, TaskId};

    use super::*;
    use lepton_core::{ClusterState, TaskSpec};

    #[test]
    fn alike_tasks_are_grouped() {
        let mut cluster = ClusterState::new();
        for id in 1..=4 {
            let node = NodeSpec::new(NodeId(id), Resources::new(64_000, 65_536))
                .with_gpus(Gpus::new("T4", 8));
            cluster.add_node(node).unwrap();
        }
        let task = |id, gpu| TaskSpec::new(TaskId(id), Resources::new(1_000, 1)).with_gpu(gpu);
        // Node 2: shares only. Node 3: a share and a whole GPU. Node 4: whole GPUs only.
        cluster
            .reserve(
                &task(10, GpuRequest::shared(500)),
                &Placement::on(NodeId(2)),
            )
            .unwrap();
        cluster
            .reserve(
                &task(11, GpuRequest::shared(500)),
                &Placement::on(NodeId(3)),
            )
            .unwrap();
        cluster
            .reserve(&task(12, GpuRequest::whole(1)), &Placement::on(NodeId(3)))
            .unwrap();
        cluster
            .reserve(&task(13, GpuRequest::whole(2)), &Placement::on(NodeId(4)))
            .unwrap();
        let node = |id| cluster.node(NodeId(id)).unwrap();
        let share = task(1, GpuRequest::shared(200));
        // 25 × used/8000, truncated: node 2 uses 500 → 1; node 3 uses 1500 → 4; node 4 uses 2000 → 6.
        assert_eq!(score(&share, node(1), 8_000), 25);
        assert_eq!(score(&share, node(2), 8_000), 76);
        assert_eq!(score(&share, node(3), 8_000), 54);
        assert_eq!(score(&share, node(4), 8_000), 6);
        assert_eq!(score(&task(2, GpuRequest::whole(2)), node(4), 8_000), 81);
        assert_eq!(
            score(
                &TaskSpec::new(TaskId(3), Resources::new(1, 1)),
                node(2),
                8_000
            ),
            0
        );

        let mut policy = GpuClustering::default();
        assert_eq!(
            policy.decide(&share, &cluster).map(|p| p.node),
            Some(NodeId(2))
        );
    }
}
