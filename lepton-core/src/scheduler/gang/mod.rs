//! Gangs: tasks that start together or not at all.
//!
//! A gang member taken from the cycle's queue is held with its gang
//! instead of being placed alone. At the start of each cycle every gang
//! with members held tries them together: each is booked where the policy
//! places it, and if fewer than the gang still needs (its
//! `min_available`, less the members running) could be booked, every
//! booking is undone and the gang backs off (the scheduler's backoff, 1 s
//! doubling to 10 s by default) — no member starts without the others, and
//! nothing stays reserved between cycles. Members are never preemption
//! victims and never moved by the rebalancer (a gang is never half
//! evicted); a drain queues them again rather than moving them. When a
//! member's run ends other than by completing and fewer than
//! `min_available` are left running, the others' runs are ended too and
//! the gang is placed again as a whole: [`expire_timeouts`] returns those
//! runs for the caller to stop. Members that wait longer than the gang's
//! `timeout_ms` without it starting fail, naming why.
//!
//! [`expire_timeouts`]: super::Scheduler::expire_timeouts

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Assignment, CoreScheduler, TaskRecord, TaskState};
use crate::clock::Timestamp;
use crate::error::Error;
use crate::task::{Gang, Run, TaskId, TaskSpec};

/// One gang's members and how its last try went.
#[derive(Debug)]
pub(super) struct GangState {
    spec: Gang,
    /// Members known and not ended (held, running, queued, backing off).
    alive: BTreeSet<TaskId>,
    /// Members that completed: they count towards `min_available`.
    completed: usize,
    /// Members held, to be placed together.
    waiting: BTreeSet<TaskId>,
    /// Members running.
    running: BTreeSet<TaskId>,
    /// Since when members have waited for the gang to start.
    waiting_since: Option<Timestamp>,
    /// Failed tries in a row.
    tries: u32,
    next_try: Timestamp,
    /// The last failed try: members booked, members needed.
    last_try: Option<(usize, usize)>,
    /// A failure left fewer than `min_available` running (or
    /// completed): the others' runs are to be ended.
    broken: bool,
    /// A member ended for good (failed, cancelled) and too few are left
    /// to reach `min_available`: why the others fail.
    doomed: Option<String>,
}

impl GangState {
    fn new(spec: Gang) -> GangState {
        GangState {
            spec,
            alive: BTreeSet::new(),
            completed: 0,
            waiting: BTreeSet::new(),
            running: BTreeSet::new(),
            waiting_since: None,
            tries: 0,
            next_try: Timestamp(0),
            last_try: None,
            broken: false,
            doomed: None,
        }
    }

    fn min(&self) -> usize {
        usize::try_from(self.spec.min_available).unwrap_or(usize::MAX)
    }

    /// Members it still needs booked at once to start (or, started, 1):
    /// those running or completed count.
    fn needed(&self) -> usize {
        self.min()
            .saturating_sub(self.running.len() + self.completed)
            .max(1)
    }
}

/// The gangs with members waiting or running, by name.
pub(super) type Gangs = BTreeMap<String, GangState>;

/// Keeps `gang`'s bookkeeping as its member `task` moves from a state
/// (`was_running` or not) to `now`.
pub(super) fn track(
    gangs: &mut Gangs,
    gang: &Gang,
    task: TaskId,
    was_running: bool,
    now: &TaskState,
) {
    let state = gangs
        .entry(gang.name.clone())
        .or_insert_with(|| GangState::new(gang.clone()));
    let ended = matches!(
        now,
        TaskState::Completed | TaskState::Failed { .. } | TaskState::Cancelled
    );
    if ended {
        state.alive.remove(&task);
        state.waiting.remove(&task);
    } else {
        state.alive.insert(task);
    }
    match now {
        TaskState::Running { .. } => {
            state.waiting.remove(&task);
            state.running.insert(task);
        }
        _ if was_running => {
            state.running.remove(&task);
        }
        _ => {}
    }
    let min = state.min();
    match now {
        TaskState::Completed => state.completed += 1,
        TaskState::Failed { .. } | TaskState::Cancelled
            if state.alive.len() + state.completed < min && !state.alive.is_empty() =>
        {
            state.doomed = Some(format!(
                "gang {} cannot reach its {min} members: member {task} {}",
                gang.name,
                now.name()
            ));
        }
        _ if was_running
            && !state.running.is_empty()
            && state.running.len() + state.completed < min =>
        {
            state.broken = true;
        }
        _ => {}
    }
    if state.waiting.is_empty() {
        state.waiting_since = None;
    }
    if state.alive.is_empty() {
        gangs.remove(&gang.name);
    }
}

impl CoreScheduler {
    /// Whether `spec`'s gang, if it has one, agrees with how its other
    /// members declared it.
    ///
    /// # Errors
    /// [`Error::InvalidGang`].
    pub(super) fn check_gang(&self, spec: &TaskSpec) -> Result<(), Error> {
        let Some(gang) = &spec.gang else {
            return Ok(());
        };
        match self.gangs.get(&gang.name) {
            Some(state) if state.spec != *gang => Err(Error::InvalidGang {
                task: spec.id,
                gang: gang.name.clone(),
                reason: format!(
                    "its members declare min_available {} and timeout_ms {:?}, this one {} and {:?}",
                    state.spec.min_available,
                    state.spec.timeout_ms,
                    gang.min_available,
                    gang.timeout_ms
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Holds `task`, just taken from the cycle's queue, with its gang if
    /// it has one: `true` then.
    pub(super) fn hold_in_gang(&mut self, task: TaskId, now: Timestamp) -> bool {
        let Some(gang) = self.tasks.get(&task).and_then(|r| r.spec.gang.as_ref()) else {
            return false;
        };
        let state = self
            .gangs
            .entry(gang.name.clone())
            .or_insert_with(|| GangState::new(gang.clone()));
        state.alive.insert(task);
        state.waiting.insert(task);
        state.waiting_since.get_or_insert(now);
        true
    }

    /// Whether `task` is held with its gang.
    pub(super) fn held_by_gang(&self, task: TaskId) -> bool {
        !self.gangs.is_empty()
            && self
                .tasks
                .get(&task)
                .and_then(|r| r.spec.gang.as_ref())
                .and_then(|gang| self.gangs.get(&gang.name))
                .is_some_and(|state| state.waiting.contains(&task))
    }

    /// Whether `task` may be evicted or moved: not a gang member.
    pub(super) fn evictable(&self, task: TaskId) -> bool {
        self.gangs.is_empty()
            || self
                .tasks
                .get(&task)
                .is_none_or(|record| record.spec.gang.is_none())
    }

    /// Tries every gang due whose held members could start it: all that
    /// can be booked start together, or none does.
    pub(super) fn place_gangs(&mut self, now: Timestamp, assignments: &mut Vec<Assignment>) {
        if self.gangs.is_empty() {
            return;
        }
        let due: Vec<String> = self
            .gangs
            .iter()
            .filter(|(_, g)| !g.waiting.is_empty() && g.next_try <= now && g.doomed.is_none())
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            let Some(gang) = self.gangs.get(&name) else {
                continue;
            };
            let members: Vec<TaskId> = gang.waiting.iter().copied().collect();
            let needed = gang.needed();
            let expired = match (gang.spec.timeout_ms, gang.waiting_since) {
                (Some(ms), Some(since)) if gang.running.is_empty() => {
                    let deadline = since.saturating_add(Duration::from_millis(ms));
                    (now >= deadline).then_some(ms)
                }
                _ => None,
            };
            if let Some(ms) = expired {
                let reason = format!(
                    "gang {name} did not start within {ms} ms ({} of the {needed} members it needs waited)",
                    members.len()
                );
                for member in members {
                    let reasons = vec![reason.clone()];
                    self.transition(member, TaskState::Failed { reasons });
                }
                continue;
            }
            if members.len() < needed {
                continue;
            }
            let mut booked = Vec::with_capacity(members.len());
            for member in members {
                if let Some(place) = self.choose(member) {
                    booked.push((member, place));
                }
            }
            if booked.len() >= needed {
                if let Some(gang) = self.gangs.get_mut(&name) {
                    gang.tries = 0;
                    gang.last_try = None;
                }
                for (member, place) in booked {
                    assignments.push(self.start(member, place, Vec::new()));
                }
                continue;
            }
            for (member, (node, _)) in &booked {
                // Booked just now: the allocation exists.
                let _ = self.cluster.release(*member);
                self.waiting.node_changed(*node);
            }
            self.stats.unschedulable += 1;
            let (initial, max) = (self.config.backoff_initial, self.config.backoff_max);
            if let Some(gang) = self.gangs.get_mut(&name) {
                gang.tries = gang.tries.saturating_add(1);
                let doublings = gang.tries.saturating_sub(1).min(31);
                let delay = initial.saturating_mul(1 << doublings).min(max);
                gang.next_try = now.saturating_add(delay);
                gang.last_try = Some((booked.len(), needed));
            }
        }
    }

    /// Settles the gangs a member's end left short: in a gang a failure
    /// broke (fewer than `min_available` running or completed), the
    /// members still running are queued again, uncharged, to start again
    /// with the others; in a gang a member's failure or cancellation
    /// doomed (too few members left to reach `min_available`), every
    /// member left fails, naming why. Returns the runs ended, for the
    /// caller to stop.
    pub(super) fn settle_gangs(&mut self) -> Vec<Run> {
        let mut requeue = Vec::new();
        let mut doomed = Vec::new();
        for gang in self.gangs.values_mut() {
            if let Some(reason) = gang.doomed.take() {
                doomed.extend(gang.alive.iter().map(|&task| (task, reason.clone())));
            } else if std::mem::take(&mut gang.broken) {
                requeue.extend(gang.running.iter().copied());
            }
        }
        let mut stopped = Vec::with_capacity(requeue.len());
        for task in requeue {
            let Some(run) = self.tasks.get(&task).map(TaskRecord::run) else {
                continue;
            };
            if let Ok(freed) = self.cluster.release(task) {
                self.waiting.node_changed(freed.node);
                self.enqueue(task);
                stopped.push(run);
            }
        }
        for (task, reason) in doomed {
            let failed = TaskState::Failed {
                reasons: vec![reason],
            };
            if let Ok(Some(run)) = self.end_early(task, failed, "fail") {
                stopped.push(run);
            }
        }
        // Requeueing the members running flagged their gangs again.
        for gang in self.gangs.values_mut() {
            gang.broken &= !gang.running.is_empty();
        }
        stopped
    }

    /// Why `task` waits with its gang, if it does.
    pub(super) fn why_gang_waits(&self, task: TaskId) -> Option<String> {
        if !self.held_by_gang(task) {
            return None;
        }
        let gang = self.tasks.get(&task)?.spec.gang.as_ref()?;
        let state = self.gangs.get(&gang.name)?;
        let needed = state.needed();
        let name = &gang.name;
        Some(match state.last_try {
            _ if state.waiting.len() < needed => format!(
                "gang {name} needs {needed} members placed together; {} are waiting",
                state.waiting.len()
            ),
            Some((booked, needed)) => format!(
                "gang {name}: its last try found room for {booked} of the {needed} members it \
                 needs together; next try at {}",
                state.next_try
            ),
            None => format!("gang {name} is tried at the next cycle"),
        })
    }
}

#[cfg(test)]
mod tests;
