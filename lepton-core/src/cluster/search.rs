//! [`NodeSearch`]: the index API policies call to find a node by free
//! capacity without scanning.
//!
//! The cluster state keeps its indexes up to date as part of its
//! accounting (see `index.rs`); which node a policy *wants* is the policy's
//! business. So the searches live here, apart from the accounting, and each
//! takes the policy's filter: a node is a candidate when the task fits there
//! ([`ClusterNode::fits`]) and the filter admits it. The indexes prune only
//! on capacity, so a filter never makes an answer wrong — at worst, a filter
//! that refuses most nodes makes the search walk more of the index.

use super::{ClusterNode, ClusterState};
use crate::task::TaskSpec;

/// Searches over the cluster's indexes of free capacity; get one with
/// [`ClusterState::search`].
///
/// Each search returns the node a scan over
/// [`feasible_nodes`](ClusterState::feasible_nodes) filtered by `admit`
/// would return, without the scan. A policy passes its own
/// [`filter`](crate::Policy::filter) as `admit`, or `|_| true` when it has
/// none.
///
/// ```
/// use lepton_core::*;
///
/// let mut cluster = ClusterState::new();
/// for (id, cores, zone) in [(1, 8, "a"), (2, 4, "b"), (3, 6, "a")] {
///     let node = NodeSpec::new(NodeId(id), Resources::new(cores * 1_000, 8_192)).with_zone(zone);
///     cluster.add_node(node)?;
/// }
/// let task = TaskSpec::new(TaskId(1), Resources::new(2_000, 1_024));
/// let tightest = cluster.search().tightest_fit(&task, |_| true);
/// assert_eq!(tightest.map(|node| node.id()), Some(NodeId(2)));
/// // A policy that allows zone `a` only passes that as its filter.
/// let in_zone_a = |node: &ClusterNode| node.spec().zone.as_deref() == Some("a");
/// let tightest = cluster.search().tightest_fit(&task, in_zone_a);
/// assert_eq!(tightest.map(|node| node.id()), Some(NodeId(3)));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct NodeSearch<'a> {
    cluster: &'a ClusterState,
}

impl<'a> NodeSearch<'a> {
    pub(super) fn new(cluster: &'a ClusterState) -> Self {
        NodeSearch { cluster }
    }

    /// The first node in cluster order where `task` fits and that `admit`
    /// lets it onto (first fit).
    pub fn first_fit(
        &self,
        task: &TaskSpec,
        admit: impl Fn(&ClusterNode) -> bool,
    ) -> Option<&'a ClusterNode> {
        let nodes = &self.cluster.nodes;
        let candidate = |position: usize| {
            nodes
                .get(position)
                .is_some_and(|node| node.fits(task) && admit(node))
        };
        self.cluster
            .fit_tree
            .leftmost(task, candidate)
            .map(|p| &nodes[p])
    }

    /// Among the nodes where `task` fits and that `admit` lets it onto, the
    /// one with the least free CPU and GPU — each normalised by the largest
    /// node's, then summed — and so the least
    /// [left over](Self::leftover_share) after placing `task` (best fit);
    /// the earliest in cluster order on ties.
    pub fn tightest_fit(
        &self,
        task: &TaskSpec,
        admit: impl Fn(&ClusterNode) -> bool,
    ) -> Option<&'a ClusterNode> {
        self.by_free_key(task, admit, Order::Least)
    }

    /// Among the nodes where `task` fits and that `admit` lets it onto, the
    /// one with the most free CPU and GPU, normalised as in
    /// [`tightest_fit`](Self::tightest_fit) (worst fit, spreading); the
    /// earliest in cluster order on ties.
    pub fn loosest_fit(
        &self,
        task: &TaskSpec,
        admit: impl Fn(&ClusterNode) -> bool,
    ) -> Option<&'a ClusterNode> {
        self.by_free_key(task, admit, Order::Most)
    }

    /// The candidate with the least or the most free key, walking the
    /// ordered index from the task's own key (no node with less free can
    /// hold it).
    fn by_free_key(
        &self,
        task: &TaskSpec,
        admit: impl Fn(&ClusterNode) -> bool,
        order: Order,
    ) -> Option<&'a ClusterNode> {
        let cluster = self.cluster;
        if !cluster.fit_tree.may_fit_somewhere(task) {
            return None;
        }
        let request = cluster
            .scale
            .key(task.request.cpu_milli, task.gpu.total_milli());
        let candidate = |position: usize| {
            let node = &cluster.nodes[position];
            node.fits(task) && admit(node)
        };
        let index = &cluster.free_index;
        let position = match order {
            Order::Least => index.smallest_from(task, request, candidate),
            Order::Most => index.largest_down_to(task, request, candidate),
        };
        position.map(|p| &cluster.nodes[p])
    }

    /// What would be left on `node` after placing `task`: its free CPU and
    /// GPU, each normalised by the largest node's and weighted ½ (the BestFit
    /// leftover of the FGD paper's simulator). 0.0 is a perfect fit. The
    /// same quantity orders [`tightest_fit`](Self::tightest_fit) and
    /// [`loosest_fit`](Self::loosest_fit).
    pub fn leftover_share(&self, task: &TaskSpec, node: &ClusterNode) -> f64 {
        let scale = self.cluster.scale;
        let key = scale.key(
            node.free.cpu_milli.saturating_sub(task.request.cpu_milli),
            node.gpu_free_milli_total()
                .saturating_sub(task.gpu.total_milli()),
        );
        scale.half_share(key)
    }
}

/// Which end of the free-key order a search wants.
#[derive(Debug, Clone, Copy)]
enum Order {
    Least,
    Most,
}
