use lepton_core::{ClusterState, Placement, Policy, TaskSpec};

use super::{feasible_min_by, normalized_leftover};

/// The node left with the least CPU and GPU after placement (packing).
///
/// The leftover is ½·CPU + ½·GPU, each normalised by the largest node.
#[derive(Debug, Clone, Copy, Default)]
pub struct BestFit;

impl Policy for BestFit {
    fn name(&self) -> &str {
        "bestfit"
    }

    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        feasible_min_by(task, cluster, |node| {
            normalized_leftover(task, node, cluster)
        })
        .map(|node| Placement::on(node.id()))
    }
}
