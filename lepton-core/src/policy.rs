//! The [`Policy`] trait: where should this task run?
//!
//! A policy sees one task and a read-only [`ClusterState`] and answers with a
//! [`Placement`] or `None` ("fits nowhere"). It never changes the cluster
//! itself: the scheduler reserves what the policy chose and checks it again,
//! so a buggy policy cannot over-commit a node. The trait is object-safe and
//! `Box<dyn Policy>` is itself a policy, which is how policies are swapped at
//! run time; one decision costs one virtual call.

use crate::cluster::{ClusterState, Placement};
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
/// the hooks default to doing nothing.
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
    fn select(&mut self, task: &TaskSpec, cluster: &ClusterState) -> Option<Placement>;

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
