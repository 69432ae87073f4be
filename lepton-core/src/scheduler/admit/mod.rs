//! Tenant queues in front of the cycle: a task that names a
//! [`queue`](TaskSpec::queue) waits in the scheduler's [`Admission`] until
//! its queue admits it, then joins the cycle's queue as any other task;
//! when it ends (completed, failed for good, cancelled) its share goes
//! back. A task its queue admitted keeps its share while it is retried,
//! backs off or is preempted: it was admitted once.

use super::{CoreScheduler, TaskState};
use crate::admission::{ready_capacity, Admission};
use crate::error::Error;
use crate::task::{TaskId, TaskSpec};

impl CoreScheduler {
    /// The tenant queues, if any were declared
    /// ([`CoreSchedulerBuilder::queues`](super::CoreSchedulerBuilder::queues)):
    /// what each holds and what waits there.
    pub fn admission(&self) -> Option<&Admission> {
        self.admission.as_ref()
    }

    /// Whether the queue `spec` names, if it names one, would take it.
    ///
    /// # Errors
    /// [`Error::UnknownQueue`] (also for any queue when none were
    /// declared) or [`Error::OverQuota`].
    pub(super) fn check_queue(&self, spec: &TaskSpec) -> Result<(), Error> {
        match (&spec.queue, &self.admission) {
            (None, _) => Ok(()),
            (Some(queue), Some(admission)) => admission.check(queue, spec),
            (Some(queue), None) => Err(Error::UnknownQueue {
                task: spec.id,
                queue: queue.clone(),
            }),
        }
    }

    /// Sends a task just submitted to its queue, or, naming none, to the
    /// cycle's queue.
    ///
    /// # Errors
    /// As [`hold_in_queue`](Self::hold_in_queue).
    pub(super) fn queue_or_hold(&mut self, spec: &TaskSpec) -> Result<(), Error> {
        if spec.queue.is_some() {
            return self.hold_in_queue(spec);
        }
        self.intake.push(spec.priority, spec.id);
        Ok(())
    }

    /// Holds a task that names a queue there until it is admitted (a task
    /// naming none is left as it is).
    ///
    /// # Errors
    /// [`Error::UnknownQueue`] (also for any queue when none were
    /// declared), and what [`Admission::submit`] refuses.
    pub(super) fn hold_in_queue(&mut self, spec: &TaskSpec) -> Result<(), Error> {
        let Some(queue) = &spec.queue else {
            return Ok(());
        };
        match &mut self.admission {
            Some(admission) => admission.submit(queue, spec),
            None => self.check_queue(spec),
        }
    }

    /// Counts a task found running as admitted by the queue it names.
    ///
    /// # Errors
    /// [`Error::UnknownQueue`].
    pub(super) fn adopt_in_queue(&mut self, spec: &TaskSpec) -> Result<(), Error> {
        match (&spec.queue, &mut self.admission) {
            (Some(queue), Some(admission)) => admission.adopt(queue, spec),
            (Some(_), None) => self.check_queue(spec),
            (None, _) => Ok(()),
        }
    }

    /// Gives the share of a task that ended back to its queue (or
    /// withdraws it, if it waited there).
    pub(super) fn ended_in_queue(&mut self, spec: &TaskSpec) {
        if let (Some(_), Some(admission)) = (&spec.queue, &mut self.admission) {
            admission.ended(spec.id);
        }
    }

    /// Whether `task` waits in its queue, not yet admitted.
    pub(super) fn held_by_queue(&self, task: TaskId) -> bool {
        self.admission.as_ref().is_some_and(|a| a.is_waiting(task))
    }

    /// Hands the tasks the queues admit now to the cycle's queue.
    pub(super) fn admit(&mut self) {
        if !self.admission.as_ref().is_some_and(Admission::has_waiting) {
            return;
        }
        let capacity = ready_capacity(&self.cluster);
        let Some(admission) = &mut self.admission else {
            return;
        };
        for task in admission.admit(capacity) {
            // Admission holds only tasks the scheduler knows.
            if let Some(record) = self.tasks.get(&task) {
                self.intake.push(record.spec.priority, task);
            }
        }
    }

    /// Whether `task` may take back room other queues borrowed: its
    /// queue holds no more than its guarantee.
    pub(super) fn reclaims(&self, task: TaskId) -> bool {
        self.admission.as_ref().is_some_and(|a| a.may_reclaim(task))
    }

    /// Whether `task` runs on room its queue borrowed.
    pub(super) fn borrowed(&self, task: TaskId) -> bool {
        self.admission.as_ref().is_some_and(|a| a.is_borrowed(task))
    }

    /// Whether reclaiming `victims` keeps their queues at or above their
    /// guarantees.
    pub(super) fn keeps_guarantees(&self, victims: &[TaskId]) -> bool {
        self.admission
            .as_ref()
            .is_some_and(|a| a.keeps_guarantees(victims))
    }

    /// Sends a task whose room was reclaimed back to wait in its queue,
    /// its share given back.
    pub(super) fn readmit(&mut self, task: TaskId) {
        let Some(spec) = self.tasks.get(&task).map(|r| (*r.spec).clone()) else {
            return;
        };
        if let (Some(queue), Some(admission)) = (&spec.queue, &mut self.admission) {
            admission.ended(task);
            if admission.submit(queue, &spec).is_ok() {
                self.transition(task, TaskState::Queued);
                return;
            }
        }
        // Not in a queue (cannot be, for a reclaimed task): queued again.
        self.enqueue(task);
    }

    /// Why `task` waits in its queue, if it does.
    pub(super) fn why_held(&self, task: TaskId) -> Option<String> {
        let admission = self.admission.as_ref()?;
        admission.why_waiting(task, ready_capacity(&self.cluster))
    }
}

/// Whether a task in `state` has ended: its queue's share goes back.
pub(super) fn ends(state: &TaskState) -> bool {
    matches!(
        state,
        TaskState::Completed | TaskState::Failed { .. } | TaskState::Cancelled
    )
}

#[cfg(test)]
mod tests;
