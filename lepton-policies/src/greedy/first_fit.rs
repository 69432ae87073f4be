use lepton_core::{FeasibleNodes, Placement, Policy};

/// The first node, in cluster order, where the task fits.
///
/// Found through the cluster's index of free capacity
/// ([`FeasibleNodes::first_fit`]), not by
/// scanning every node.
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstFit;

impl FirstFit {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "firstfit";
}

impl Policy for FirstFit {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        nodes.first_fit().map(|node| Placement::on(node.id()))
    }
}
