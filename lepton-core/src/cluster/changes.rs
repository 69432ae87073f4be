//! Which nodes changed since a given moment, so that a policy's index kept
//! across decisions (FGD's ranking of the nodes per task shape) updates only
//! those instead of rescanning the cluster.
//!
//! Every change to a node gives it a new generation from one counter of the
//! cluster (see [`ClusterNode::generation`]) — moving in cluster order
//! included — and the log records each, in order, with the node's position.
//! Generations are never reused, so an entry is live exactly while the node
//! at its position still has its generation, and
//! [`ClusterState::changed_since`] yields each changed node once. Superseded
//! entries are dropped once they outnumber the nodes, which keeps the log
//! within twice the node count and its upkeep O(1) amortised.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{ClusterNode, ClusterState};

/// The changes, oldest first: (generation given, position of the node).
#[derive(Debug, Clone, Default)]
pub(super) struct ChangeLog {
    entries: Vec<(u64, usize)>,
}

impl ChangeLog {
    /// Notes that the node at `position` of `nodes` was just given its
    /// generation (greater than any before), dropping superseded entries
    /// once they outnumber the nodes.
    pub(super) fn record(&mut self, position: usize, nodes: &[ClusterNode]) {
        self.entries.push((nodes[position].generation, position));
        if self.entries.len() > 2 * nodes.len() + 64 {
            self.entries
                .retain(|&(generation, position)| live(nodes, generation, position).is_some());
        }
    }

    /// The entries after `generation`, oldest first.
    fn since(&self, generation: u64) -> &[(u64, usize)] {
        let start = self.entries.partition_point(|&(g, _)| g <= generation);
        &self.entries[start..]
    }
}

/// Tells cluster states apart: every state this process creates, a clone
/// included, gets its own.
#[derive(Debug)]
pub(super) struct Instance(u64);

static INSTANCES: AtomicU64 = AtomicU64::new(1);

impl Default for Instance {
    fn default() -> Self {
        Instance(INSTANCES.fetch_add(1, Ordering::Relaxed))
    }
}

impl Clone for Instance {
    /// A clone goes its own way from here: it is another instance.
    fn clone(&self) -> Self {
        Instance::default()
    }
}

impl ClusterState {
    /// The latest generation given to any node: pass it to
    /// [`changed_since`](Self::changed_since) later to learn what changed
    /// in between.
    pub fn generation(&self) -> u64 {
        self.changes
    }

    /// Distinct for every cluster state this process creates, a clone
    /// included (a clone diverges from its original). An index kept across
    /// decisions checks it before trusting [`changed_since`](Self::changed_since):
    /// generations are only comparable within one instance.
    pub fn instance(&self) -> u64 {
        self.instance.0
    }

    /// The nodes whose [`generation`](ClusterNode::generation) is above
    /// `generation` — added, changed or moved in cluster order since then —
    /// each once, with its position in [`nodes`](Self::nodes), oldest change
    /// first. Nodes removed since are not listed: their positions are at or
    /// past the node count, or taken by a node that is listed.
    pub fn changed_since(
        &self,
        generation: u64,
    ) -> impl Iterator<Item = (usize, &ClusterNode)> + '_ {
        self.log
            .since(generation)
            .iter()
            .filter_map(move |&(given, position)| {
                live(&self.nodes, given, position).map(|node| (position, node))
            })
    }
}

/// The node at `position` if it still has `generation`.
fn live(nodes: &[ClusterNode], generation: u64, position: usize) -> Option<&ClusterNode> {
    nodes
        .get(position)
        .filter(|node| node.generation == generation)
}

#[cfg(test)]
mod tests {
    use crate::{ClusterState, NodeId, NodeSpec, Placement, Resources, TaskId, TaskSpec};

    fn changed(cluster: &ClusterState, since: u64) -> Vec<(usize, u64)> {
        cluster
            .changed_since(since)
            .map(|(position, node)| (position, node.id().0))
            .collect()
    }

    #[test]
    fn changes_are_listed_once_with_their_positions() {
        let mut cluster = ClusterState::new();
        for id in 1..=4 {
            let node = NodeSpec::new(NodeId(id), Resources::new(4_000, 4_096));
            cluster.add_node(node).unwrap();
        }
        assert_eq!(changed(&cluster, 0), vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
        let seen = cluster.generation();
        assert!(changed(&cluster, seen).is_empty());

        let task = TaskSpec::new(TaskId(1), Resources::new(1_000, 1));
        cluster.reserve(&task, &Placement::on(NodeId(2))).unwrap();
        cluster.release(TaskId(1)).unwrap();
        assert_eq!(changed(&cluster, seen), vec![(1, 2)]);

        // Removing node 1 moves node 4 into its place: node 4 is listed
        // at its new position, node 1 not at all.
        cluster.remove_node(NodeId(1)).unwrap();
        assert_eq!(changed(&cluster, seen), vec![(1, 2), (0, 4)]);
    }

    #[test]
    fn the_log_stays_within_twice_the_nodes() {
        let mut cluster = ClusterState::new();
        for id in 1..=3 {
            let node = NodeSpec::new(NodeId(id), Resources::new(4_000, 4_096));
            cluster.add_node(node).unwrap();
        }
        let task = TaskSpec::new(TaskId(1), Resources::new(1_000, 1));
        for _ in 0..1_000 {
            cluster.reserve(&task, &Placement::on(NodeId(3))).unwrap();
            cluster.release(TaskId(1)).unwrap();
        }
        assert!(cluster.log.entries.len() <= 2 * 3 + 64 + 1);
        assert_eq!(changed(&cluster, 0), vec![(0, 1), (1, 2), (2, 3)]);
    }

    #[test]
    fn every_cluster_state_and_clone_is_its_own_instance() {
        let cluster = ClusterState::new();
        let clone = cluster.clone();
        assert_ne!(cluster.instance(), clone.instance());
        assert_ne!(cluster.instance(), ClusterState::new().instance());
    }
}
