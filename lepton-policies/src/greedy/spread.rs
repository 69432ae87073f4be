use lepton_core::{FeasibleNodes, Placement, Policy};

/// The node left with the most CPU and GPU after placement (worst fit):
/// spreads load, the mirror of [`BestFit`](super::BestFit), the earliest
/// node on ties. Found through the cluster's ordered index
/// ([`FeasibleNodes::loosest_fit`]), not
/// by scanning every node.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread;

impl Spread {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "spread";
}

impl Policy for Spread {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        nodes.loosest_fit().map(|node| Placement::on(node.id()))
    }
}
