use lepton_core::{ClusterState, Placement, Policy, TaskSpec};

/// The first node, in cluster order, where the task fits.
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstFit;

impl Policy for FirstFit {
    fn name(&self) -> &str {
        "firstfit"
    }

    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        cluster
            .feasible_nodes(task)
            .next()
            .map(|node| Placement::on(node.id()))
    }
}
