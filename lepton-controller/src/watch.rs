//! Monitoring and watching: inventories as heartbeats, status polls made
//! into events in a fixed order, measured usage, and orphans swept.

use std::collections::BTreeMap;
use std::sync::Arc;

use lepton_core::backend::{Backend, Handle, RunStatus, Usage};
use lepton_core::{Event, NodeId, Run, Scheduler};
use tracing::{info, info_span, warn};

use crate::parallel::in_parallel;
use crate::Controller;

impl Controller {
    /// Inventory from every backend, as heartbeats of its nodes; new nodes
    /// join. Returns how many backends could not be reached.
    pub(crate) async fn monitor(&mut self) -> usize {
        let mut unreachable = 0;
        for i in 0..self.backends.len() {
            match self.backends[i].inventory().await {
                Ok(nodes) => {
                    for node in nodes {
                        let id = node.id;
                        if self.node_backend.contains_key(&id) {
                            let _ = self.scheduler.handle(Event::Heartbeat(id));
                        } else if self.scheduler.add_node(&node).is_ok() {
                            info!(node = %id, backend = self.backends[i].name(), "node joined");
                            self.node_backend.insert(id, i);
                        }
                    }
                }
                Err(error) => {
                    unreachable += 1;
                    warn!(backend = self.backends[i].name(), %error, "inventory failed");
                }
            }
        }
        unreachable
    }

    /// Polls every run's status, at most `max_concurrent_polls` at once;
    /// endings become events, applied in the order of their tasks' ids
    /// whatever order the answers came in. A run whose status could not be
    /// had (an error, a panic in the backend) is asked again next step.
    /// Returns the runs that ended, in that order.
    pub(crate) async fn watch(&mut self) -> Vec<(Handle, RunStatus)> {
        let polls: Vec<(Handle, Arc<dyn Backend>)> = self
            .runs
            .values()
            .filter_map(|handle| Some((handle.clone(), self.backend_of(handle.node)?)))
            .collect();
        let answers = in_parallel(
            polls,
            self.config.max_concurrent_polls,
            |(handle, backend)| {
                let (handle, backend) = (handle.clone(), Arc::clone(backend));
                async move { backend.status(&handle).await }
            },
        )
        .await;
        let mut ended = Vec::new();
        for ((handle, backend), answer) in answers {
            let status = match answer {
                Some(Ok(status)) => status,
                // Unreachable: ask again next step; the run may well be fine.
                Some(Err(error)) => {
                    warn!(%handle, %error, "status unknown");
                    continue;
                }
                None => {
                    warn!(%handle, "status unknown: the backend panicked");
                    continue;
                }
            };
            let Some(event) = ending(handle.run, &status) else {
                continue;
            };
            {
                // Not held across an await: the span would stay entered on
                // this thread while the task is suspended.
                let _span = info_span!("end", run = %handle.run, node = %handle.node).entered();
                match self.scheduler.handle(event) {
                    Ok(()) => {
                        info!(state = ?self.scheduler.task_state(handle.run.task), "run ended")
                    }
                    Err(error) => warn!(%error, "report refused"),
                }
            }
            self.runs.remove(&handle.run.task);
            // Clean up what the run left; a failure here is retried as an orphan.
            if let Err(error) = backend.stop(&handle).await {
                warn!(%error, "could not remove an ended run");
            }
            ended.push((handle, status));
        }
        ended
    }

    /// Measures every run's usage and tells the scheduler each node's sum.
    /// Runs whose backend cannot measure (or be reached) are left out.
    pub(crate) async fn measure_usage(&mut self) {
        // By node: the order of the scheduler's `NodeUsage` events.
        let mut per_node: BTreeMap<NodeId, Usage> = BTreeMap::new();
        for handle in self.runs.values() {
            let Some(backend) = self.backend_of(handle.node) else {
                continue;
            };
            if let Ok(usage) = backend.usage(handle).await {
                per_node.entry(handle.node).or_default().accumulate(&usage);
            }
        }
        for (node, usage) in per_node {
            let _ = self.scheduler.handle(Event::NodeUsage { node, usage });
        }
    }

    /// Stops every run a backend holds for a task of this scheduler that
    /// is not the task's current run: left by a stop that failed, by a
    /// launch whose answer was lost (it is launched again, once), or by an
    /// earlier controller of the same tasks. Runs of tasks this scheduler
    /// does not know are left alone: another controller may own them.
    pub(crate) async fn stop_orphans(&mut self) {
        for backend in &self.backends {
            let Ok(found) = backend.running().await else {
                continue;
            };
            for handle in found {
                let known = self.scheduler.task(handle.run.task).is_some();
                let current = self.runs.get(&handle.run.task) == Some(&handle);
                if known && !current {
                    info!(%handle, "stopping an orphan");
                    let _ = backend.stop(&handle).await;
                }
            }
        }
    }
}

/// The event that tells the scheduler how `run` ended, `None` while it runs.
pub(crate) fn ending(run: Run, status: &RunStatus) -> Option<Event> {
    Some(match status {
        RunStatus::Starting | RunStatus::Running => return None,
        RunStatus::Exited { code: 0 } => Event::TaskCompleted(run),
        RunStatus::Exited { code } => Event::TaskFailed {
            run,
            reason: format!("exit code {code}"),
        },
        RunStatus::Failed { reason } => Event::TaskFailed {
            run,
            reason: reason.clone(),
        },
        RunStatus::NeverStarted => Event::NeverStarted(run),
        RunStatus::Gone => Event::TaskFailed {
            run,
            reason: "gone from the backend".to_owned(),
        },
        // A status newer than this controller: not an end it can vouch for.
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use lepton_core::TaskId;

    use crate::test_support::{controller_with, ended_tasks, start_all, Fake};
    use crate::ControllerConfig;

    #[tokio::test]
    async fn status_polls_overlap_up_to_the_bound_and_no_further() {
        let backend = Fake::new(|_| Duration::from_millis(50));
        let config = ControllerConfig {
            max_concurrent_polls: 3,
            ..ControllerConfig::default()
        };
        let (mut controller, _) = controller_with(&backend, config, 10).await;
        start_all(&mut controller, 10).await;
        let report = controller.step().await;
        assert!(report.ended.is_empty());
        assert_eq!(backend.polls.load(Ordering::SeqCst), 10);
        assert_eq!(backend.most_polls_in_flight.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_status_poll_that_panics_loses_no_run() {
        let backend = Fake::new(|_| Duration::from_millis(1));
        *backend.panics_once.lock().unwrap() = Some(TaskId(2));
        let (mut controller, ends) =
            controller_with(&backend, ControllerConfig::default(), 3).await;
        start_all(&mut controller, 3).await;
        backend.finish();
        let ended = ended_tasks(&controller.step().await);
        assert_eq!(ended, [TaskId(1), TaskId(3)]);
        assert!(
            controller.handle(TaskId(2)).is_some(),
            "the run is still held"
        );
        let ended = ended_tasks(&controller.step().await);
        assert_eq!(ended, [TaskId(2)]);
        assert_eq!(*ends.lock().unwrap(), [TaskId(1), TaskId(3), TaskId(2)]);
        assert_eq!(controller.scheduler().task_counts().completed, 3);
    }

    /// The order in which the scheduler hears of 16 runs ending in one
    /// step, their status answers coming back in the order `latency` makes.
    async fn order_of_ends(latency: fn(TaskId) -> Duration) -> Vec<TaskId> {
        let backend = Fake::new(latency);
        let (mut controller, ends) =
            controller_with(&backend, ControllerConfig::default(), 16).await;
        start_all(&mut controller, 16).await;
        backend.finish();
        assert_eq!(controller.step().await.ended.len(), 16);
        let ends = ends.lock().unwrap().clone();
        ends
    }

    #[tokio::test]
    async fn endings_reach_the_scheduler_in_task_order_whatever_order_the_polls_answer_in() {
        // Last task answers first.
        let first = order_of_ends(|task| Duration::from_millis(40 - 2 * task.0)).await;
        // A shuffle: 7 is coprime with 16.
        let second = order_of_ends(|task| Duration::from_millis(2 * (task.0 * 7 % 16))).await;
        let by_task: Vec<TaskId> = (1..=16).map(TaskId).collect();
        assert_eq!(first, second);
        assert_eq!(first, by_task);
    }
}
