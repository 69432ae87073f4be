use lepton_core::{ClusterState, Placement, Policy, TaskSpec};

use super::{best_scoring, normalized_leftover, percent};

/// The node left with the least CPU and GPU after placement (packing).
///
/// Score = ⌊(1 − leftover) × 100⌋ with leftover = ½·CPU left/largest node's
/// CPU + ½·GPU left/largest node's GPU; the highest score wins, ties at
/// random. Inside the node, the tightest-fitting GPUs.
#[derive(Debug, Clone, Copy, Default)]
pub struct BestFit;

impl Policy for BestFit {
    fn name(&self) -> &str {
        "bestfit"
    }

    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        best_scoring(task, cluster, |node| {
            Some((percent(1.0 - normalized_leftover(task, node, cluster)), ()))
        })
        .map(|(node, ())| Placement::on(node.id()))
    }
}
