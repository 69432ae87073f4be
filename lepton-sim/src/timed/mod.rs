//! Timed replay: a discrete-event simulation in integer virtual time.
//!
//! What a run means (durations, waits, retries, failures, the end) is the
//! contract of [`run_timed`]; this is why it is built so.
//!
//! - The simulator only *drives* the real [`CoreScheduler`]: it sets a shared
//!   [`ManualClock`], feeds [`Event`]s and acts on the assignments of a
//!   cycle. Nothing in the scheduler knows it is simulated.
//! - Events are a typed enum in a binary heap ordered by (time, phase,
//!   sequence number): integer microseconds, FIFO at equal times, so a run is
//!   a function of its inputs and seed. The phase only puts samples after the
//!   other events of their instant, so a sample sees the instant's final
//!   state.
//! - All events of an instant are applied before one scheduling cycle, so
//!   tasks arriving together compete by priority, as in a control loop.
//! - Arrivals stream in: one pending arrival in the heap at a time.
//! - A task evicted by a node failure restarts, so the completion scheduled
//!   for its interrupted run must not apply: each completion names the
//!   scheduler's [`Run`](lepton_core::Run), and one whose run was evicted since is
//!   ignored.
//! - Retries are event-driven (`SchedulerConfig::retry_waiting_on_release`):
//!   a task that found no node is tried again at the first cycle after a
//!   completion or recovery that could let it fit, tasks alike one at a
//!   time, so a long overloaded replay costs what changes, not its queue.
//!   A failed run's retry waits its delay; a wake-up (at
//!   [`CoreScheduler::next_backoff_due`]) is scheduled only within
//!   `backoff_max` of the latest completion or recovery, as later ones
//!   would fail the same way (capacity only shrank since).
//! - The run ends by itself when no *live* event is left (an arrival, a
//!   completion that is not stale, a recovery, a wake-up): samples cannot
//!   change the outcome. Failures could, but they also make recoveries, so
//!   without a horizon they are drawn only while the workload still moves
//!   (an arrival or a completion is in the heap); otherwise a run whose
//!   mean number of nodes down is high would never find a moment with none,
//!   nor would a run with a task that fits nowhere.
//! - Fragmentation samples reuse a per-node cache keyed by the node's
//!   generation, so sampling a 1,213-node cluster every 600 s over 149 days
//!   costs little.
//!
//! The public types and [`run_timed`] are here; the event engine, in
//! `replay.rs`.

mod replay;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lepton_core::fragmentation::TargetWorkload;
use lepton_core::model::GPU_MILLI_PER_GPU;
use lepton_core::scheduler::RetryPolicy;
use lepton_core::{NodeId, NodeSpec, Policy, TaskId, TaskSpec};
use serde::{Deserialize, Serialize};

use crate::seconds;
use crate::trace::TracePod;
use crate::Error;

const MICROS_PER_SECOND: u64 = 1_000_000;
const MICROS_PER_HOUR: f64 = 3_600_000_000.0;

/// The last whole second virtual time can hold (about 584,000 years);
/// later times saturate there.
pub const MAX_TIME_S: u64 = u64::MAX / MICROS_PER_SECOND;

/// The most samples one run may take (about 150 MB of results).
const MAX_SAMPLES: u64 = 2_000_000;

/// A task of a timed replay: what it asks for, when it arrives, how long it runs.
///
/// In JSON (see [`read_workload`](crate::read_workload)):
/// `{"spec": {...}, "arrival_s": 0, "duration_s": 60}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedTask {
    /// The task.
    pub spec: TaskSpec,
    /// When it arrives, in seconds from the start of the run.
    pub arrival_s: u64,
    /// How long it runs once placed, in seconds; `None` runs until the end of
    /// the run.
    #[serde(default)]
    pub duration_s: Option<u64>,
}

impl TimedTask {
    /// A task arriving at `arrival_s` and running `duration_s` once placed.
    pub fn new(spec: TaskSpec, arrival_s: u64, duration_s: Option<u64>) -> Self {
        TimedTask {
            spec,
            arrival_s,
            duration_s,
        }
    }

    /// The timed task of one trace pod, at the trace's own times: arrival =
    /// `creation_time`, duration = `deletion_time − scheduled_time` (or
    /// `− creation_time` for a pod that stayed pending: it asked for
    /// resources that long), no duration when the pod has no
    /// `deletion_time`.
    ///
    /// `None` when the pod has no `creation_time`: files without times (the
    /// `multigpu*` pod lists) replay in fill mode only.
    /// [`from_trace_pods`](Self::from_trace_pods) converts a whole trace and
    /// shifts it to start at 0.
    pub fn from_trace(pod: &TracePod) -> Option<TimedTask> {
        let created = pod.creation_time_s?;
        let started = pod.scheduled_time_s.unwrap_or(created);
        Some(TimedTask {
            spec: pod.spec.clone(),
            arrival_s: created,
            duration_s: pod
                .deletion_time_s
                .map(|deleted| deleted.saturating_sub(started)),
        })
    }

    /// Whether every run of it outlives its timeout (durations are fixed
    /// here): a task without a duration runs until the end, so it does too.
    fn times_out_every_run(&self) -> bool {
        let Some(timeout_ms) = self.spec.timeout_ms else {
            return false;
        };
        self.duration_s
            .is_none_or(|duration_s| duration_s.saturating_mul(1_000) > timeout_ms)
    }

    /// Every pod of a trace as a timed task (see
    /// [`from_trace`](Self::from_trace)), arrivals shifted so the first is
    /// at 0 s.
    ///
    /// `None` when any pod has no `creation_time`.
    pub fn from_trace_pods(pods: &[TracePod]) -> Option<Vec<TimedTask>> {
        let mut tasks = pods
            .iter()
            .map(TimedTask::from_trace)
            .collect::<Option<Vec<_>>>()?;
        let first = tasks.iter().map(|t| t.arrival_s).min().unwrap_or(0);
        for task in &mut tasks {
            task.arrival_s -= first;
        }
        Some(tasks)
    }
}

/// Settings of one timed run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedConfig {
    /// Seeds the node failures and the policy ([`Policy::reseed`]).
    pub seed: u64,
    /// How often each node fails, per hour it is up; 0 for no failures.
    pub node_failure_rate_per_hour: f64,
    /// How long a failed node stays down, in seconds.
    pub node_recovery_s: u64,
    /// A metric sample every this many seconds, from 0 s; at least 1.
    pub sample_every_s: u64,
    /// Stop at this time, in seconds; `None` runs until nothing is left to
    /// happen, but at most until [`default_horizon_s`] (twice what a
    /// perfect packing would need), so a run whose long tasks node
    /// failures keep restarting still ends.
    pub horizon_s: Option<u64>,
    /// Retries after a failure, for every task: a run that outlives its
    /// task's `timeout_ms` is ended by the scheduler and retried within this
    /// budget. Node failures are charged to it too; the default retries at
    /// once and without limit, as node failures are the experiment, not
    /// the tasks' fault.
    pub retry: RetryPolicy,
}

impl Default for TimedConfig {
    fn default() -> Self {
        TimedConfig {
            seed: 42,
            node_failure_rate_per_hour: 0.0,
            node_recovery_s: 600,
            sample_every_s: 600,
            horizon_s: None,
            retry: RetryPolicy::IMMEDIATE,
        }
    }
}

impl TimedConfig {
    /// Checks every value is in range.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] when the failure rate is negative, infinite or
    /// NaN, the horizon is past [`MAX_TIME_S`], or `sample_every_s` is 0.
    pub fn validate(&self) -> Result<(), Error> {
        let rate = self.node_failure_rate_per_hour;
        // At most one failure a minute per node: more would only grow the
        // event queue (1e308 grew it to 3.5 GB).
        if !(0.0..=60.0).contains(&rate) {
            return Err(Error::OutOfRange {
                name: "node_failure_rate_per_hour",
                value: rate,
                expected: "from 0 to 60 failures per node per hour",
            });
        }
        if self.horizon_s.is_some_and(|h| h > MAX_TIME_S) {
            return Err(Error::OutOfRange {
                name: "horizon_s",
                value: self.horizon_s.unwrap_or_default() as f64,
                expected: "at most 18,446,744,073,709 s, the end of virtual time",
            });
        }
        if self.sample_every_s == 0 {
            return Err(Error::OutOfRange {
                name: "sample_every_s",
                value: 0.0,
                expected: "at least 1 second",
            });
        }
        Ok(())
    }
}

/// The cluster at one sample time. Percentages are of the capacity of the
/// nodes that are up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimedSample {
    /// The sample's time, in seconds.
    pub time_s: u64,
    /// GPU milli allocated, %.
    pub gpu_alloc_pct: f64,
    /// CPU allocated, %.
    pub cpu_pct: f64,
    /// Memory allocated, %.
    pub memory_pct: f64,
    /// Fragmentation against the target workload
    /// ([`TargetWorkload::node_fragment_milli`] summed), % of GPU capacity.
    pub frag_pct: f64,
    /// Tasks waiting: queued or backing off.
    pub pending: usize,
    /// Tasks running.
    pub running: usize,
    /// Nodes holding at least one task.
    pub nodes_in_use: usize,
    /// Nodes down.
    pub nodes_down: usize,
}

/// What one timed run measured.
#[derive(Debug, Clone, Serialize)]
pub struct TimedResult {
    /// The policy's name.
    pub policy: String,
    /// The run's seed.
    pub seed: u64,
    /// Tasks that arrived before the end.
    pub tasks_submitted: usize,
    /// Tasks that completed.
    pub tasks_completed: usize,
    /// Tasks placed at least once.
    pub tasks_placed: usize,
    /// Placements, counting again a task placed after an eviction.
    pub placements: usize,
    /// Tasks taken off a failed node (and queued again).
    pub evictions: usize,
    /// Tasks still running at the end (those without a duration, or cut by
    /// the horizon).
    pub tasks_running_at_end: usize,
    /// Tasks still waiting at the end.
    pub tasks_pending_at_end: usize,
    /// Tasks that ended failed: their retry budget ([`TimedConfig::retry`])
    /// was spent.
    pub tasks_failed: usize,
    /// Runs ended by the scheduler for outliving their task's timeout (the
    /// seed article's −1 reward).
    pub timeouts: usize,
    /// The most tasks waiting at the end of any instant.
    pub max_pending: usize,
    /// Mean wait (first placement − arrival) over the tasks placed, in seconds.
    pub mean_wait_s: f64,
    /// 99th percentile (nearest rank) of the waits, in seconds.
    pub p99_wait_s: f64,
    /// Longest wait, in seconds.
    pub max_wait_s: f64,
    /// Node failures (nodes that went down).
    pub node_failures: usize,
    /// When the run ended, in seconds.
    pub end_s: f64,
    /// The bound the run had, in seconds: [`TimedConfig::horizon_s`] when
    /// set, else [`default_horizon_s`].
    pub horizon_s: u64,
    /// True when the run was still going at `horizon_s` and stopped there
    /// (with a set horizon: always).
    pub stopped_at_horizon: bool,
    /// The cluster when the run ended.
    pub at_end: TimedSample,
    /// The samples, every `sample_every_s` from 0 s to the end.
    pub samples: Vec<TimedSample>,
    /// Every task's times, in the order given (not serialized: a JSON
    /// result stays small; `lepton replay --placements` writes them as CSV).
    #[serde(skip)]
    pub tasks: Vec<TaskTimes>,
    /// Wall-clock time of the run (as `wall_s` in JSON).
    #[serde(rename = "wall_s", serialize_with = "seconds")]
    pub wall: Duration,
}

/// One task's life in a timed run.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskTimes {
    /// The task.
    pub task: TaskId,
    /// When it arrived, in seconds.
    pub arrival_s: u64,
    /// The node of its latest placement, if it was placed.
    pub node: Option<NodeId>,
    /// Its first placement, in seconds.
    pub start_s: Option<f64>,
    /// When it completed, in seconds.
    pub end_s: Option<f64>,
    /// Placements, counting again a placement after an eviction or a timeout.
    pub placements: u32,
    /// How it ended the run: `completed`, `failed`, `running` or `pending`
    /// (still waiting).
    pub state: &'static str,
}

impl TaskTimes {
    /// Its wait: first placement − arrival, in seconds.
    pub fn wait_s(&self) -> Option<f64> {
        self.start_s.map(|start| start - self.arrival_s as f64)
    }
}

/// How long a run without a set horizon may last: twice the time a
/// perfect packing would need (the last arrival, plus the longest task, plus
/// the tasks' total work over the cluster's capacity in its busiest
/// resource), and at least an hour. A run ends by itself long before,
/// unless tasks keep being restarted: a 100-day task on nodes that fail
/// every few days never completes.
pub fn default_horizon_s(nodes: &[NodeSpec], tasks: &[TimedTask]) -> u64 {
    let last_arrival = tasks.iter().map(|t| t.arrival_s).max().unwrap_or(0);
    let longest = tasks.iter().filter_map(|t| t.duration_s).max().unwrap_or(0);
    // Per resource: (work in amount·seconds, capacity), in u128.
    let amounts = |request: &lepton_core::Resources, gpu_milli: u64| {
        [request.cpu_milli, request.memory_mib, gpu_milli].map(u128::from)
    };
    let mut work = [0u128; 3];
    for task in tasks {
        let duration = u128::from(task.duration_s.unwrap_or(0));
        let amount = amounts(&task.spec.request, task.spec.gpu.total_milli());
        for (sum, amount) in work.iter_mut().zip(amount) {
            *sum += amount * duration;
        }
    }
    let mut capacity = [0u128; 3];
    for node in nodes {
        let gpu_milli = u64::from(node.gpus.count) * u64::from(GPU_MILLI_PER_GPU);
        for (sum, amount) in capacity.iter_mut().zip(amounts(&node.capacity, gpu_milli)) {
            *sum += amount;
        }
    }
    let packed = work
        .iter()
        .zip(capacity)
        .filter(|(_, capacity)| *capacity > 0)
        .map(|(work, capacity)| work.div_ceil(capacity))
        .max()
        .unwrap_or(0);
    let bound = 2 * (u128::from(last_arrival) + u128::from(longest) + packed);
    u64::try_from(bound)
        .unwrap_or(u64::MAX)
        .clamp(3_600, MAX_TIME_S)
}

/// Runs one timed replay of `tasks` on `nodes` with `policy`.
///
/// - **Time** is virtual, in integer microseconds; task times are whole
///   seconds. Events at the same instant happen in the order they were
///   scheduled; tasks arriving at the same second are submitted in the order
///   given, and node order is as given (it breaks ties for most policies).
///   One scheduling cycle runs after all events of an instant.
/// - **Tasks** are placed at some time `p ≥ arrival_s` and complete at
///   `p + duration_s`; a task without a duration runs until the end. A
///   task's wait is its first placement minus its arrival.
///   [`TimedTask::from_trace`] says how trace durations are taken.
/// - **Timeouts**: a run still going `timeout_ms` after its placement is
///   ended by the scheduler ([`Scheduler::expire_timeouts`](lepton_core::Scheduler::expire_timeouts)), counted in
///   `timeouts`, and retried within [`TimedConfig::retry`] (a task whose
///   budget is spent ends failed, counted in `tasks_failed`); its planned
///   completion is dropped.
/// - **Waiting**: a task that fits nowhere is never dropped; it waits, with
///   no timer of its own, and is tried again at the first completion or
///   node recovery that leaves room it fits in (or could take by
///   preemption), the oldest first, tasks alike in request, GPUs,
///   constraints and priority one at a time (see
///   `SchedulerConfig::retry_waiting_on_release`). (So a policy that
///   declines a task though a node fits is not retried more often than
///   that.)
/// - **Node failures** form a Poisson process of rate
///   `node_failure_rate_per_hour` × the number of nodes, drawn from the
///   run's [`SeededRng`](lepton_core::rng::SeededRng) (seeded with `seed`); each hits a node chosen
///   uniformly, and a hit on a node already down is ignored, so each node
///   that is up fails at the configured rate. A failed node's tasks go back
///   to the queue ([`Event::NodeDown`](lepton_core::Event::NodeDown)) and, once placed again, run their
///   full duration from their new start; the completion planned for the
///   interrupted run is dropped, so no task completes twice. The node is
///   back ([`Event::NodeUp`](lepton_core::Event::NodeUp)) `node_recovery_s` later. Without a horizon,
///   failures happen only while a task is yet to arrive or is running with
///   a duration.
/// - **The end**: `horizon_s` when set; otherwise the moment nothing left
///   can change the outcome (every task arrived, every task with a duration
///   completed, no node down, no retry that could succeed), or
///   [`default_horizon_s`] if that comes first (`stopped_at_horizon`).
///   Tasks still running or waiting then are counted in the result.
/// - **Samples** are taken every `sample_every_s` from 0 s to the end, each
///   after every other event of its instant. Percentages are of the
///   capacity of the nodes that are up; fragmentation is measured against
///   `workload` ([`TargetWorkload::node_fragment_milli`], summed over the
///   nodes that are up).
///
/// # Errors
/// [`Error::OutOfRange`] for a bad config (see [`TimedConfig::validate`]) or
/// more than 2,000,000 samples; [`Error::EndlessRetries`] for a task that
/// times out on every run when retries are unlimited and there is no
/// horizon; [`Error::Scheduler`] with the scheduler's
/// own error for a malformed or duplicated task or node
/// ([`DuplicateTask`](lepton_core::Error::DuplicateTask),
/// [`ZeroCapacity`](lepton_core::Error::ZeroCapacity), …).
///
/// ```
/// use lepton_core::fragmentation::TargetWorkload;
/// use lepton_core::{
///     policy_fn, FeasibleNodes, NodeId, NodeSpec, Placement, Resources, TaskId, TaskSpec,
/// };
/// use lepton_sim::{run_timed, TimedConfig, TimedTask};
///
/// let first_fit = policy_fn("first-fit", |nodes: &FeasibleNodes<'_>| {
///     nodes.first_fit().map(|node| Placement::on(node.id()))
/// });
/// let nodes = [NodeSpec::new(NodeId(0), Resources::new(4_000, 8_192))];
/// let task = |id, arrival_s| {
///     let spec = TaskSpec::new(TaskId(id), Resources::new(3_000, 1_024));
///     TimedTask::new(spec, arrival_s, Some(100))
/// };
/// // The second task waits for the first to finish at 100 s.
/// let tasks = [task(1, 0), task(2, 10)];
/// let config = TimedConfig { sample_every_s: 50, ..TimedConfig::default() };
/// let result = run_timed(&nodes, &tasks, &TargetWorkload::default(), Box::new(first_fit), &config)?;
/// assert_eq!(result.tasks_completed, 2);
/// assert_eq!(result.max_wait_s, 90.0);
/// assert_eq!(result.end_s, 200.0);
/// # Ok::<(), lepton_sim::Error>(())
/// ```
pub fn run_timed(
    nodes: &[NodeSpec],
    tasks: &[TimedTask],
    workload: &TargetWorkload,
    policy: Box<dyn Policy>,
    config: &TimedConfig,
) -> Result<TimedResult, Error> {
    let started = Instant::now();
    config.validate()?;
    if config.horizon_s.is_none() && config.retry.max_retries.is_none() {
        if let Some(endless) = tasks.iter().find(|t| t.times_out_every_run()) {
            return Err(Error::EndlessRetries {
                task: endless.spec.id,
                duration_s: endless.duration_s.unwrap_or_default(),
                timeout_ms: endless.spec.timeout_ms.unwrap_or_default(),
            });
        }
    }
    let mut index = HashMap::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        task.spec.validate()?;
        if index.insert(task.spec.id, i).is_some() {
            return Err(lepton_core::Error::DuplicateTask { task: task.spec.id }.into());
        }
    }
    let horizon_s = config
        .horizon_s
        .unwrap_or_else(|| default_horizon_s(nodes, tasks));
    if horizon_s / config.sample_every_s >= MAX_SAMPLES {
        return Err(too_many_samples(config));
    }
    if config.retry.max_retries.is_none() {
        // Each run lasts its timeout, then waits at least the retry delay.
        let delay_ms = u64::try_from(config.retry.delay.as_millis()).unwrap_or(u64::MAX);
        for task in tasks.iter().filter(|t| t.times_out_every_run()) {
            let timeout_ms = task.spec.timeout_ms.unwrap_or_default();
            let runs = horizon_s.saturating_mul(1_000) / timeout_ms.saturating_add(delay_ms).max(1);
            if runs > MAX_RUNS_PER_TASK {
                return Err(Error::TooManyRetries {
                    task: task.spec.id,
                    timeout_ms,
                    horizon_s,
                    runs,
                });
            }
        }
    }

    replay::replay(
        nodes, tasks, workload, policy, config, horizon_s, index, started,
    )
}

/// How many runs one task may take in a replay: bounded, so a timeout far
/// shorter than the horizon is refused up front, not run out of memory.
pub(crate) const MAX_RUNS_PER_TASK: u64 = 1_000_000;

fn too_many_samples(config: &TimedConfig) -> Error {
    Error::OutOfRange {
        name: "sample_every_s",
        value: config.sample_every_s as f64,
        expected: "at most 2,000,000 samples per run: a longer interval, or a horizon",
    }
}
