use lepton_core::{FeasibleNodes, Placement, Policy};

use super::{best_scoring, percent, share};

/// The node whose free CPU and GPU vector has the smallest dot product with
/// the task's request (the FGD paper's "DotProd" baseline, after Tetris).
///
/// Both vectors are normalised by the largest node; score =
/// ⌊(1 − dot/2) × 100⌋, the highest wins, ties to the earliest node.
#[derive(Debug, Clone, Copy, Default)]
pub struct DotProduct;

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
        let task_cpu = share(task.request.cpu_milli, largest.cpu_milli);
        let task_gpu = share(task.gpu.total_milli(), largest.gpu_milli);
        best_scoring(nodes, |node| {
            let dot = share(node.free().cpu_milli, largest.cpu_milli) * task_cpu
                + share(node.gpu_free_milli_total(), largest.gpu_milli) * task_gpu;
            Some((percent(1.0 - dot / 2.0), ()))
        })
        .map(|(node, ())| Placement::on(node.id()))
    }
}
