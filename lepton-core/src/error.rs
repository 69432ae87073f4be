//! The one error type of `lepton-core`.

use std::borrow::Cow;

use crate::node::{NodeId, NodeState};
use crate::resources::Dimension;
use crate::task::{Run, TaskId};

/// Why a task cannot be placed on a particular node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misfit {
    /// The node is cordoned or down.
    #[error("the node is {0}, not ready")]
    NotReady(NodeState),
    /// Not enough free capacity in this dimension.
    #[error("not enough free {0}")]
    Insufficient(Dimension),
    /// Too few GPUs with enough free milli-GPUs.
    #[error("fewer than {count} GPUs with {milli_per_gpu} milli free")]
    Gpus {
        /// GPUs needed.
        count: u32,
        /// Milli-GPUs needed on each.
        milli_per_gpu: u32,
    },
    /// The node's GPU model is not one the task accepts.
    #[error("the node's GPU model ({}) is not one the task accepts", found.as_deref().unwrap_or("none"))]
    GpuModel {
        /// The node's model, if any.
        found: Option<String>,
    },
    /// A label the task selects is missing or has another value.
    #[error("label {key}={value} is missing")]
    NodeSelector {
        /// The label key.
        key: String,
        /// The value required.
        value: String,
    },
    /// The node has a taint the task does not tolerate.
    #[error("taint {key}={value} is not tolerated")]
    Taint {
        /// The taint key.
        key: String,
        /// The taint value.
        value: String,
    },
    /// As many tasks of the same anti-affinity group as the task allows on
    /// one node already run there.
    #[error("anti-affinity group {0:?} already runs there as often as it may")]
    AntiAffinity(String),
    /// The task is to avoid this node.
    #[error("the task avoids this node")]
    Avoided,
    /// The task asks for more than one task may have on this node
    /// ([`NodeSpec::max_task`](crate::NodeSpec::max_task)) in this dimension.
    #[error("more {0} than one task may have here")]
    LargerThanOneTask(Dimension),
    /// The policy's own filter ([`Policy::filter`](crate::Policy::filter))
    /// refuses the node, for the reason given (a rules file's filter, for
    /// example). Borrowed text costs no allocation, so a filter can refuse
    /// many nodes cheaply.
    #[error("the policy refuses it: {0}")]
    Policy(Cow<'static, str>),
    /// The GPUs chosen for the task are not valid on this node.
    #[error("GPU choice {gpus:?} is invalid: {why}")]
    GpuChoice {
        /// The GPU indexes chosen.
        gpus: Vec<u32>,
        /// What is wrong with them.
        why: &'static str,
    },
}

/// Everything that can go wrong in `lepton-core`.
///
/// Each variant names the offending task or node and the value at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task asks for nothing at all.
    #[error("task {task} requests nothing: every resource and GPU amount is 0")]
    ZeroRequest {
        /// The task.
        task: TaskId,
    },
    /// A task's timeout is 0 ms: every run would time out at once.
    #[error(
        "task {task} has timeout_ms = 0; a timeout must be at least 1 ms (or absent for none)"
    )]
    ZeroTimeout {
        /// The task.
        task: TaskId,
    },
    /// `max_per_node` is 0, or given without an anti-affinity group.
    #[error(
        "task {task} has max_per_node = {limit}; it must be at least 1 and come with an anti_affinity group"
    )]
    MaxPerNode {
        /// The task.
        task: TaskId,
        /// The value given.
        limit: u32,
    },
    /// A task asks for more than one GPU's worth on a single GPU.
    #[error("task {task} asks for {milli} milli-GPUs on one GPU; a GPU has 1000")]
    GpuShareTooLarge {
        /// The task.
        task: TaskId,
        /// The share asked for.
        milli: u32,
    },
    /// A task's GPU count and per-GPU share disagree (one is zero, not the other).
    #[error("task {task} asks for {count} GPUs with {milli_per_gpu} milli each; both must be 0 or both positive")]
    InconsistentGpuRequest {
        /// The task.
        task: TaskId,
        /// GPUs asked for.
        count: u32,
        /// Milli-GPUs asked for on each.
        milli_per_gpu: u32,
    },
    /// A task with this id was already submitted.
    #[error("task {task} was already submitted")]
    DuplicateTask {
        /// The task.
        task: TaskId,
    },
    /// A task names a queue that is not declared
    /// ([`Admission`](crate::admission::Admission)).
    #[error("task {task} names queue {queue:?}, which is not declared")]
    UnknownQueue {
        /// The task.
        task: TaskId,
        /// The queue it names.
        queue: String,
    },
    /// A task larger than a queue's maximum: it could never be admitted.
    #[error(
        "task {task} asks for {resource} {asked}, more than queue {queue} allows at most ({max})"
    )]
    OverQuota {
        /// The task.
        task: TaskId,
        /// The queue whose maximum it exceeds (its own or one above).
        queue: String,
        /// The resource: `cpu_milli`, `memory_mib` or `gpu_milli`.
        resource: &'static str,
        /// What the task asks for.
        asked: u64,
        /// The queue's maximum.
        max: u64,
    },
    /// A queue declared twice.
    #[error("queue {queue} is already declared")]
    DuplicateQueue {
        /// The queue's path.
        queue: String,
    },
    /// A gang member whose gang is malformed, or declared otherwise by
    /// the gang's other members.
    #[error("task {task}: gang {gang:?}: {reason}")]
    InvalidGang {
        /// The task.
        task: TaskId,
        /// The gang's name as given.
        gang: String,
        /// What is wrong.
        reason: String,
    },
    /// A queue that cannot be declared.
    #[error("queue {queue:?} is invalid: {reason}")]
    InvalidQueue {
        /// The queue's path as given.
        queue: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A task was submitted through a [`Submitter`](crate::scheduler::Submitter)
    /// whose scheduler has been dropped.
    #[error("task {task} was refused: the scheduler behind this submitter was dropped")]
    SchedulerDropped {
        /// The task.
        task: TaskId,
    },
    /// No task with this id is known.
    #[error("task {task} is unknown")]
    UnknownTask {
        /// The task.
        task: TaskId,
    },
    /// The action does not apply to the task in its current state.
    #[error("cannot {action} task {task}: it is {state}")]
    InvalidTransition {
        /// The task.
        task: TaskId,
        /// What was asked (`complete`, `fail`, `cancel`, …).
        action: &'static str,
        /// The task's state at that moment.
        state: &'static str,
    },
    /// An event names a run of the task other than the current one: a late
    /// or duplicated report from a placement the scheduler already gave up.
    #[error("run {run} is not the current run of task {} (attempt {current}); ignored", run.task)]
    StaleRun {
        /// The run the event named.
        run: Run,
        /// The task's current attempt.
        current: u32,
    },
    /// A node with this id was already added.
    #[error("node {node} was already added")]
    DuplicateNode {
        /// The node.
        node: NodeId,
    },
    /// No node with this id is known.
    #[error("node {node} is unknown")]
    UnknownNode {
        /// The node.
        node: NodeId,
    },
    /// The action needs a healthy node, and this one is down.
    #[error("cannot {action} node {node}: it is down (bring it up first)")]
    NodeDown {
        /// The node.
        node: NodeId,
        /// What was asked (`cordon`, `uncordon`).
        action: &'static str,
    },
    /// A node offers no capacity at all.
    #[error("node {node} offers no capacity: every resource and GPU amount is 0")]
    ZeroCapacity {
        /// The node.
        node: NodeId,
    },
    /// A node declares more GPUs than Lepton tracks per node.
    #[error("node {node} declares {count} GPUs; at most {max} per node are supported")]
    TooManyGpus {
        /// The node.
        node: NodeId,
        /// GPUs declared.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// A node's price is negative, NaN or above
    /// [`MAX_PRICE_PER_HOUR`](crate::model::MAX_PRICE_PER_HOUR).
    #[error("node {node} has price per hour {}; it must be from 0 to 1e6", readable_number(*price))]
    InvalidPrice {
        /// The node.
        node: NodeId,
        /// The price given.
        price: f64,
    },
    /// A node still holds tasks and cannot be removed from the cluster state.
    #[error("node {node} still runs {tasks} tasks")]
    NodeHasTasks {
        /// The node.
        node: NodeId,
        /// How many tasks.
        tasks: u32,
    },
    /// A task does not fit on the node it was placed on.
    #[error("task {task} does not fit on node {node}: {misfit}")]
    DoesNotFit {
        /// The task.
        task: TaskId,
        /// The node.
        node: NodeId,
        /// Why not.
        #[source]
        misfit: Misfit,
    },
    /// The task already holds an allocation.
    #[error("task {task} already holds resources on node {node}")]
    AlreadyAllocated {
        /// The task.
        task: TaskId,
        /// Where it holds them.
        node: NodeId,
    },
    /// The task holds no allocation to release.
    #[error("task {task} holds no resources")]
    NotAllocated {
        /// The task.
        task: TaskId,
    },
    /// A numeric argument is out of range.
    #[error("{name} = {value} is out of range: {expected}")]
    OutOfRange {
        /// The argument's name.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What was expected.
        expected: &'static str,
    },
}

/// `value` as errors show it: as written for everyday sizes, `1e308` (not
/// 309 digits) for very large or very small ones.
pub fn readable_number(value: f64) -> String {
    let magnitude = value.abs();
    if value.is_finite() && (magnitude >= 1e15 || (magnitude != 0.0 && magnitude < 1e-6)) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}
