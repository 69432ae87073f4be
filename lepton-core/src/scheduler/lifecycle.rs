//! A task's life after placement: state changes through one function,
//! runs that end (completed, failed, timed out, node down), retries with
//! backoff, and the events from outside.

use super::preempt::EvictionRank;
use super::{CoreScheduler, Event, Report, TaskRecord, TaskState};
use crate::clock::Timestamp;
use crate::error::Error;
use crate::node::{NodeId, NodeState};
use crate::policy::{Feedback, Outcome};
use crate::task::{Run, TaskId};

impl CoreScheduler {
    /// The one place a task changes state.
    pub(super) fn transition(&mut self, task: TaskId, state: TaskState) {
        // A reservation lasts while its task waits.
        if self.reservation.is_some_and(|r| r.task == task)
            && !matches!(state, TaskState::Queued | TaskState::BackingOff { .. })
        {
            self.reservation = None;
        }
        if let Some(record) = self.tasks.get_mut(&task) {
            let rank = EvictionRank::of(record.spec.priority, record.spec.qos).index();
            if matches!(record.state, TaskState::Running { .. }) {
                self.running_by_rank[rank] -= 1;
            }
            if matches!(state, TaskState::Running { .. }) {
                self.running_by_rank[rank] += 1;
            }
            *self.counts.slot(&record.state) -= 1;
            *self.counts.slot(&state) += 1;
            if let Some(gang) = &record.spec.gang {
                let was_running = matches!(record.state, TaskState::Running { .. });
                super::gang::track(&mut self.gangs, gang, task, was_running, &state);
            }
            if let (Some(_), Some(admission)) = (&record.spec.queue, &mut self.admission) {
                let runs = matches!(state, TaskState::Running { .. });
                if runs != matches!(record.state, TaskState::Running { .. }) {
                    admission.set_running(task, runs);
                }
                if super::admit::ends(&state) {
                    admission.ended(task);
                }
            }
            record.state = state;
            if let Some(changes) = &mut self.changes {
                changes.insert(task);
            }
        }
    }

    pub(super) fn enqueue(&mut self, task: TaskId) {
        if let Some(record) = self.tasks.get(&task) {
            self.intake.push(record.spec.priority, task);
            self.transition(task, TaskState::Queued);
        }
    }

    /// Parks a task in the backoff area until `until`.
    pub(super) fn back_off_until(&mut self, task: TaskId, until: Timestamp, attempts: u32) {
        let Some(record) = self.tasks.get_mut(&task) else {
            return;
        };
        let key = (until, self.backoff_sequence);
        self.backoff_sequence += 1;
        record.backoff_key = Some(key);
        self.backoff.insert(key, task);
        self.transition(task, TaskState::BackingOff { until, attempts });
    }

    /// Backs off a task that found no node: 1 s doubling to 10 s by
    /// default; with event-driven retries, until a change could let it fit
    /// (see `waiting.rs`).
    pub(super) fn back_off_unschedulable(&mut self, task: TaskId, now: Timestamp) {
        let Some(record) = self.tasks.get_mut(&task) else {
            return;
        };
        record.unschedulable_attempts += 1;
        let attempts = record.unschedulable_attempts;
        if self.config.retry_waiting_on_release {
            let due = now.saturating_add(self.config.waiting_recheck);
            self.waiting.park(&record.spec, due);
            self.transition(
                task,
                TaskState::BackingOff {
                    until: due,
                    attempts,
                },
            );
            return;
        }
        let doublings = attempts.saturating_sub(1).min(31);
        let delay = self
            .config
            .backoff_initial
            .saturating_mul(1 << doublings)
            .min(self.config.backoff_max);
        self.back_off_until(task, now.saturating_add(delay), attempts);
    }

    pub(super) fn wake_due_backoffs(&mut self, now: Timestamp) {
        while let Some(entry) = self.backoff.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let task = entry.remove();
            if let Some(record) = self.tasks.get_mut(&task) {
                record.backoff_key = None;
            }
            self.enqueue(task);
        }
    }

    /// The node a run holds resources on, if it is the task's current,
    /// running run.
    pub(super) fn running_node(&self, run: Run, action: &'static str) -> Result<NodeId, Error> {
        let record = self
            .tasks
            .get(&run.task)
            .ok_or_else(|| self.no_record(run.task, action))?;
        match record.state {
            TaskState::Running { node } if record.attempt == run.attempt => Ok(node),
            TaskState::Running { .. } => Err(Error::StaleRun {
                run,
                current: record.attempt,
            }),
            _ => Err(Error::InvalidTransition {
                task: run.task,
                action,
                state: record.state.name(),
            }),
        }
    }

    /// Frees what a running task holds and tells the policy how it went.
    pub(super) fn end_run(
        &mut self,
        task: TaskId,
        node: NodeId,
        outcome: Outcome,
    ) -> Result<(), Error> {
        self.cluster.release(task)?;
        self.waiting.node_changed(node);
        if let Some(record) = self.tasks.get(&task) {
            self.policy.observe(&Feedback {
                task: &record.spec,
                node,
                outcome,
                started: record.run_started,
                ended: self.clock.now(),
            });
        }
        Ok(())
    }

    /// Ends a run in failure: the task is retried after a delay, avoiding
    /// `node`, or — its budget spent — ends failed with every reason.
    pub(super) fn fail_run(
        &mut self,
        run: Run,
        outcome: Outcome,
        reason: &str,
        action: &'static str,
    ) -> Result<(), Error> {
        let node = self.running_node(run, action)?;
        self.end_run(run.task, node, outcome)?;
        self.charge_failure(run, node, reason);
        Ok(())
    }

    /// Records a failed attempt of a task that holds nothing any more.
    pub(super) fn charge_failure(&mut self, run: Run, node: NodeId, reason: &str) {
        let Some(record) = self.tasks.get_mut(&run.task) else {
            return;
        };
        let failures = record.failures.get_or_insert_with(Box::default);
        if failures.reasons.len() >= super::MAX_REASONS {
            failures.reasons.remove(0);
        }
        failures
            .reasons
            .push(format!("attempt {} on {node}: {reason}", run.attempt));
        failures.avoid = Some(node);
        failures.count = failures.count.saturating_add(1);
        let count = failures.count;
        let retry = *self.config.retry(record.spec.kind);
        if retry.allows(count) {
            self.stats.retries += 1;
            let until = self.clock.now().saturating_add(retry.delay_after(count));
            self.back_off_until(run.task, until, 0);
        } else {
            let reasons = std::mem::take(&mut failures.reasons);
            self.transition(run.task, TaskState::Failed { reasons });
        }
    }

    /// Marks a node down and retries its tasks elsewhere, charged to their budgets.
    pub(super) fn fail_node(&mut self, node: NodeId, reason: &str) -> Result<(), Error> {
        self.cluster.set_state(node, NodeState::Down)?;
        for task in self.cluster.tasks_on(node) {
            let Some(run) = self.tasks.get(&task).map(TaskRecord::run) else {
                continue;
            };
            // Running on this node: the allocation exists.
            let _ = self.end_run(task, node, Outcome::Failed);
            self.charge_failure(run, node, reason);
        }
        Ok(())
    }

    /// Takes every task off a node and queues it again, uncharged.
    pub(super) fn evacuate(&mut self, node: NodeId) {
        for task in self.cluster.tasks_on(node) {
            // The allocation exists: the task is running on this node.
            let _ = self.cluster.release(task);
            self.enqueue(task);
        }
    }

    /// Cordoning is for healthy nodes: a down node comes back only with
    /// [`Event::NodeUp`], never as a side effect of an uncordon.
    pub(super) fn set_healthy_node_state(
        &mut self,
        node: NodeId,
        state: NodeState,
        action: &'static str,
    ) -> Result<(), Error> {
        let current = self
            .cluster
            .node(node)
            .ok_or(Error::UnknownNode { node })?
            .state();
        if current == NodeState::Down {
            return Err(Error::NodeDown { node, action });
        }
        self.cluster.set_state(node, state)
    }

    /// Applies an event from outside ([`Scheduler::handle`](super::Scheduler::handle)).
    pub(super) fn apply(&mut self, event: Event) -> Result<(), Error> {
        match event {
            Event::TaskCompleted(run) => {
                let node = self.running_node(run, "complete")?;
                self.end_run(run.task, node, Outcome::Completed)?;
                self.transition(run.task, TaskState::Completed);
                Ok(())
            }
            Event::TaskFailed { run, reason } => {
                self.fail_run(run, Outcome::Failed, &reason, "fail")
            }
            Event::TaskTimedOut(run) => {
                self.fail_run(run, Outcome::TimedOut, "timed out", "time out")?;
                self.stats.timeouts += 1;
                Ok(())
            }
            Event::LaunchFailed { run, reason } => self.fail_run(
                run,
                Outcome::Failed,
                &format!("launch failed: {reason}"),
                "fail the launch of",
            ),
            Event::NeverStarted(run) => {
                let node = self.running_node(run, "requeue the unstarted run of")?;
                self.cluster.release(run.task)?;
                self.waiting.node_changed(node);
                self.enqueue(run.task);
                Ok(())
            }
            Event::NodeAdded(spec) => {
                let node = spec.id;
                self.cluster.add_node(spec)?;
                self.heard_from(node);
                self.waiting.node_changed(node);
                Ok(())
            }
            Event::NodeRemoved(node) => {
                self.cluster.node(node).ok_or(Error::UnknownNode { node })?;
                self.evacuate(node);
                self.cluster.remove_node(node)?;
                self.forget_heartbeats(node);
                Ok(())
            }
            Event::NodeDown(node) => {
                self.fail_node(node, "node down")?;
                self.declared_down(node);
                Ok(())
            }
            Event::NodeUp(node) => {
                self.cluster.set_state(node, NodeState::Ready)?;
                self.heard_from(node);
                self.waiting.node_changed(node);
                Ok(())
            }
            Event::NodeCordoned(node) => {
                self.set_healthy_node_state(node, NodeState::Cordoned, "cordon")
            }
            Event::NodeUncordoned(node) => {
                self.set_healthy_node_state(node, NodeState::Ready, "uncordon")?;
                self.waiting.node_changed(node);
                Ok(())
            }
            Event::Heartbeat(node) => self.heartbeat(node),
            Event::NodeUsage { node, usage } => self.cluster.set_usage(node, usage),
        }
    }

    /// The report ([`Scheduler::report`](super::Scheduler::report)).
    pub(super) fn build_report(&self) -> Report {
        let nodes = self.cluster.nodes();
        let count = |state| nodes.iter().filter(|n| n.state() == state).count();
        let stats = &self.stats;
        Report {
            policy: self.policy.name().to_owned(),
            now: self.clock.now(),
            tasks: self.task_counts(),
            nodes_ready: count(NodeState::Ready),
            nodes_cordoned: count(NodeState::Cordoned),
            nodes_down: count(NodeState::Down),
            nodes_in_use: nodes.iter().filter(|n| n.task_count() > 0).count(),
            utilization: self.cluster.utilization(),
            placements: stats.placements,
            unschedulable: stats.unschedulable,
            retries: stats.retries,
            preemptions: stats.preemptions,
            moves: stats.moves,
            silent_nodes: stats.silent_nodes,
            timeouts: stats.timeouts,
            policy_errors: stats.policy_errors,
            last_policy_error: self.last_policy_error.as_ref().map(Error::to_string),
        }
    }
}
