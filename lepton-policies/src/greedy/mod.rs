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
    let cpu = share(node.free().cpu_milli, task.request.cpu_milli, largest.cpu_milli);
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
