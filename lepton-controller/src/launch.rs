//! Launching: an assignment made into a [`Launch`], launches in parallel,
//! and the launches kept for a retry while their backend cannot be reached.

use std::sync::Arc;
use std::time::Instant;

use lepton_core::backend::{Handle, Launch};
use lepton_core::scheduler::TaskState;
use lepton_core::{Assignment, Event, Run, Scheduler};
use tracing::{info, info_span, warn, Instrument};

use crate::parallel::in_parallel;
use crate::Controller;

/// A launch the backend could not receive yet.
#[derive(Debug)]
pub(crate) struct Waiting {
    launch: Launch,
    backend: usize,
    since: Instant,
}

impl Controller {
    /// The launch of an assignment.
    pub(crate) fn prepare(&self, assignment: Assignment) -> Option<Waiting> {
        let _span = info_span!("place", run = %assignment.run(), node = %assignment.node).entered();
        let backend = *self.node_backend.get(&assignment.node)?;
        let launch = self.launch_of(&assignment)?;
        info!(gpus = ?assignment.gpus, "placed");
        Some(Waiting {
            launch,
            backend,
            since: Instant::now(),
        })
    }

    /// What the backend is asked to start for an assignment; `None` for a
    /// task the scheduler no longer knows.
    pub(crate) fn launch_of(&self, assignment: &Assignment) -> Option<Launch> {
        Some(Launch {
            run: assignment.run(),
            node: assignment.node,
            task: self.scheduler.task(assignment.task)?.clone(),
            gpus: assignment.gpus.clone(),
        })
    }

    /// Waiting launches to try again now; those waiting too long, or whose
    /// run is no longer current, are given up.
    pub(crate) fn due_retries(&mut self) -> Vec<Waiting> {
        let mut due = Vec::new();
        for waiting in std::mem::take(&mut self.waiting) {
            let run = waiting.launch.run;
            if self.scheduler.current_run(run.task) != Some(run)
                || !matches!(
                    self.scheduler.task_state(run.task),
                    Some(TaskState::Running { .. })
                )
            {
                continue;
            }
            if waiting.since.elapsed() > self.config.launch_retry_for {
                let reason = format!("backend unreachable for {:?}", self.config.launch_retry_for);
                self.launch_failed(run, reason);
                continue;
            }
            due.push(waiting);
        }
        due
    }

    /// Launches, at most `max_concurrent_launches` at once. Returns the runs started.
    pub(crate) async fn launch(&mut self, launches: Vec<Waiting>) -> Vec<Handle> {
        let backends = &self.backends;
        let results = in_parallel(launches, self.config.max_concurrent_launches, |waiting| {
            let backend = Arc::clone(&backends[waiting.backend]);
            let launch = waiting.launch.clone();
            let span = info_span!("launch", run = %launch.run, node = %launch.node);
            async move { backend.launch(&launch).await }.instrument(span)
        })
        .await;
        let mut started = Vec::new();
        for (waiting, result) in results {
            let run = waiting.launch.run;
            match result {
                Some(Ok(handle)) => {
                    started.push(handle.clone());
                    self.runs.insert(run.task, handle);
                }
                Some(Err(error)) if error.is_retryable() => {
                    warn!(%run, %error, "launch deferred: backend unreachable");
                    self.waiting.push(waiting);
                }
                Some(Err(error)) => self.launch_failed(run, error.to_string()),
                // What it may have started is stopped as an orphan.
                None => self.launch_failed(run, "the backend panicked in launch".to_owned()),
            }
        }
        started
    }

    fn launch_failed(&mut self, run: Run, reason: String) {
        warn!(%run, %reason, "launch failed");
        if let Err(error) = self.scheduler.handle(Event::LaunchFailed { run, reason }) {
            warn!(%run, %error, "launch failure refused");
        }
    }
}
