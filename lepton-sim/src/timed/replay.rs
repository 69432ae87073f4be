//! The event engine of a timed replay (see the module docs of `timed`).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::fragmentation::TargetWorkload;
use lepton_core::model::{NodeState, GPU_MILLI_PER_GPU};
use lepton_core::rng::SeededRng;
use lepton_core::scheduler::{SchedulerConfig, TaskState};
use lepton_core::{CoreScheduler, Event, NodeId, NodeSpec, Policy, Run, Scheduler, TaskId};

use super::{
    TaskTimes, TimedConfig, TimedResult, TimedSample, TimedTask, MAX_SAMPLES, MICROS_PER_HOUR,
    MICROS_PER_SECOND,
};
use crate::{Error, FragmentMeter};

/// Builds the scheduler on `nodes` and replays `tasks` (checked by
/// [`run_timed`]) until the run ends.
#[allow(clippy::too_many_arguments)]
pub(super) fn replay(
    nodes: &[NodeSpec],
    tasks: &[TimedTask],
    workload: &TargetWorkload,
    mut policy: Box<dyn Policy>,
    config: &TimedConfig,
    horizon_s: u64,
    index: HashMap<TaskId, usize>,
    started: Instant,
) -> Result<TimedResult, Error> {
    policy.reseed(config.seed);
    let policy_name = policy.name().to_owned();
    let clock = ManualClock::new();
    let mut scheduler_config = SchedulerConfig::default();
    scheduler_config.retry_batch = config.retry;
    scheduler_config.retry_service = config.retry;
    // Retries moved by events: an overloaded cluster costs what changes,
    // not its queue's length, per cycle.
    scheduler_config.retry_waiting_on_release = true;
    let backoff_max = scheduler_config.backoff_max;
    let mut scheduler = CoreScheduler::builder(policy)
        .clock(Arc::new(clock.clone()))
        .config(scheduler_config)
        .build();
    for node in nodes {
        scheduler.add_node(node)?;
    }
    // Arrivals stream in: one pending arrival in the heap at a time.
    let mut arrival_order: Vec<usize> = (0..tasks.len()).collect();
    arrival_order.sort_by_key(|&i| tasks[i].arrival_s);

    let mut replay = Replay {
        tasks,
        workload,
        config,
        horizon: Timestamp::from_secs(horizon_s),
        node_ids: nodes.iter().map(|n| n.id).collect(),
        scheduler,
        clock,
        rng: SeededRng::new(config.seed),
        backoff_max,
        index,
        runs: vec![TaskRun::default(); tasks.len()],
        arrival_order,
        next_arrival: 0,
        heap: BinaryHeap::new(),
        sequence: 0,
        completions_due: 0,
        recoveries_due: 0,
        timeouts_due: 0,
        failure_due: false,
        wakeups: BTreeSet::new(),
        freed_at: None,
        meter: FragmentMeter::default(),
        submitted: 0,
        completed: 0,
        running: 0,
        placed: 0,
        placements: 0,
        evictions: 0,
        timeouts: 0,
        node_failures: 0,
        max_pending: 0,
        waits_micros: Vec::new(),
        samples: Vec::new(),
    };
    let end = replay.run()?;
    Ok(replay.result(policy_name, end, horizon_s, started))
}

/// Something that happens at a point of virtual time.
#[derive(Debug, Clone, Copy)]
enum SimEvent {
    /// `tasks[i]` arrives.
    Arrival(usize),
    /// `tasks[task]` ends its run `attempt` (stale if it was evicted since).
    Completion { task: usize, attempt: u32 },
    /// Some node fails.
    NodeFailure,
    /// A failed node is back.
    NodeRecovery(NodeId),
    /// Backing-off tasks are due: run a cycle.
    WakeUp,
    /// A run's timeout may have passed: the scheduler ends what is due.
    Timeout,
    /// Record a [`TimedSample`].
    Sample,
}

impl SimEvent {
    /// Samples come last in their instant, to see its final state.
    fn phase(self) -> Phase {
        match self {
            SimEvent::Arrival(_)
            | SimEvent::Completion { .. }
            | SimEvent::NodeFailure
            | SimEvent::NodeRecovery(_)
            | SimEvent::WakeUp
            | SimEvent::Timeout => Phase::State,
            SimEvent::Sample => Phase::Sample,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    State,
    Sample,
}

/// An event in the heap, ordered by (time, phase, sequence).
#[derive(Debug)]
struct Scheduled {
    time: Timestamp,
    phase: Phase,
    sequence: u64,
    event: SimEvent,
}

impl Scheduled {
    fn key(&self) -> (Timestamp, Phase, u64) {
        (self.time, self.phase, self.sequence)
    }
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// The simulator's view of one task.
#[derive(Debug, Clone, Copy, Default)]
struct TaskRun {
    /// The attempt of the run in progress, if one is.
    live: Option<u32>,
    /// First placement, if any.
    first_placed: Option<Timestamp>,
    /// The node of the latest placement.
    node: Option<NodeId>,
    placements: u32,
    completed: Option<Timestamp>,
}

struct Replay<'a> {
    tasks: &'a [TimedTask],
    workload: &'a TargetWorkload,
    config: &'a TimedConfig,
    /// The run stops here at the latest.
    horizon: Timestamp,
    node_ids: Vec<NodeId>,
    scheduler: CoreScheduler,
    clock: ManualClock,
    rng: SeededRng,
    backoff_max: Duration,
    index: HashMap<TaskId, usize>,
    runs: Vec<TaskRun>,
    arrival_order: Vec<usize>,
    next_arrival: usize,
    heap: BinaryHeap<Reverse<Scheduled>>,
    sequence: u64,
    /// Completions in the heap that are not stale.
    completions_due: usize,
    /// Recoveries in the heap.
    recoveries_due: usize,
    /// Timeout checks in the heap.
    timeouts_due: usize,
    /// Whether a failure is in the heap (the process pauses without a
    /// horizon when the workload stops moving).
    failure_due: bool,
    /// Times of the wake-ups in the heap.
    wakeups: BTreeSet<Timestamp>,
    /// The latest completion or recovery: retries after
    /// `freed_at + backoff_max` cannot succeed.
    freed_at: Option<Timestamp>,
    meter: FragmentMeter,
    submitted: usize,
    completed: usize,
    running: usize,
    placed: usize,
    placements: usize,
    evictions: usize,
    timeouts: usize,
    node_failures: usize,
    max_pending: usize,
    waits_micros: Vec<u64>,
    samples: Vec<TimedSample>,
}

impl Replay<'_> {
    fn push(&mut self, time: Timestamp, event: SimEvent) {
        match event {
            SimEvent::Completion { .. } => self.completions_due += 1,
            SimEvent::NodeRecovery(_) => self.recoveries_due += 1,
            SimEvent::NodeFailure => self.failure_due = true,
            SimEvent::Timeout => self.timeouts_due += 1,
            SimEvent::Arrival(_) | SimEvent::WakeUp | SimEvent::Sample => {}
        }
        self.heap.push(Reverse(Scheduled {
            time,
            phase: event.phase(),
            sequence: self.sequence,
            event,
        }));
        self.sequence += 1;
    }

    fn push_next_arrival(&mut self) {
        if let Some(&task) = self.arrival_order.get(self.next_arrival) {
            self.next_arrival += 1;
            let time = Timestamp::from_secs(self.tasks[task].arrival_s);
            self.push(time, SimEvent::Arrival(task));
        }
    }

    /// Tasks waiting: neither ended nor running.
    fn pending(&self) -> usize {
        let failed = self.scheduler.task_counts().failed;
        self.submitted - self.completed - failed - self.running
    }

    /// True while an arrival or a completion is still to come.
    fn workload_moves(&self) -> bool {
        self.submitted < self.tasks.len() || self.completions_due > 0
    }

    /// True while an event that can change the outcome is in the heap.
    fn live(&self) -> bool {
        self.workload_moves()
            || self.recoveries_due > 0
            || self.timeouts_due > 0
            || !self.wakeups.is_empty()
    }

    fn push_next_failure(&mut self, now: Timestamp) {
        let rate = self.config.node_failure_rate_per_hour * self.node_ids.len() as f64;
        if rate <= 0.0 {
            return;
        }
        // Exponential inter-failure time; u in (0, 1] (one step of 2⁻⁵³
        // above the uniform draw, exactly) so ln(u) is finite.
        let u = self.rng.uniform() + 1.0 / (1u64 << 53) as f64;
        let micros = (-u.ln() / rate * MICROS_PER_HOUR).round() as u64;
        // At least 1 µs, so failures can never pile up on one instant.
        let time = Timestamp(now.as_micros().saturating_add(micros.max(1)));
        self.push(time, SimEvent::NodeFailure);
    }

    /// Runs every event; returns when the run ended.
    fn run(&mut self) -> Result<Timestamp, Error> {
        self.push_next_arrival();
        self.push(Timestamp::ZERO, SimEvent::Sample);
        self.push_next_failure(Timestamp::ZERO);
        let mut now = Timestamp::ZERO;
        let mut needs_cycle = false;
        while let Some(Reverse(next)) = self.heap.peek() {
            let (time, event) = (next.time, next.event);
            if time > self.horizon {
                return Ok(self.horizon);
            }
            if self.config.horizon_s.is_none() {
                // Nothing left can change the outcome: stop, after the
                // samples of this last instant.
                let final_sample = matches!(event, SimEvent::Sample) && time <= now;
                if !self.live() && !needs_cycle && !final_sample {
                    break;
                }
            }
            self.heap.pop();
            self.clock.set(time);
            now = time;
            needs_cycle |= self.apply(event, now)?;
            // One cycle per instant, once all its events are in.
            let more_now = self
                .heap
                .peek()
                .is_some_and(|Reverse(n)| n.time == now && n.phase == Phase::State);
            if needs_cycle && !more_now {
                self.cycle(now);
                needs_cycle = false;
            }
        }
        Ok(match self.config.horizon_s {
            Some(_) => self.horizon,
            None => now,
        })
    }

    /// Applies one event; true when a scheduling cycle should follow.
    fn apply(&mut self, event: SimEvent, now: Timestamp) -> Result<bool, Error> {
        match event {
            SimEvent::Arrival(task) => {
                self.push_next_arrival();
                self.scheduler.submit(&self.tasks[task].spec)?;
                self.submitted += 1;
                Ok(true)
            }
            SimEvent::Completion { task, attempt } => self.complete(task, attempt, now),
            SimEvent::NodeFailure => self.fail_a_node(now),
            SimEvent::NodeRecovery(node) => {
                self.recoveries_due -= 1;
                self.scheduler.handle(Event::NodeUp(node))?;
                self.freed_at = Some(now);
                Ok(true)
            }
            SimEvent::WakeUp => {
                self.wakeups.remove(&now);
                Ok(true)
            }
            SimEvent::Timeout => {
                self.timeouts_due -= 1;
                let expired = self.scheduler.expire_timeouts();
                for run in &expired {
                    if let Some(&i) = self.index.get(&run.task) {
                        self.cut_short(i);
                        self.timeouts += 1;
                    }
                }
                Ok(!expired.is_empty())
            }
            SimEvent::Sample => {
                self.sample(now)?;
                let next = now.saturating_add(Duration::from_secs(self.config.sample_every_s));
                if next > now {
                    self.push(next, SimEvent::Sample);
                }
                Ok(false)
            }
        }
    }

    /// Run `attempt` of task `task` completes, unless it was evicted since.
    fn complete(&mut self, task: usize, attempt: u32, now: Timestamp) -> Result<bool, Error> {
        let run = &mut self.runs[task];
        if run.live != Some(attempt) {
            // Evicted since; no longer counted in `completions_due`.
            return Ok(false);
        }
        self.completions_due -= 1;
        self.running -= 1;
        self.completed += 1;
        run.live = None;
        run.completed = Some(now);
        self.scheduler.complete(Run {
            task: self.tasks[task].spec.id,
            attempt,
        })?;
        self.freed_at = Some(now);
        Ok(true)
    }

    /// A node drawn at random fails (if it is up): its runs are evicted and
    /// its recovery is scheduled; the next failure is drawn.
    fn fail_a_node(&mut self, now: Timestamp) -> Result<bool, Error> {
        self.failure_due = false;
        if self.config.horizon_s.is_none() && !self.workload_moves() {
            // Paused; `cycle` resumes it when a task starts.
            return Ok(false);
        }
        self.push_next_failure(now);
        let node = self.node_ids[self.rng.index(self.node_ids.len())];
        let up = self
            .scheduler
            .cluster()
            .node(node)
            .is_some_and(|n| n.state() != NodeState::Down);
        if !up {
            return Ok(false);
        }
        let evicted = self.scheduler.cluster().tasks_on(node);
        self.scheduler.handle(Event::NodeDown(node))?;
        self.node_failures += 1;
        for task in &evicted {
            if let Some(&i) = self.index.get(task) {
                self.cut_short(i);
                self.evictions += 1;
            }
        }
        let back = now.saturating_add(Duration::from_secs(self.config.node_recovery_s));
        self.push(back, SimEvent::NodeRecovery(node));
        Ok(!evicted.is_empty())
    }

    /// Task `i`'s run ended before its completion (its node failed, or it
    /// timed out): it runs no more, and its completion in the heap, if it
    /// has one, just went stale.
    fn cut_short(&mut self, i: usize) {
        self.runs[i].live = None;
        self.running -= 1;
        if self.tasks[i].duration_s.is_some() {
            self.completions_due -= 1;
        }
    }

    /// One scheduling cycle: start what was placed, plan the next useful retry.
    fn cycle(&mut self, now: Timestamp) {
        for assignment in self.scheduler.schedule() {
            let Some(&i) = self.index.get(&assignment.task) else {
                continue;
            };
            let task = &self.tasks[i];
            let run = &mut self.runs[i];
            if run.first_placed.is_none() {
                run.first_placed = Some(now);
                self.placed += 1;
                let arrival = Timestamp::from_secs(task.arrival_s);
                self.waits_micros
                    .push(now.as_micros().saturating_sub(arrival.as_micros()));
            }
            run.live = Some(assignment.attempt);
            run.node = Some(assignment.node);
            run.placements += 1;
            self.running += 1;
            self.placements += 1;
            if let Some(duration_s) = task.duration_s {
                let end = now.saturating_add(Duration::from_secs(duration_s));
                let attempt = assignment.attempt;
                self.push(end, SimEvent::Completion { task: i, attempt });
            }
            if let Some(timeout_ms) = task.spec.timeout_ms {
                let due = now.saturating_add(Duration::from_millis(timeout_ms));
                self.push(due, SimEvent::Timeout);
            }
        }
        if !self.failure_due && self.workload_moves() {
            self.push_next_failure(now);
        }
        let pending = self.pending();
        self.max_pending = self.max_pending.max(pending);
        // Every task that backed off before the latest freeing is due by
        // `freed_at + backoff_max`; later retries cannot succeed.
        if let (Some(due), Some(freed_at)) = (self.scheduler.next_backoff_due(), self.freed_at) {
            if due > now
                && due <= freed_at.saturating_add(self.backoff_max)
                && self.wakeups.insert(due)
            {
                self.push(due, SimEvent::WakeUp);
            }
        }
    }

    fn sample(&mut self, now: Timestamp) -> Result<(), Error> {
        if self.samples.len() as u64 >= MAX_SAMPLES {
            // The estimate at the start held; the run went on: tasks keep
            // waiting or keep restarting after node failures.
            return Err(Error::OutOfRange {
                name: "samples",
                value: MAX_SAMPLES as f64,
                expected: "at most 2,000,000 per run; the run went on longer than its tasks' \
                           times (long tasks that node failures keep restarting?): set horizon_s",
            });
        }
        let sample = self.measure(now);
        self.samples.push(sample);
        Ok(())
    }

    /// The cluster now, as a sample.
    fn measure(&mut self, now: Timestamp) -> TimedSample {
        let report = self.scheduler.report();
        let cluster = self.scheduler.cluster();
        let up_gpu_milli: u64 = cluster
            .nodes()
            .iter()
            .filter(|n| n.state() != NodeState::Down)
            .map(|n| u64::from(n.spec().gpus.count) * u64::from(GPU_MILLI_PER_GPU))
            .sum();
        let frag_milli = self.meter.fragment_milli(self.workload, cluster);
        let frag_pct = if up_gpu_milli == 0 {
            0.0
        } else {
            frag_milli * 100.0 / up_gpu_milli as f64
        };
        TimedSample {
            time_s: now.as_micros() / MICROS_PER_SECOND,
            gpu_alloc_pct: report.utilization.gpu * 100.0,
            cpu_pct: report.utilization.cpu * 100.0,
            memory_pct: report.utilization.memory * 100.0,
            frag_pct,
            pending: report.tasks.queued + report.tasks.backing_off,
            running: report.tasks.running,
            nodes_in_use: report.nodes_in_use,
            nodes_down: report.nodes_down,
        }
    }

    fn result(
        mut self,
        policy: String,
        end: Timestamp,
        horizon_s: u64,
        started: Instant,
    ) -> TimedResult {
        let at_end = self.measure(end);
        let pending = self.pending();
        let failed = self.scheduler.task_counts().failed;
        let mut waits = self.waits_micros;
        waits.sort_unstable();
        let to_s = |micros: u64| micros as f64 / MICROS_PER_SECOND as f64;
        let mean_wait_s = if waits.is_empty() {
            0.0
        } else {
            let total: u128 = waits.iter().map(|&w| u128::from(w)).sum();
            total as f64 / waits.len() as f64 / MICROS_PER_SECOND as f64
        };
        // Nearest rank: the smallest wait with at least 99% of waits at or below it.
        let tasks = self
            .tasks
            .iter()
            .zip(&self.runs)
            .map(|(task, run)| {
                let failed = matches!(
                    self.scheduler.task_state(task.spec.id),
                    Some(TaskState::Failed { .. })
                );
                let state = match (run.completed, failed, run.live) {
                    (Some(_), _, _) => "completed",
                    (None, true, _) => "failed",
                    (None, false, Some(_)) => "running",
                    (None, false, None) => "pending",
                };
                TaskTimes {
                    task: task.spec.id,
                    arrival_s: task.arrival_s,
                    node: run.node,
                    start_s: run.first_placed.map(|t| to_s(t.as_micros())),
                    end_s: run.completed.map(|t| to_s(t.as_micros())),
                    placements: run.placements,
                    state,
                }
            })
            .collect();
        let p99 = waits
            .len()
            .checked_sub(1)
            .map(|last| waits[(waits.len() * 99).div_ceil(100).saturating_sub(1).min(last)]);
        TimedResult {
            policy,
            seed: self.config.seed,
            tasks_submitted: self.submitted,
            tasks_completed: self.completed,
            tasks_placed: self.placed,
            placements: self.placements,
            evictions: self.evictions,
            tasks_running_at_end: self.running,
            tasks_pending_at_end: pending,
            tasks_failed: failed,
            timeouts: self.timeouts,
            max_pending: self.max_pending,
            mean_wait_s,
            p99_wait_s: p99.map_or(0.0, to_s),
            max_wait_s: waits.last().copied().map_or(0.0, to_s),
            node_failures: self.node_failures,
            end_s: to_s(end.as_micros()),
            horizon_s,
            stopped_at_horizon: end == self.horizon,
            samples: self.samples,
            tasks,
            at_end,
            wall: started.elapsed(),
        }
    }
}
