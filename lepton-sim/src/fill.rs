//! The FGD paper's "fill" (inflation) experiment.
//!
//! As the paper's simulator runs it: tasks never leave; the trace's tasks
//! are shuffled by the seed (which also permutes node order, and so
//! tie-breaking), then clones drawn uniformly with replacement from the trace
//! are appended until the requested GPUs reach `tune` × the cluster's GPU
//! capacity. Tasks arrive one at a time and go through the real
//! [`CoreScheduler`]; a task that fits nowhere is dropped (not retried) but
//! its GPU request still counts as arrived. The headline metric is the GPU
//! allocation % read at the first arrival where the arrived GPU request
//! reaches 100% of capacity.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Error;
use crate::{seconds, FragmentMeter};
use lepton_core::clock::ManualClock;
use lepton_core::fragmentation::TargetWorkload;
use lepton_core::model::GPU_MILLI_PER_GPU;
use lepton_core::rng::SeededRng;
use lepton_core::NodeSpec;
use lepton_core::Policy;
use lepton_core::{CoreScheduler, Scheduler};
use lepton_core::{TaskId, TaskSpec};

/// Settings of one fill run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillConfig {
    /// Seeds the shuffles and the clone draws (the paper uses 42..=51).
    pub seed: u64,
    /// Inflation: clones are appended until the requested GPUs reach
    /// `tune` × capacity (the paper uses 1.3).
    pub tune: f64,
}

/// The largest `tune`: ten times the cluster's GPUs requested is far past
/// any saturation, and a larger value would allocate clones without bound.
pub const MAX_TUNE: f64 = 10.0;

impl FillConfig {
    /// Checks `tune` is in `1..=MAX_TUNE`: below 1 the arrivals never reach
    /// 100% of capacity, where the result is read.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming `tune` and its value.
    pub fn validate(&self) -> Result<(), Error> {
        validate_tune(self.tune)
    }
}

pub(crate) fn validate_tune(tune: f64) -> Result<(), Error> {
    if (1.0..=MAX_TUNE).contains(&tune) {
        return Ok(());
    }
    Err(Error::OutOfRange {
        name: "tune",
        value: tune,
        expected:
            "1 to 10: below 1 arrivals never reach 100% of the GPUs, where alloc@100% is read",
    })
}

impl Default for FillConfig {
    fn default() -> Self {
        FillConfig {
            seed: 42,
            tune: 1.3,
        }
    }
}

/// One point of the allocation curve (the paper's Figure 9a).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FillPoint {
    /// GPU request arrived so far, % of capacity.
    pub arrived_pct: f64,
    /// GPU milli allocated, % of capacity.
    pub alloc_pct: f64,
}

/// What one fill run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FillResult {
    /// The policy's name.
    pub policy: String,
    /// The run's seed.
    pub seed: u64,
    /// Tasks that arrived (trace tasks and clones).
    pub tasks_arrived: usize,
    /// Tasks placed.
    pub tasks_placed: usize,
    /// Tasks dropped because they fit nowhere.
    pub tasks_dropped: usize,
    /// GPU allocation % at the first arrival reaching 100% requested.
    pub alloc_pct_at_100: f64,
    /// Fragmentation (against the target workload) as % of GPU capacity,
    /// at the same moment.
    pub frag_pct_at_100: f64,
    /// CPU utilization % at the same moment.
    pub cpu_pct_at_100: f64,
    /// Memory utilization % at the same moment.
    pub memory_pct_at_100: f64,
    /// Nodes holding at least one task at the same moment.
    pub nodes_in_use_at_100: usize,
    /// Allocation % after each arrival.
    pub curve: Vec<FillPoint>,
    /// Wall-clock time of the run.
    #[serde(serialize_with = "seconds")]
    pub wall: Duration,
}

/// The arrival sequence of a fill run: the trace shuffled, then clones.
/// Clones get ids after the largest trace id.
pub fn fill_arrivals(
    tasks: &[TaskSpec],
    capacity_gpu_milli: u64,
    config: &FillConfig,
    rng: &mut SeededRng,
) -> Vec<TaskSpec> {
    let mut arrivals = tasks.to_vec();
    rng.shuffle(&mut arrivals);
    let target = config.tune * capacity_gpu_milli as f64;
    let mut requested: u64 = arrivals.iter().map(|t| t.gpu.total_milli()).sum();
    let mut next_id = tasks.iter().map(|t| t.id.0).max().map_or(0, |max| max + 1);
    // Without any GPU task no number of clones reaches the target.
    let any_gpu = tasks.iter().any(|t| !t.gpu.is_none());
    while any_gpu && (requested as f64) < target {
        let mut clone = tasks[rng.index(tasks.len())].clone();
        clone.id = TaskId(next_id);
        next_id += 1;
        requested += clone.gpu.total_milli();
        arrivals.push(clone);
    }
    arrivals
}

/// Runs one fill experiment with `policy`.
///
/// # Errors
/// [`Error::OutOfRange`] when `tune` is outside 1 to [`MAX_TUNE`] or the
/// cluster has no GPU; node or task errors from the scheduler (duplicate
/// ids, malformed specs).
pub fn run_fill(
    nodes: &[NodeSpec],
    tasks: &[TaskSpec],
    workload: &TargetWorkload,
    policy: Box<dyn Policy>,
    config: &FillConfig,
) -> Result<FillResult, Error> {
    let mut run = FillRun::new(nodes, tasks, policy, config)?;
    while run.next_task().is_some() {
        run.arrive(workload)?;
    }
    Ok(run.finish(workload))
}

/// A fill run in progress, one arrival at a time: [`run_fill`] and the gym
/// environment drive the same code.
pub(crate) struct FillRun {
    started: Instant,
    seed: u64,
    policy_name: String,
    scheduler: CoreScheduler,
    arrivals: Vec<TaskSpec>,
    next: usize,
    capacity: u64,
    arrived_milli: u64,
    allocated_milli: u64,
    placed: usize,
    curve: Vec<FillPoint>,
    at_100: Option<Snapshot>,
}

impl FillRun {
    /// Shuffles nodes and tasks with the seed, adds the clones, and builds
    /// the scheduler with `policy` and the nodes.
    pub(crate) fn new(
        nodes: &[NodeSpec],
        tasks: &[TaskSpec],
        mut policy: Box<dyn Policy>,
        config: &FillConfig,
    ) -> Result<FillRun, Error> {
        config.validate()?;
        let capacity: u64 = nodes
            .iter()
            .map(|n| u64::from(n.gpus.count) * u64::from(GPU_MILLI_PER_GPU))
            .sum();
        if capacity == 0 {
            return Err(Error::OutOfRange {
                name: "cluster GPUs",
                value: 0.0,
                expected: "at least one GPU in the cluster",
            });
        }
        let started = Instant::now();
        let mut rng = SeededRng::new(config.seed);
        let mut node_order = nodes.to_vec();
        rng.shuffle(&mut node_order);
        let arrivals = fill_arrivals(tasks, capacity, config, &mut rng);

        policy.reseed(config.seed);
        let policy_name = policy.name().to_owned();
        let mut scheduler = CoreScheduler::builder(policy)
            .clock(Arc::new(ManualClock::new()))
            .build();
        for node in &node_order {
            scheduler.add_node(node)?;
        }
        Ok(FillRun {
            started,
            seed: config.seed,
            policy_name,
            scheduler,
            curve: Vec::with_capacity(arrivals.len()),
            arrivals,
            next: 0,
            capacity,
            arrived_milli: 0,
            allocated_milli: 0,
            placed: 0,
            at_100: None,
        })
    }

    /// The task that arrives next, if any.
    pub(crate) fn next_task(&self) -> Option<&TaskSpec> {
        self.arrivals.get(self.next)
    }

    /// The scheduler (and through it the cluster state).
    pub(crate) fn scheduler(&self) -> &CoreScheduler {
        &self.scheduler
    }

    /// GPU capacity, milli-GPUs.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Milli-GPUs allocated so far.
    pub(crate) fn allocated_milli(&self) -> u64 {
        self.allocated_milli
    }

    /// Tasks arrived and placed so far.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.next, self.placed)
    }

    /// Whether the arrived GPU request has reached 100% of capacity (the
    /// moment the headline metric is read).
    pub(crate) fn reached_100(&self) -> bool {
        self.at_100.is_some()
    }

    /// The next task arrives: it goes through the scheduler (and so the
    /// policy), and is dropped when it is not placed. Returns whether it was
    /// placed; `false` too when no task is left.
    pub(crate) fn arrive(&mut self, workload: &TargetWorkload) -> Result<bool, Error> {
        let Some(task) = self.arrivals.get(self.next) else {
            return Ok(false);
        };
        self.next += 1;
        self.scheduler.submit(task)?;
        let placed = !self.scheduler.schedule().is_empty();
        if placed {
            self.placed += 1;
            self.allocated_milli += task.gpu.total_milli();
        } else {
            // Fill mode drops what fits nowhere instead of retrying it.
            self.scheduler.cancel(task.id)?;
        }
        self.arrived_milli += task.gpu.total_milli();
        let point = FillPoint {
            arrived_pct: self.pct(self.arrived_milli),
            alloc_pct: self.pct(self.allocated_milli),
        };
        self.curve.push(point);
        if self.at_100.is_none() && point.arrived_pct >= 100.0 {
            self.at_100 = Some(snapshot(
                &self.scheduler,
                workload,
                point.alloc_pct,
                self.capacity,
            ));
        }
        Ok(placed)
    }

    fn pct(&self, milli: u64) -> f64 {
        milli as f64 * 100.0 / self.capacity as f64
    }

    /// The run's result; read at 100% arrived, or now if that never came.
    pub(crate) fn finish(mut self, workload: &TargetWorkload) -> FillResult {
        let at_100 = self.at_100.take().unwrap_or_else(|| {
            snapshot(
                &self.scheduler,
                workload,
                self.pct(self.allocated_milli),
                self.capacity,
            )
        });
        FillResult {
            policy: self.policy_name,
            seed: self.seed,
            tasks_arrived: self.next,
            tasks_placed: self.placed,
            tasks_dropped: self.next - self.placed,
            alloc_pct_at_100: at_100.alloc_pct,
            frag_pct_at_100: at_100.frag_pct,
            cpu_pct_at_100: at_100.cpu_pct,
            memory_pct_at_100: at_100.memory_pct,
            nodes_in_use_at_100: at_100.nodes_in_use,
            curve: self.curve,
            wall: self.started.elapsed(),
        }
    }
}

struct Snapshot {
    alloc_pct: f64,
    frag_pct: f64,
    cpu_pct: f64,
    memory_pct: f64,
    nodes_in_use: usize,
}

fn snapshot(
    scheduler: &CoreScheduler,
    workload: &TargetWorkload,
    alloc_pct: f64,
    capacity: u64,
) -> Snapshot {
    let frag_milli = FragmentMeter::default().fragment_milli(workload, scheduler.cluster());
    let report = scheduler.report();
    Snapshot {
        alloc_pct,
        frag_pct: frag_milli * 100.0 / capacity as f64,
        cpu_pct: report.utilization.cpu * 100.0,
        memory_pct: report.utilization.memory * 100.0,
        nodes_in_use: report.nodes_in_use,
    }
}
