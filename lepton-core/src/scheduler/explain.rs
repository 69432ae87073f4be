//! "Why is it pending": [`CoreScheduler::explain`] answers for one task in
//! one go — each node's refusal (the feasibility stage's first [`Misfit`]
//! for it, the policy's filter included), counted per reason as
//! Kubernetes' "0/1000 nodes are available: 612 Insufficient cpu, …", and
//! where the task stands in the scheduler (waiting in its tenant queue,
//! queued for the next cycle, or backing off until when).

use std::fmt;

use super::{CoreScheduler, TaskState};
use crate::error::Misfit;
use crate::task::TaskId;

/// Why a task is where it is; see [`CoreScheduler::explain`]. Its
/// [`Display`](fmt::Display) is the one-line answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Explanation {
    /// The task.
    pub task: TaskId,
    /// Its state now.
    pub state: TaskState,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// For a task that waits (queued or backing off) and that a cycle has
    /// taken in: the nodes that would take it now, and why each other node
    /// refuses it (its first refusal), with how many nodes gave each
    /// reason, the most frequent first. `None` for a task that does not
    /// wait, or whose spec no cycle has taken in yet.
    pub refusals: Option<Refusals>,
    /// For a task its tenant queue holds (not admitted yet): why, as
    /// [`Admission::why_waiting`](crate::admission::Admission::why_waiting)
    /// says. The nodes are not asked then (`refusals` is `None`).
    pub queue: Option<String>,
    /// For a task held with its gang: why the gang has not started.
    /// The nodes are not asked then (`refusals` is `None`).
    pub gang: Option<String>,
    /// The node held for it with backfill, if one is.
    pub reservation: Option<super::Reservation>,
}

/// What the nodes say to a waiting task; see [`Explanation::refusals`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Refusals {
    /// Nodes that would take it now.
    pub available: usize,
    /// Each reason a node refused it, with how many nodes gave it, the most
    /// frequent first (ties in the order first met in cluster order).
    pub reasons: Vec<(Misfit, usize)>,
}

impl CoreScheduler {
    /// Why `task` is where it is — for a waiting task, why no node takes it;
    /// `None` for a task this scheduler does not know.
    ///
    /// A scan of every node through the feasibility stage (the policy's
    /// filter included): O(nodes), for a person asking, not for a cycle.
    pub fn explain(&self, task: TaskId) -> Option<Explanation> {
        let state = self.task_state(task)?.clone();
        let queue = self.why_held(task);
        let gang = self.why_gang_waits(task);
        let waits = matches!(state, TaskState::Queued | TaskState::BackingOff { .. });
        let held = queue.is_some() || gang.is_some();
        let refusals = self.task(task).filter(|_| waits && !held).map(|spec| {
            let feasible = self.cluster.feasible(spec, self.filter.as_deref());
            let mut refusals = Refusals {
                available: 0,
                reasons: Vec::new(),
            };
            for node in self.cluster.nodes() {
                match feasible.check(node) {
                    Ok(()) => refusals.available += 1,
                    Err(misfit) => match refusals.reasons.iter_mut().find(|(m, _)| *m == misfit) {
                        Some((_, count)) => *count += 1,
                        None => refusals.reasons.push((misfit, 1)),
                    },
                }
            }
            // Stable: equal counts keep the order first met.
            refusals
                .reasons
                .sort_by_key(|&(_, count)| std::cmp::Reverse(count));
            refusals
        });
        Some(Explanation {
            task,
            state,
            nodes: self.cluster.nodes().len(),
            refusals,
            queue,
            gang,
            reservation: self.reservation.filter(|r| r.task == task),
        })
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let task = self.task.0;
        match &self.state {
            TaskState::Running { node } => return write!(f, "task {task} runs on node {}", node.0),
            TaskState::Completed => return write!(f, "task {task} has completed"),
            TaskState::Failed { .. } => return write!(f, "task {task} has failed"),
            TaskState::Cancelled => return write!(f, "task {task} was cancelled"),
            TaskState::Queued | TaskState::BackingOff { .. } => {}
        }
        if let Some(queue) = &self.queue {
            return write!(f, "task {task} waits for admission: {queue}");
        }
        if let Some(gang) = &self.gang {
            return write!(f, "task {task} waits for its gang: {gang}");
        }
        write!(f, "task {task} waits: ")?;
        match &self.refusals {
            None => write!(f, "submitted, not yet taken in by a cycle")?,
            Some(refusals) => {
                write!(
                    f,
                    "{}/{} nodes are available",
                    refusals.available, self.nodes
                )?;
                for (index, (misfit, count)) in refusals.reasons.iter().enumerate() {
                    let lead = if index == 0 { ": " } else { ", " };
                    write!(f, "{lead}{count} {misfit}")?;
                }
            }
        }
        if let Some(reservation) = &self.reservation {
            write!(
                f,
                "; node {} is reserved for it from {}",
                reservation.node.0, reservation.start
            )?;
        }
        match &self.state {
            TaskState::BackingOff { until, attempts: 0 } => {
                write!(f, "; retried after a failure at {until}")
            }
            TaskState::BackingOff { until, attempts } => {
                let plural = if *attempts == 1 { "" } else { "s" };
                write!(
                    f,
                    "; backing off until {until} ({attempts} attempt{plural} found no node)"
                )
            }
            _ => write!(f, "; queued for the next cycle"),
        }
    }
}
