//! The [`Policy`] trait: where should this task run?
//!
//! A policy sees one task and a read-only [`ClusterState`] and answers with a
//! [`Placement`] or `None` ("fits nowhere"). It never changes the cluster
//! itself: the scheduler reserves what the policy chose and checks it again,
//! so a buggy policy cannot over-commit a node. The trait is object-safe and
//! `Box<dyn Policy>` is itself a policy, which is how policies are swapped at
//! run time; one decision costs one virtual call.
//!
//! # Feasibility: one stage, every path
//! Where a task *may* run is decided in one place, [`check_feasible`]: the
//! node's own checks ([`ClusterNode::check`]: state, free capacity and GPUs,
//! GPU model, node selector, taints, anti-affinity, nodes to avoid, the
//! largest task it takes) and then the policy's [`filter`](Policy::filter),
//! a hook a policy overrides to add its own rules (a rules file's labels,
//! zones, utilization caps). Ranking is the policy's business; feasibility
//! is not, so the scheduler holds every path to the same stage, as
//! kube-scheduler keeps its filter plugins in charge during preemption and
//! Nomad runs feasibility before ranking:
//! - normal placement and drains: the policy's choice is re-checked with
//!   [`check_feasible`]; a choice its own filter refuses is a policy error,
//!   like a choice without room;
//! - preemption: a node is a candidate only when the task passes
//!   [`check_feasible`] on the node *as it would be once the victims are
//!   evicted*, so a utilization cap counts what eviction frees, and victims
//!   are added until it passes;
//! - the rebalancer: targets are ranked (coldest first) only among the
//!   nodes that pass it.
//!
//! Policies that search the cluster's indexes pass their filter to
//! [`NodeSearch`](crate::NodeSearch), which keeps the index's speed.

use crate::cluster::{ClusterNode, ClusterState, Placement};
use crate::error::Misfit;
use crate::node::NodeId;
use crate::task::TaskSpec;

/// How a task that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// It finished successfully.
    Completed,
    /// It failed.
    Failed,
    /// It ran past its timeout.
    TimedOut,
}

impl Outcome {
    /// The seed article's reward: +1 when a task completes, −1 when it times
    /// out or fails.
    pub fn reward(self) -> f64 {
        match self {
            Outcome::Completed => 1.0,
            Outcome::Failed | Outcome::TimedOut => -1.0,
        }
    }
}

/// What a policy learns when a task it placed ends.
#[derive(Debug, Clone, Copy)]
pub struct Feedback<'a> {
    /// The task.
    pub task: &'a TaskSpec,
    /// Where it ran.
    pub node: NodeId,
    /// How it ended.
    pub outcome: Outcome,
}

/// A placement policy.
///
/// Only [`name`](Policy::name) and [`select`](Policy::select) are required;
/// the hooks default to doing nothing, and [`filter`](Policy::filter) to
/// adding no rule of its own.
///
/// ```
/// use lepton_core::{policy_fn, ClusterState, Placement, Policy, TaskSpec};
///
/// // A one-line rule: the first node with room.
/// let first = policy_fn("first", |task: &TaskSpec, cluster: &ClusterState| {
///     cluster.feasible_nodes(task).next().map(|node| Placement::on(node.id()))
/// });
/// let policy: Box<dyn Policy> = Box::new(first);
/// assert_eq!(policy.name(), "first");
/// ```
pub trait Policy: Send {
    /// A short name for reports and logs.
    fn name(&self) -> &str;

    /// Chooses where `task` runs, or `None` when it fits nowhere.
    ///
    /// The choice must pass [`check_feasible`] with this policy: the
    /// scheduler re-checks it and counts a refused choice as a policy error.
    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement>;

    /// This policy's own rules for where `task` may run, on top of the
    /// node's checks (which [`check_feasible`] runs first, so `node` here
    /// has room for the task): `Err(`[`Misfit::Policy`]`)` with the reason
    /// refuses the node. The default refuses nothing.
    ///
    /// Every path that places a task consults it through
    /// [`check_feasible`]: normal placement, drains, preemption and the
    /// rebalancer. During preemption `node` is the node as it would be once
    /// its victims are evicted — not a node of the cluster state, so its
    /// [`generation`](ClusterNode::generation) is 0: never cache by it.
    ///
    /// Preemption assumes a filter does not admit a task it refused merely
    /// because the task asks for more (within a cycle it skips searching
    /// again for a task of no higher priority that asks at least as much as
    /// one that found no victims); caps on use and rules on labels qualify.
    fn filter(&self, _task: &TaskSpec, _node: &ClusterNode) -> Result<(), Misfit> {
        Ok(())
    }

    /// Called when a run starts, with the run's seed: a policy that draws
    /// random numbers reseeds from it, so the run is reproducible.
    fn reseed(&mut self, _seed: u64) {}

    /// Called once at the start of each scheduling cycle, before the cycle's
    /// first [`select`](Policy::select): the place to refresh per-cycle caches.
    fn begin_cycle(&mut self, _cluster: &ClusterState) {}

    /// Called when a task this scheduler placed has ended.
    fn observe(&mut self, _feedback: &Feedback<'_>) {}
}

impl std::fmt::Debug for dyn Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Policy({})", self.name())
    }
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        (**self).select(task, cluster)
    }
    fn filter(&self, task: &TaskSpec, node: &ClusterNode) -> Result<(), Misfit> {
        (**self).filter(task, node)
    }
    fn reseed(&mut self, seed: u64) {
        (**self).reseed(seed)
    }
    fn begin_cycle(&mut self, cluster: &ClusterState) {
        (**self).begin_cycle(cluster)
    }
    fn observe(&mut self, feedback: &Feedback<'_>) {
        (**self).observe(feedback)
    }
}

impl<P: Policy + ?Sized> Policy for &mut P {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        (**self).select(task, cluster)
    }
    fn filter(&self, task: &TaskSpec, node: &ClusterNode) -> Result<(), Misfit> {
        (**self).filter(task, node)
    }
    fn reseed(&mut self, seed: u64) {
        (**self).reseed(seed)
    }
    fn begin_cycle(&mut self, cluster: &ClusterState) {
        (**self).begin_cycle(cluster)
    }
    fn observe(&mut self, feedback: &Feedback<'_>) {
        (**self).observe(feedback)
    }
}

/// Whether `task` may run on `node` now under `policy`: the node's own
/// checks ([`ClusterNode::check`]), then the policy's
/// [`filter`](Policy::filter).
///
/// This is the one feasibility stage, and every path that places a task
/// consults it: the scheduler re-checks each choice of the policy with it
/// (placement and drains; a refused choice is a policy error), preemption
/// considers a node only when the task passes it on the node as it would be
/// once the victims are evicted (so a cap on use counts what eviction
/// frees), and the rebalancer ranks its targets only among the nodes that
/// pass it.
///
/// ```
/// use lepton_core::*;
///
/// let mut cluster = ClusterState::new();
/// cluster.add_node(NodeSpec::new(NodeId(1), Resources::new(4_000, 4_096)))?;
/// let node = cluster.node(NodeId(1)).expect("just added");
/// let small = TaskSpec::new(TaskId(1), Resources::new(1_000, 1_024));
/// let large = TaskSpec::new(TaskId(2), Resources::new(8_000, 1_024));
/// let any = policy_fn("any", |_: &TaskSpec, _: &ClusterState| None);
/// assert_eq!(check_feasible(&any, &small, node), Ok(()));
/// assert_eq!(
///     check_feasible(&any, &large, node),
///     Err(Misfit::Insufficient(Dimension::CpuMilli))
/// );
/// # Ok::<(), Error>(())
/// ```
///
/// # Errors
/// The node's first [`Misfit`], or the policy's refusal.
pub fn check_feasible<P: Policy + ?Sized>(
    policy: &P,
    task: &TaskSpec,
    node: &ClusterNode,
) -> Result<(), Misfit> {
    node.check(task)?;
    policy.filter(task, node)
}

/// A policy made from a closure; see [`policy_fn`].
#[derive(Clone)]
pub struct FnPolicy<F> {
    name: String,
    select: F,
}

impl<F> std::fmt::Debug for FnPolicy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnPolicy")
            .field("name", &self.name)
            .finish()
    }
}

/// Makes a policy from a name and a closure.
pub fn policy_fn<F>(name: impl Into<String>, select: F) -> FnPolicy<F>
where
    F: FnMut(&TaskSpec, &ClusterState) -> Option<Placement> + Send,
{
    FnPolicy {
        name: name.into(),
        select,
    }
}

impl<F> Policy for FnPolicy<F>
where
    F: FnMut(&TaskSpec, &ClusterState) -> Option<Placement> + Send,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement> {
        (self.select)(task, cluster)
    }
}
