use lepton_core::{ClusterState, Placement, Policy, TaskSpec};

/// Static round robin: the next node, in cluster order after the one chosen
/// last, where the task fits — the "traditional" scheduler of the article's
/// data-center comparison, which spreads tasks over every node in turn
/// whatever their load.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobin {
    /// Position in cluster order to look from next.
    next: usize,
}

impl Policy for RoundRobin {
    fn name(&self) -> &str {
        "roundrobin"
    }

    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        let nodes = cluster.nodes();
        let count = nodes.len();
        let start = self.next.min(count);
        let position = (start..count)
            .chain(0..start)
            .find(|&position| nodes[position].fits(task))?;
        self.next = position + 1;
        Some(Placement::on(nodes[position].id()))
    }

    fn reseed(&mut self, _seed: u64) {
        self.next = 0;
    }
}
