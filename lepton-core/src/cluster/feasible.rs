//! The one feasibility stage, and [`FeasibleNodes`]: the view of the nodes
//! that pass it, which is all a policy chooses from.
//!
//! Where a task *may* run is decided here, once: the node's own checks
//! (state, free capacity and GPUs, GPU model, node selector, taints,
//! anti-affinity, nodes to avoid, the largest task it takes) and then the
//! policy's [`NodeFilter`], a rule a policy adds (a rules file's labels,
//! zones, utilization caps). Ranking is the policy's business; feasibility
//! is not. As Nomad hands its rankers only the nodes its feasibility
//! checkers let through, the scheduler hands [`Policy::select`] only this
//! view, so a policy never applies a filter itself and cannot forget one.
//! Every other path that places a task holds to the same stage: drains,
//! preemption (on the node as it would be once its victims are evicted)
//! and the rebalancer.
//!
//! The view searches the cluster's indexes of free capacity (see
//! `index.rs`): first, tightest and loosest fit in O(log n) for the common
//! case. The indexes prune only on capacity, so a filter never makes an
//! answer wrong; at worst a filter that refuses most nodes makes a search
//! walk more of the index.
//!
//! [`Policy::select`]: crate::Policy::select

use super::{ClusterNode, ClusterState};
use crate::error::Misfit;
use crate::task::TaskSpec;

/// A policy's own rule for where a task may run, on top of the node's
/// checks (which run first, so `node` has room for the task).
///
/// Any `Fn(&TaskSpec, &ClusterNode) -> Result<(), Misfit>` that is `Send +
/// Sync` is one. During preemption `node` is the node as it would be once
/// its victims are evicted — not a node of the cluster state, so its
/// [`generation`](ClusterNode::generation) is 0: never cache by it.
///
/// Preemption assumes a filter does not admit a task it refused merely
/// because the task asks for more (within a cycle it skips searching again
/// for a task of no higher priority that asks at least as much as one that
/// found no victims); caps on use and rules on labels qualify.
pub trait NodeFilter: Send + Sync {
    /// `Err(`[`Misfit::Policy`]`)` with the reason refuses the node.
    ///
    /// # Errors
    /// Why `task` may not run on `node`.
    fn check(&self, task: &TaskSpec, node: &ClusterNode) -> Result<(), Misfit>;
}

impl<F> NodeFilter for F
where
    F: Fn(&TaskSpec, &ClusterNode) -> Result<(), Misfit> + Send + Sync,
{
    fn check(&self, task: &TaskSpec, node: &ClusterNode) -> Result<(), Misfit> {
        self(task, node)
    }
}

impl std::fmt::Debug for dyn NodeFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeFilter")
    }
}

/// The stage itself: the node's checks, then the filter. Needs no cluster,
/// so it judges a node in thought too (preemption's).
pub(crate) fn check(
    task: &TaskSpec,
    filter: Option<&dyn NodeFilter>,
    node: &ClusterNode,
) -> Result<(), Misfit> {
    node.check(task)?;
    match filter {
        Some(filter) => filter.check(task, node),
        None => Ok(()),
    }
}

/// The stage's yes or no at the searches' speed: capacity first, no
/// [`Misfit`] built, the filter only for nodes with room.
#[inline(always)]
fn admits(task: &TaskSpec, filter: Option<&dyn NodeFilter>, node: &ClusterNode) -> bool {
    node.fits(task)
        && match filter {
            None => true,
            Some(filter) => filter_admits(filter, task, node),
        }
}

/// The filter's verdict, out of line: the refusal it builds (and drops)
/// would otherwise bloat every scan that inlines [`admits`], and keep the
/// unfiltered scans from being inlined at all.
#[inline(never)]
fn filter_admits(filter: &dyn NodeFilter, task: &TaskSpec, node: &ClusterNode) -> bool {
    filter.check(task, node).is_ok()
}

/// The nodes where one task may run now: those that pass the feasibility
/// stage (the node's checks and the policy's [`NodeFilter`]). Get one with
/// [`ClusterState::feasible`]; [`Policy::select`](crate::Policy::select)
/// receives one.
///
/// Every node it yields passes the stage; [`check`](Self::check) says why
/// any other node does not. The cluster is there to read
/// ([`cluster`](Self::cluster): utilization, the largest node), but a
/// choice must be a node of this view: the scheduler re-checks every
/// choice and counts one outside it as a policy error.
///
/// ```
/// use lepton_core::cluster::ClusterNode;
/// use lepton_core::{ClusterState, Error, Misfit, NodeId, NodeSpec, Resources, TaskId, TaskSpec};
///
/// let mut cluster = ClusterState::new();
/// for (id, cores, zone) in [(1, 8, "a"), (2, 4, "b"), (3, 6, "a")] {
///     let node = NodeSpec::new(NodeId(id), Resources::new(cores * 1_000, 8_192)).with_zone(zone);
///     cluster.add_node(node)?;
/// }
/// let task = TaskSpec::new(TaskId(1), Resources::new(2_000, 1_024));
/// let nodes = cluster.feasible(&task, None);
/// assert_eq!(nodes.tightest_fit().map(|node| node.id()), Some(NodeId(2)));
/// assert_eq!(nodes.count(), 3);
///
/// // A policy that allows zone `a` only has that as its filter.
/// let zone_a = |_: &TaskSpec, node: &ClusterNode| match node.spec().zone.as_deref() {
///     Some("a") => Ok(()),
///     _ => Err(Misfit::Policy("zone a only".into())),
/// };
/// let nodes = cluster.feasible(&task, Some(&zone_a));
/// assert_eq!(nodes.tightest_fit().map(|node| node.id()), Some(NodeId(3)));
/// let two = cluster.node(NodeId(2)).expect("added");
/// assert_eq!(nodes.check(two), Err(Misfit::Policy("zone a only".into())));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct FeasibleNodes<'a> {
    cluster: &'a ClusterState,
    task: &'a TaskSpec,
    filter: Option<&'a dyn NodeFilter>,
}

impl std::fmt::Debug for FeasibleNodes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeasibleNodes")
            .field("task", &self.task.id)
            .field("filtered", &self.filter.is_some())
            .finish_non_exhaustive()
    }
}

impl ClusterState {
    /// The nodes where `task` may run now under `filter` (a policy's
    /// [`filter`](crate::Policy::filter), or `None`): the one feasibility
    /// stage, as a view to choose from.
    pub fn feasible<'a>(
        &'a self,
        task: &'a TaskSpec,
        filter: Option<&'a dyn NodeFilter>,
    ) -> FeasibleNodes<'a> {
        FeasibleNodes {
            cluster: self,
            task,
            filter,
        }
    }
}

impl<'a> FeasibleNodes<'a> {
    /// The task to place.
    pub fn task(&self) -> &'a TaskSpec {
        self.task
    }

    /// The whole cluster, to read (utilization, the largest node, other
    /// nodes' load); choose among this view's nodes only.
    pub fn cluster(&self) -> &'a ClusterState {
        self.cluster
    }

    /// Whether the task may run on `node` (any node, in this cluster or
    /// not), and if not, the first reason.
    ///
    /// # Errors
    /// The node's first [`Misfit`], or the filter's refusal.
    pub fn check(&self, node: &ClusterNode) -> Result<(), Misfit> {
        check(self.task, self.filter, node)
    }

    /// [`check`](Self::check) without the reason, at the index searches'
    /// speed: capacity first, no [`Misfit`] built.
    #[inline]
    pub fn admits(&self, node: &ClusterNode) -> bool {
        admits(self.task, self.filter, node)
    }

    /// The nodes, in cluster order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = &'a ClusterNode> + 'a {
        self.with_positions().map(|(_, node)| node)
    }

    /// The nodes with their positions in [`ClusterState::nodes`], in
    /// cluster order (for caches kept per position).
    #[inline]
    pub fn with_positions(&self) -> impl Iterator<Item = (usize, &'a ClusterNode)> + 'a {
        Scan {
            nodes: self.cluster.nodes.iter().enumerate(),
            task: self.task,
            filter: self.filter,
        }
    }

    /// How many nodes there are (a scan).
    pub fn count(&self) -> usize {
        self.iter().count()
    }

    /// Whether there is none (through the index).
    pub fn is_empty(&self) -> bool {
        self.first_fit().is_none()
    }

    /// The first node in cluster order (first fit).
    #[inline]
    pub fn first_fit(&self) -> Option<&'a ClusterNode> {
        let nodes = &self.cluster.nodes;
        let candidate = |position: usize| nodes.get(position).is_some_and(|n| self.admits(n));
        self.cluster
            .fit_tree
            .leftmost(self.task, candidate)
            .map(|p| &nodes[p])
    }

    /// The node with the least free CPU and GPU — each normalised by the
    /// largest node's, then summed — and so the least
    /// [left over](Self::leftover_share) after placing the task (best
    /// fit); the earliest in cluster order on ties.
    #[inline]
    pub fn tightest_fit(&self) -> Option<&'a ClusterNode> {
        self.by_free_key(Order::Least)
    }

    /// The node with the most free CPU and GPU, normalised as in
    /// [`tightest_fit`](Self::tightest_fit) (worst fit, spreading); the
    /// earliest in cluster order on ties.
    #[inline]
    pub fn loosest_fit(&self) -> Option<&'a ClusterNode> {
        self.by_free_key(Order::Most)
    }

    /// The node with the least or the most free key, walking the ordered
    /// index from the task's own key (no node with less free can hold it).
    #[inline]
    fn by_free_key(&self, order: Order) -> Option<&'a ClusterNode> {
        let (cluster, task) = (self.cluster, self.task);
        if !cluster.fit_tree.may_fit_somewhere(task) {
            return None;
        }
        let request = cluster
            .scale
            .key(task.request.cpu_milli, task.gpu.total_milli());
        let candidate = |position: usize| self.admits(&cluster.nodes[position]);
        let index = cluster.free_index.read(&cluster.nodes, cluster.scale);
        let position = match order {
            Order::Least => index.smallest_from(task, request, candidate),
            Order::Most => index.largest_down_to(task, request, candidate),
        };
        position.map(|p| &cluster.nodes[p])
    }

    /// What would be left on `node` after placing the task: its free CPU
    /// and GPU, each normalised by the largest node's and weighted ½ (the
    /// BestFit leftover of the FGD paper's simulator). 0.0 is a perfect
    /// fit. The same quantity orders [`tightest_fit`](Self::tightest_fit)
    /// and [`loosest_fit`](Self::loosest_fit).
    pub fn leftover_share(&self, node: &ClusterNode) -> f64 {
        let (scale, task) = (self.cluster.scale, self.task);
        let key = scale.key(
            node.free.cpu_milli.saturating_sub(task.request.cpu_milli),
            node.gpu_free_milli_total()
                .saturating_sub(task.gpu.total_milli()),
        );
        scale.half_share(key)
    }
}

/// A scan of the nodes that pass the stage: a loop of its own rather than
/// `filter` with a closure, which the compiler kept out of scoring
/// policies' loops (the decide bench's plain scan ran 15-25 % slower).
struct Scan<'a> {
    nodes: std::iter::Enumerate<std::slice::Iter<'a, ClusterNode>>,
    task: &'a TaskSpec,
    filter: Option<&'a dyn NodeFilter>,
}

impl<'a> Iterator for Scan<'a> {
    type Item = (usize, &'a ClusterNode);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        for (position, node) in self.nodes.by_ref() {
            if admits(self.task, self.filter, node) {
                return Some((position, node));
            }
        }
        None
    }
}

/// Which end of the free-key order a search wants.
#[derive(Debug, Clone, Copy)]
enum Order {
    Least,
    Most,
}
