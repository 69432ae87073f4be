use lepton_core::{ClusterState, Placement, Policy, TaskSpec};

use super::{best_scoring, normalized_leftover, percent};

/// The node left with the most CPU and GPU after placement (worst fit):
/// spreads load, the mirror of [`BestFit`](super::BestFit).
///
/// Score = ⌊leftover × 100⌋; the highest wins, ties to the earliest node.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread;

impl Policy for Spread {
    fn name(&self) -> &str {
        "spread"
    }

    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        best_scoring(task, cluster, |node| {
            Some((percent(normalized_leftover(task, node, cluster)), ()))
        })
        .map(|(node, ())| Placement::on(node.id()))
    }
}
