use lepton_core::{ClusterState, Placement, Policy, TaskSpec};

use super::{feasible_min_by, normalized_leftover};

/// The node left with the most CPU and GPU after placement (worst fit):
/// spreads load, the opposite of [`BestFit`](super::BestFit).
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread;

impl Policy for Spread {
    fn name(&self) -> &str {
        "spread"
    }

    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        feasible_min_by(task, cluster, |node| {
            -normalized_leftover(task, node, cluster)
        })
        .map(|node| Placement::on(node.id()))
    }
}
