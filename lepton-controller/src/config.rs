//! The controller's tunables, its error, and what its steps report.

use std::time::Duration;

use lepton_core::backend::{BackendError, Handle, RunStatus};

#[cfg(doc)]
use lepton_core::Scheduler;

#[cfg(doc)]
use crate::Controller;

/// Tunables of the [`Controller`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Pause between two steps of [`run`](Controller::run) and
    /// [`run_until_idle`](Controller::run_until_idle).
    /// Each step polls every run's status: seconds suit a cloud API's rate
    /// limits better than the default.
    pub tick: Duration,
    /// Launches (and, separately, live migrations) in flight at once, at most.
    pub max_concurrent_launches: usize,
    /// Status polls in flight at once, at most (at least one). Each step
    /// asks every run's status; fewer suit a cloud API's rate limits.
    pub max_concurrent_polls: usize,
    /// How long a launch the backend could not receive (unreachable, timed
    /// out) is retried, for the same run, before it counts as failed.
    pub launch_retry_for: Duration,
    /// Every this many steps, the runs' usage is measured and handed to the
    /// scheduler per node (0: never).
    pub usage_every: u32,
    /// Every this many steps, each backend's runs are listed and stale runs
    /// of known tasks stopped (0: only when the controller starts).
    pub sweep_every: u32,
}

impl Default for ControllerConfig {
    /// A step every 200 ms, 8 launches and 16 status polls at once,
    /// launches retried for 5 min, usage measured and stale runs swept
    /// every 10 steps.
    fn default() -> Self {
        ControllerConfig {
            tick: Duration::from_millis(200),
            max_concurrent_launches: 8,
            max_concurrent_polls: 16,
            launch_retry_for: Duration::from_secs(300),
            usage_every: 10,
            sweep_every: 10,
        }
    }
}

/// What can stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The scheduler refused something (a duplicate node id across backends, say).
    #[error(transparent)]
    Scheduler(#[from] lepton_core::Error),
    /// A backend failed in a way retrying will not fix.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// `run_until_idle` ran out of time; the tasks are still held.
    #[error("tasks still pending after {0:?}")]
    NotIdle(Duration),
}

/// What one [`step`](Controller::step) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Runs started.
    pub launched: Vec<Handle>,
    /// Runs moved by live migration, under their new run.
    pub migrated: Vec<Handle>,
    /// Runs stopped because an assignment evicted them, a drain found no
    /// other place for their task, or they outlived their task's timeout.
    pub evicted: Vec<Handle>,
    /// Runs that ended, with how, as the scheduler was told.
    pub ended: Vec<(Handle, RunStatus)>,
    /// Launches waiting for an unreachable backend.
    pub waiting_launches: usize,
    /// Backends that could not be reached this step.
    pub unreachable_backends: usize,
    /// Time the scheduler took to decide this step's placements (its
    /// [`schedule`](Scheduler::schedule) cycle; no backend call in it).
    pub deciding: Duration,
    /// Placements decided this step (launches, moves).
    pub decisions: usize,
}

/// What [`run`](Controller::run) did before it was told to stop: the
/// [`StepReport`]s of its steps, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopSummary {
    /// Steps taken.
    pub steps: u64,
    /// Runs started.
    pub launched: usize,
    /// Runs moved by live migration.
    pub migrated: usize,
    /// Runs stopped by evictions.
    pub evicted: usize,
    /// Runs that ended.
    pub ended: usize,
}

impl LoopSummary {
    pub(crate) fn add(&mut self, report: &StepReport) {
        self.steps += 1;
        self.launched += report.launched.len();
        self.migrated += report.migrated.len();
        self.evicted += report.evicted.len();
        self.ended += report.ended.len();
    }
}
