//! The [`Policy`] trait: where should this task run?
//!
//! A policy sees one task's [`FeasibleNodes`] — the nodes that passed the
//! one feasibility stage (the node's checks and the policy's own
//! [`filter`](Policy::filter)) — and answers with a [`Placement`] among them
//! or `None` ("fits nowhere"). It never changes the cluster itself: the
//! scheduler reserves what the policy chose and checks it again, so a buggy
//! policy cannot over-commit a node. The trait is object-safe and
//! `Box<dyn Policy>` is itself a policy, which is how policies are swapped
//! at run time; one decision costs one virtual call.
//!
//! A policy ranks; feasibility is not its business. Its filter, if it has
//! one, is handed to the scheduler once, and every path that places a task
//! holds to it (see `cluster/feasible.rs`): normal placement and drains
//! (the view `select` gets), preemption (a node is a candidate only when
//! the task passes the stage on the node as it would be once the victims
//! are evicted, so a cap on use counts what eviction frees) and the
//! rebalancer (targets ranked only among the nodes that pass it).

use std::sync::Arc;

use crate::clock::Timestamp;
use crate::cluster::{ClusterState, FeasibleNodes, NodeFilter, Placement};
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
    /// When this run started, by the scheduler's clock (for a run adopted
    /// from elsewhere, when it was adopted).
    pub started: Timestamp,
    /// When it ended (now), by the scheduler's clock: see
    /// [`ran_s`](Self::ran_s).
    pub ended: Timestamp,
}

impl Feedback<'_> {
    /// How long this run lasted, in seconds (`ended - started`): what a
    /// policy that learns lifetimes observes.
    pub fn ran_s(&self) -> f64 {
        self.ended.0.saturating_sub(self.started.0) as f64 / 1e6
    }
}

/// A placement policy.
///
/// Only [`name`](Policy::name) and [`select`](Policy::select) are required;
/// the hooks default to doing nothing, and [`filter`](Policy::filter) to
/// adding no rule of its own.
///
/// ```
/// use lepton_core::{policy_fn, FeasibleNodes, Placement, Policy};
///
/// // A one-line rule: the first node with room.
/// let first = policy_fn("first", |nodes: &FeasibleNodes<'_>| {
///     nodes.first_fit().map(|node| Placement::on(node.id()))
/// });
/// let policy: Box<dyn Policy> = Box::new(first);
/// assert_eq!(policy.name(), "first");
/// ```
pub trait Policy: Send {
    /// A short name for reports and logs.
    fn name(&self) -> &str;

    /// Chooses where `nodes.task()` runs among `nodes` (the nodes that
    /// passed the feasibility stage, this policy's filter included), or
    /// `None` to leave it waiting.
    ///
    /// The scheduler re-checks the choice and counts one outside `nodes`
    /// (or on GPUs without room) as a policy error.
    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement>;

    /// This policy's own rules for where a task may run, on top of the
    /// node's checks (a rules file's labels, a cap on use); `None`, the
    /// default, adds none.
    ///
    /// The scheduler asks once, when the policy is installed, and applies
    /// the filter on every path that places a task: the view `select`
    /// gets, drains, preemption and the rebalancer.
    fn filter(&self) -> Option<Arc<dyn NodeFilter>> {
        None
    }

    /// Called when a run starts, with the run's seed: a policy that draws
    /// random numbers reseeds from it, so the run is reproducible.
    fn reseed(&mut self, _seed: u64) {}

    /// Called once at the start of each scheduling cycle (and of a drain),
    /// before its first [`select`](Policy::select), with the scheduler's
    /// clock: the place to refresh per-cycle caches, and what a policy that
    /// reasons about time (when its tasks will end) reads as now.
    fn begin_cycle(&mut self, _cluster: &ClusterState, _now: Timestamp) {}

    /// Called when a task this scheduler placed has ended.
    fn observe(&mut self, _feedback: &Feedback<'_>) {}

    /// What this policy would choose for `task` on `cluster` now, without
    /// booking it: the pipeline of one decision (its filter, the view of
    /// feasible nodes, its `select`), for tests and what-if questions.
    ///
    /// ```
    /// use lepton_core::{
    ///     policy_fn, ClusterState, Error, FeasibleNodes, NodeId, NodeSpec, Placement, Policy,
    ///     Resources, TaskId, TaskSpec,
    /// };
    ///
    /// let mut first = policy_fn("first", |nodes: &FeasibleNodes<'_>| {
    ///     nodes.first_fit().map(|node| Placement::on(node.id()))
    /// });
    /// let mut cluster = ClusterState::new();
    /// cluster.add_node(NodeSpec::new(NodeId(1), Resources::new(4_000, 4_096)))?;
    /// let task = TaskSpec::new(TaskId(1), Resources::new(1_000, 1_024));
    /// assert_eq!(first.decide(&task, &cluster), Some(Placement::on(NodeId(1))));
    /// # Ok::<(), Error>(())
    /// ```
    fn decide(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement>
    where
        Self: Sized,
    {
        let filter = self.filter();
        self.select(&cluster.feasible(task, filter.as_deref()))
    }
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
    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        (**self).select(nodes)
    }
    fn filter(&self) -> Option<Arc<dyn NodeFilter>> {
        (**self).filter()
    }
    fn reseed(&mut self, seed: u64) {
        (**self).reseed(seed)
    }
    fn begin_cycle(&mut self, cluster: &ClusterState, now: Timestamp) {
        (**self).begin_cycle(cluster, now)
    }
    fn observe(&mut self, feedback: &Feedback<'_>) {
        (**self).observe(feedback)
    }
}

impl<P: Policy + ?Sized> Policy for &mut P {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        (**self).select(nodes)
    }
    fn filter(&self) -> Option<Arc<dyn NodeFilter>> {
        (**self).filter()
    }
    fn reseed(&mut self, seed: u64) {
        (**self).reseed(seed)
    }
    fn begin_cycle(&mut self, cluster: &ClusterState, now: Timestamp) {
        (**self).begin_cycle(cluster, now)
    }
    fn observe(&mut self, feedback: &Feedback<'_>) {
        (**self).observe(feedback)
    }
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
    F: FnMut(&FeasibleNodes<'_>) -> Option<Placement> + Send,
{
    FnPolicy {
        name: name.into(),
        select,
    }
}

impl<F> Policy for FnPolicy<F>
where
    F: FnMut(&FeasibleNodes<'_>) -> Option<Placement> + Send,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        (self.select)(nodes)
    }
}
