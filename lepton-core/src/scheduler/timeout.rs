//! Timeouts: a run that outlives its task's `timeout_ms` is ended by the
//! scheduler, on its own clock.
//!
//! Each placement of a task with a timeout records the run's deadline
//! (placement time + timeout) in an ordered set, so finding what is due
//! costs O(log n) per expired run and nothing per cycle otherwise. An entry
//! whose run ended another way (completed, failed, moved, cancelled) is left
//! in place and skipped when it comes due, which keeps every other path free
//! of timeout bookkeeping. Every run gets the whole timeout: a task moved or
//! retried starts a new run with a new deadline.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{CoreScheduler, TaskState};
use crate::clock::Timestamp;
use crate::policy::Outcome;
use crate::task::Run;

/// Runs' deadlines, earliest first.
#[derive(Debug, Default)]
pub(super) struct Deadlines(BTreeSet<(Timestamp, Run)>);

impl Deadlines {
    fn pop_due(&mut self, now: Timestamp) -> Option<Run> {
        let &(deadline, run) = self.0.first()?;
        (deadline <= now).then(|| {
            self.0.pop_first();
            run
        })
    }
}

impl CoreScheduler {
    /// Records the deadline of a run just placed, if its task has a timeout.
    pub(super) fn arm_timeout(&mut self, run: Run, now: Timestamp) {
        let timeout_ms = self
            .tasks
            .get(&run.task)
            .and_then(|record| record.spec.timeout_ms);
        if let Some(timeout_ms) = timeout_ms {
            let deadline = now.saturating_add(Duration::from_millis(timeout_ms));
            self.deadlines.0.insert((deadline, run));
        }
    }

    /// See [`Scheduler::expire_timeouts`](super::Scheduler::expire_timeouts).
    pub(super) fn expire_due_runs(&mut self) -> Vec<Run> {
        let now = self.clock.now();
        let mut expired = Vec::new();
        while let Some(run) = self.deadlines.pop_due(now) {
            let Some(record) = self.tasks.get(&run.task) else {
                continue;
            };
            let current =
                record.attempt == run.attempt && matches!(record.state, TaskState::Running { .. });
            let timeout_ms = record.spec.timeout_ms.unwrap_or_default();
            if !current {
                continue;
            }
            let reason = format!("timed out after {timeout_ms} ms");
            // The run is the task's current, running one: checked above.
            if self
                .fail_run(run, Outcome::TimedOut, &reason, "time out")
                .is_ok()
            {
                self.stats.timeouts += 1;
                expired.push(run);
            }
        }
        expired.extend(self.settle_gangs());
        expired
    }

    /// When the earliest running task's timeout falls due, if any task
    /// running has one (entries of runs that already ended may make this
    /// earlier than needed, never later).
    pub fn next_timeout_due(&self) -> Option<Timestamp> {
        self.deadlines.0.first().map(|&(deadline, _)| deadline)
    }
}
