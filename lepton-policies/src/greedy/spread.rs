use lepton_core::{ClusterState, Placement, Policy, SimRng, TaskSpec};

use super::{best_scoring, normalized_leftover, percent};

/// The node left with the most CPU and GPU after placement (worst fit):
/// spreads load, the mirror of [`BestFit`](super::BestFit).
///
/// Score = ⌊leftover × 100⌋; the highest wins, ties at random.
#[derive(Debug, Clone, Default)]
pub struct Spread {
    rng: SimRng,
}

impl Policy for Spread {
    fn name(&self) -> &str {
        "spread"
    }

    fn reseed(&mut self, seed: u64) {
        self.rng = SimRng::new(seed);
    }

    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        best_scoring(task, cluster, &mut self.rng, |node| {
            Some((percent(normalized_leftover(task, node, cluster)), ()))
        })
        .map(|(node, ())| Placement::on(node.id()))
    }
}
