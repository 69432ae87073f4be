use lepton_core::cluster::{ClusterNode, LargestNode};
use lepton_core::{FeasibleNodes, GpuRequest, Placement, Policy, TaskSpec};

use super::{percent, share, RankedScores};

/// The node whose free CPU and GPU vector has the smallest dot product with
/// the task's request (the FGD paper's "DotProd" baseline, after Tetris).
///
/// Both vectors are normalised by the largest node; score =
/// ⌊(1 − dot/2) × 100⌋, the highest wins, ties to the earliest node. The
/// nodes are kept ranked per task request, re-scored when they change.
#[derive(Debug, Clone, Default)]
pub struct DotProduct {
    ranked: RankedScores<(u64, GpuRequest)>,
}

impl DotProduct {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "dotprod";
}

impl Policy for DotProduct {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let task = nodes.task();
        let largest = nodes.cluster().largest_node();
        let kind = (task.request.cpu_milli, task.gpu);
        self.ranked
            .best(kind, nodes, |node| score(task, node, largest))
            .map(|node| Placement::on(node.id()))
    }
}

/// ⌊(1 − dot/2) × 100⌋ of the task's request and the node's free capacity,
/// both normalised by the largest node.
pub(crate) fn score(task: &TaskSpec, node: &ClusterNode, largest: LargestNode) -> i64 {
    let task_cpu = share(task.request.cpu_milli, largest.cpu_milli);
    let task_gpu = share(task.gpu.total_milli(), largest.gpu_milli);
    let dot = share(node.free().cpu_milli, largest.cpu_milli) * task_cpu
        + share(node.gpu_free_milli_total(), largest.gpu_milli) * task_gpu;
    percent(1.0 - dot / 2.0)
}
