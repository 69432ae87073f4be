use lepton_core::{ClusterState, Placement, Policy, TaskSpec};

/// The first node, in cluster order, where the task fits.
///
/// Found through the cluster's index of free capacity
/// ([`NodeSearch::first_fit`](lepton_core::NodeSearch::first_fit)), not by
/// scanning every node.
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstFit;

impl Policy for FirstFit {
    fn name(&self) -> &str {
        "firstfit"
    }

    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        cluster
            .search()
            .first_fit(task, |_| true)
            .map(|node| Placement::on(node.id()))
    }
}
