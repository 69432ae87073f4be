use lepton_core::{FeasibleNodes, Placement, Policy};

/// Static round robin: the next node, in cluster order after the one chosen
/// last, where the task fits — the "traditional" scheduler of the article's
/// data-center comparison, which spreads tasks over every node in turn
/// whatever their load.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobin {
    /// Position in cluster order to look from next.
    next: usize,
}

impl RoundRobin {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "roundrobin";
}

impl Policy for RoundRobin {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let all = nodes.cluster().nodes();
        let count = all.len();
        let start = self.next.min(count);
        let position = (start..count)
            .chain(0..start)
            .find(|&position| nodes.admits(&all[position]))?;
        self.next = position + 1;
        Some(Placement::on(all[position].id()))
    }

    fn reseed(&mut self, _seed: u64) {
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use lepton_core::{NodeId, NodeSpec, Resources, TaskId};

    use super::*;
    use lepton_core::{ClusterState, TaskSpec};

    #[test]
    fn takes_nodes_in_turn_and_skips_those_without_room() {
        let mut cluster = ClusterState::new();
        for (id, cpu) in [(1, 4_000), (2, 1_000), (3, 4_000)] {
            cluster
                .add_node(NodeSpec::new(NodeId(id), Resources::new(cpu, 4_096)))
                .unwrap();
        }
        let task = TaskSpec::new(TaskId(1), Resources::new(2_000, 1_024));
        let mut policy = RoundRobin::default();
        let picks: Vec<u64> = (0..4)
            .map(|_| policy.decide(&task, &cluster).unwrap().node.0)
            .collect();
        // Node 2 is too small for the task: 1, 3, 1, 3.
        assert_eq!(picks, vec![1, 3, 1, 3]);
        policy.reseed(0);
        assert_eq!(policy.decide(&task, &cluster).unwrap().node, NodeId(1));
        let huge = TaskSpec::new(TaskId(2), Resources::new(8_000, 1_024));
        assert_eq!(policy.decide(&huge, &cluster), None);
    }
}
