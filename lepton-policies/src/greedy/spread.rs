use lepton_core::{ClusterState, Placement, Policy, TaskSpec};

/// The node left with the most CPU and GPU after placement (worst fit):
/// spreads load, the mirror of [`BestFit`](super::BestFit), the earliest
/// node on ties. Found through the cluster's ordered index
/// ([`NodeSearch::loosest_fit`](lepton_core::NodeSearch::loosest_fit)), not
/// by scanning every node.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread;

impl Policy for Spread {
    fn name(&self) -> &str {
        "spread"
    }

    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        cluster
            .search()
            .loosest_fit(task, |_| true)
            .map(|node| Placement::on(node.id()))
    }
}
