use lepton_core::{FeasibleNodes, Placement, Policy};

/// The node left with the least CPU and GPU after placement (packing).
///
/// Leftover = ½·CPU left / largest node's CPU + ½·GPU left / largest node's
/// GPU (the FGD paper's BestFit); the least wins, the earliest node on ties.
/// Found through the cluster's ordered index
/// ([`FeasibleNodes::tightest_fit`]), not
/// by scanning every node. Inside the node, the tightest-fitting GPUs.
#[derive(Debug, Clone, Copy, Default)]
pub struct BestFit;

impl BestFit {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "bestfit";
}

impl Policy for BestFit {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        nodes.tightest_fit().map(|node| Placement::on(node.id()))
    }
}
