//! The data-center scenario: 1,000 VMs of a few priced shapes, one day of
//! compute, GPU and storage tasks with a day/night arrival pattern, run
//! minute by minute through the real scheduler, with or without releasing
//! idle VMs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::quantile;
use crate::chaos::check::{check, Record};
use crate::Error;
use lepton_core::{
    CoreScheduler, GpuRequest, Gpus, ManualClock, NodeId, NodeSpec, Policy, Priority, Resources,
    Run, Scheduler, SchedulerConfig, SeededRng, Taint, TaskId, TaskSpec, TaskState, Timestamp,
    Toleration,
};

/// Who a VM belongs to, which decides what it costs and whether it stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Pool {
    /// Owned (on premises): already paid, always on, costs nothing more.
    Owned,
    /// Cloud on demand: paid per powered hour.
    OnDemand,
    /// Cloud spot: cheaper per hour, but revoked at random.
    Spot,
}

/// One VM shape of the fleet, with its hourly price.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VmShape {
    /// A cloud-style name.
    pub name: &'static str,
    /// vCPUs.
    pub cpus: u64,
    /// Memory, GiB.
    pub memory_gib: u64,
    /// GPUs (whole).
    pub gpus: u32,
    /// Local storage, GiB.
    pub storage_gib: u64,
    /// Price per powered hour, USD (on-demand list prices of the cloud
    /// shapes they are modelled on, 2024, us-east-1).
    pub price_per_hour: f64,
    /// Share of the fleet.
    pub share: f64,
    /// Owned, on demand or spot.
    pub pool: Pool,
}

/// The fleet's shapes (see `docs/SCENARIOS.md`).
pub const VM_SHAPES: [VmShape; 5] = [
    VmShape {
        name: "general-8",
        cpus: 8,
        memory_gib: 32,
        gpus: 0,
        storage_gib: 100,
        price_per_hour: 0.384,
        share: 0.40,
        pool: Pool::OnDemand,
    },
    VmShape {
        name: "compute-16",
        cpus: 16,
        memory_gib: 32,
        gpus: 0,
        storage_gib: 100,
        price_per_hour: 0.68,
        share: 0.25,
        pool: Pool::OnDemand,
    },
    VmShape {
        name: "memory-8",
        cpus: 8,
        memory_gib: 64,
        gpus: 0,
        storage_gib: 100,
        price_per_hour: 0.504,
        share: 0.15,
        pool: Pool::OnDemand,
    },
    VmShape {
        name: "storage-8",
        cpus: 8,
        memory_gib: 61,
        gpus: 0,
        storage_gib: 1_900,
        price_per_hour: 0.624,
        share: 0.10,
        pool: Pool::OnDemand,
    },
    VmShape {
        name: "gpu-8",
        cpus: 8,
        memory_gib: 61,
        gpus: 1,
        storage_gib: 100,
        price_per_hour: 3.06,
        share: 0.10,
        pool: Pool::OnDemand,
    },
];

/// The taint GPU VMs carry, so only GPU tasks (which tolerate it) use
/// them — as GPU node pools are set up in Kubernetes; every strategy sees
/// the same cluster.
const GPU_TAINT: &str = "gpu";

/// The taint storage VMs carry: only storage tasks use their disks.
const STORAGE_TAINT: &str = "storage";

/// Settings of the data-center scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DatacenterConfig {
    /// Seeds the fleet order, the tasks and which runs fail.
    pub seed: u64,
    /// VMs in the fleet.
    pub vms: usize,
    /// Tasks arriving over `hours`.
    pub tasks: usize,
    /// Hours of arrivals (the run goes on until every task has ended).
    pub hours: u64,
    /// A powered VM idle this many minutes is released (when the strategy
    /// releases idle VMs).
    pub idle_release_min: u64,
    /// Minutes from asking for a VM to its being ready.
    pub startup_min: u64,
    /// Share of runs that fail part-way (and are retried).
    pub failure_rate: f64,
}

impl Default for DatacenterConfig {
    fn default() -> Self {
        DatacenterConfig {
            seed: 1,
            vms: 1_000,
            tasks: 20_000,
            hours: 24,
            idle_release_min: 10,
            startup_min: 3,
            failure_rate: 0.02,
        }
    }
}

impl DatacenterConfig {
    /// Checks every value is in range.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the setting.
    pub fn validate(&self) -> Result<(), Error> {
        let check = |name, value: f64, ok: bool, expected| {
            if ok {
                Ok(())
            } else {
                Err(Error::OutOfRange {
                    name,
                    value,
                    expected,
                })
            }
        };
        check(
            "vms",
            self.vms as f64,
            (10..=100_000).contains(&self.vms),
            "10 to 100,000 VMs",
        )?;
        check(
            "tasks",
            self.tasks as f64,
            (1..=2_000_000).contains(&self.tasks),
            "1 to 2,000,000 tasks",
        )?;
        check(
            "hours",
            self.hours as f64,
            (1..=24 * 30).contains(&self.hours),
            "1 to 720 hours",
        )?;
        check(
            "startup_min",
            self.startup_min as f64,
            self.startup_min <= 60,
            "0 to 60 minutes",
        )?;
        check(
            "failure_rate",
            self.failure_rate,
            (0.0..=0.5).contains(&self.failure_rate),
            "a share from 0 to 0.5",
        )
    }
}

/// The fewest spare VMs kept per shape when a strategy keeps spare
/// capacity (see [`Strategy::headroom`]).
pub const SPARE_MIN: usize = 5;

/// How a strategy schedules: its policy and whether it releases idle VMs.
pub struct Strategy {
    /// The name reported.
    pub name: String,
    /// The placement policy.
    pub policy: Box<dyn Policy>,
    /// Release VMs idle for `idle_release_min` and start them again (after
    /// `startup_min`) when tasks wait; otherwise every VM is powered all
    /// the time.
    pub release_idle: bool,
    /// Whether higher priorities may preempt lower ones.
    pub preemption: bool,
    /// Spare capacity kept warm, when releasing idle VMs: of each shape,
    /// this share of the fleet's VMs (at least [`SPARE_MIN`]) stays powered while
    /// idle, and VMs are started to restore it as it gets used (as
    /// Kubernetes users over-provision with placeholder pods). 0 keeps
    /// none, as the cluster autoscaler does by default.
    pub headroom: f64,
    /// Whether spot VMs may be started for tasks with slack (see
    /// [`ScenarioTask::flexible`]); otherwise only on-demand ones are.
    pub use_spot: bool,
}

impl std::fmt::Debug for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strategy")
            .field("name", &self.name)
            .field("policy", &self.policy.name())
            .field("release_idle", &self.release_idle)
            .field("preemption", &self.preemption)
            .field("headroom", &self.headroom)
            .field("use_spot", &self.use_spot)
            .finish()
    }
}

/// What one strategy measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyReport {
    /// The strategy.
    pub policy: String,
    /// Mean of the CPU, memory and GPU utilization of powered capacity, %.
    pub utilization_pct: f64,
    /// Allocated CPU over powered CPU, over the whole run, %.
    pub cpu_utilization_pct: f64,
    /// The same for memory, %.
    pub memory_utilization_pct: f64,
    /// The same for GPUs, %.
    pub gpu_utilization_pct: f64,
    /// Powered VM-hours × price, USD.
    pub cost: f64,
    /// Powered VM-hours.
    pub vm_hours: f64,
    /// Tasks that ended after their deadline, or failed.
    pub deadline_misses: usize,
    /// Mean wait (first start − arrival), seconds.
    pub mean_wait_s: f64,
    /// 95th percentile of the waits, seconds.
    pub p95_wait_s: f64,
    /// Tasks completed.
    pub completed: usize,
    /// Tasks that failed more often than their retry budget allows.
    pub failed: usize,
    /// Tasks neither completed nor failed at the end: lost (must be 0).
    /// Counted by the independent checker the chaos runs use, from the
    /// log of what the simulated world did.
    pub lost: usize,
    /// Tasks the checker saw complete twice or run twice at once (must be 0).
    pub ran_twice: usize,
    /// Moments the checker saw a VM hold more than its capacity (must be 0).
    pub overcommitted: usize,
    /// Preemptions.
    pub preemptions: usize,
    /// Spot VMs revoked (their runs were taken off and queued again).
    pub revocations: usize,
    /// Every 10 minutes: (hour, powered VMs, utilization %, cost so far).
    pub timeline: Vec<TimelinePoint>,
    /// Waits of all tasks, seconds, sorted (for distributions).
    #[serde(skip)]
    pub waits_s: Vec<f64>,
}

/// One point of a strategy's day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Hours since the start.
    pub hour: f64,
    /// VMs powered (ready or starting).
    pub powered_vms: usize,
    /// Mean of CPU, memory and GPU utilization of powered capacity now, %.
    pub utilization_pct: f64,
    /// Cost so far, USD.
    pub cost: f64,
}

/// A fleet and its day, generated once per seed and shared by every
/// strategy: the data center ([`FleetWorld::generate`]) or the hybrid
/// cloud ([`FleetWorld::hybrid`](super::HybridConfig)).
#[derive(Debug, Clone)]
pub struct FleetWorld {
    /// The settings (for the hybrid cloud: its seed, size and rules).
    pub config: DatacenterConfig,
    /// The VM shapes.
    pub shapes: Vec<VmShape>,
    /// The VMs, each with its shape index in `shapes`.
    pub fleet: Vec<(NodeSpec, usize)>,
    /// Whether cloud VMs are powered at the start (owned ones always are).
    pub cloud_starts_on: bool,
    /// How often a powered spot VM is revoked, per hour.
    pub spot_revocations_per_hour: f64,
    /// The tasks: spec, arrival minute, duration minutes, deadline minute.
    pub tasks: Vec<ScenarioTask>,
}

/// A task of the scenario.
#[derive(Debug, Clone)]
pub struct ScenarioTask {
    /// What it asks for.
    pub spec: TaskSpec,
    /// Arrival, minutes from the start.
    pub arrival_min: u64,
    /// How long a run takes, minutes.
    pub duration_min: u64,
    /// It should have ended by then, minutes from the start.
    pub deadline_min: u64,
    /// Whether its deadline leaves room to run on spot VMs (a revocation
    /// costs a restart); false for every data-center task.
    pub flexible: bool,
}

impl FleetWorld {
    /// Generates the fleet and the tasks of `config`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for a setting out of range.
    pub fn generate(config: &DatacenterConfig) -> Result<FleetWorld, Error> {
        config.validate()?;
        let mut rng = SeededRng::new(config.seed);
        let fleet = generate_fleet(&VM_SHAPES, config.vms, &mut rng);
        let tasks = generate_tasks(config, &mut rng);
        Ok(FleetWorld {
            config: *config,
            shapes: VM_SHAPES.to_vec(),
            fleet,
            cloud_starts_on: true,
            spot_revocations_per_hour: 0.0,
            tasks,
        })
    }
}

/// `vms` VMs of `catalog`'s shapes in their shares, shuffled.
pub(super) fn generate_fleet(
    catalog: &[VmShape],
    vms: usize,
    rng: &mut SeededRng,
) -> Vec<(NodeSpec, usize)> {
    let mut shapes = Vec::with_capacity(vms);
    for (index, shape) in catalog.iter().enumerate() {
        let count = (shape.share * vms as f64).round() as usize;
        shapes.extend(std::iter::repeat_n(index, count));
    }
    shapes.resize(vms, 0);
    rng.shuffle(&mut shapes);
    shapes
        .into_iter()
        .enumerate()
        .map(|(i, index)| {
            let shape = &catalog[index];
            let resources = Resources::new(shape.cpus * 1_000, shape.memory_gib * 1_024)
                .with_storage_gib(shape.storage_gib);
            let pool = match shape.pool {
                Pool::Owned => "owned",
                Pool::OnDemand => "ondemand",
                Pool::Spot => "spot",
            };
            let mut spec = NodeSpec::new(NodeId(i as u64), resources)
                .with_label("shape", shape.name)
                .with_label("pool", pool)
                .with_name(format!("vm-{i:04}"));
            if shape.gpus > 0 {
                spec = spec
                    .with_gpus(Gpus::new("V100", shape.gpus))
                    .with_taint(Taint::new(GPU_TAINT, "true"));
            }
            if shape.storage_gib > 1_000 {
                spec = spec.with_taint(Taint::new(STORAGE_TAINT, "true"));
            }
            (spec, index)
        })
        .collect()
}

/// A uniform draw in [0, 1).
fn uniform(rng: &mut SeededRng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// `config.tasks` arrival minutes over `config.hours`, sorted, at a
/// day/night rate 1 + 0.6·sin(2π(h − 9)/24) (peak at 15:00, trough at
/// 03:00), by thinning.
pub(super) fn arrival_minutes(config: &DatacenterConfig, rng: &mut SeededRng) -> Vec<u64> {
    let minutes = config.hours * 60;
    let mut arrivals = Vec::with_capacity(config.tasks);
    while arrivals.len() < config.tasks {
        let minute = rng.below(minutes);
        let hour = minute as f64 / 60.0;
        let rate = 1.0 + 0.6 * (2.0 * std::f64::consts::PI * (hour - 9.0) / 24.0).sin();
        if uniform(rng) * 1.6 < rate {
            arrivals.push(minute);
        }
    }
    arrivals.sort_unstable();
    arrivals
}

impl FleetWorld {
    /// A data center from a user's nodes and tasks (the JSON workload
    /// format of [`read_workload`](crate::read_workload)) instead of the
    /// built-in ones: each node keeps its spec and its `price_per_hour`
    /// (a node priced 0 is owned: always on, never released); tasks are
    /// numbered in arrival order, need a `duration_s`, and get the
    /// built-in deadline (duration + max(20 min, duration / 2)). Times are
    /// rounded to whole minutes. `rules` gives the seed (failures), the
    /// idle and start-up times and the failure rate; its size fields are
    /// taken from the workload.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for a task without a duration, or a workload
    /// whose size is out of the scenario's ranges.
    pub fn from_workload(
        nodes: &[NodeSpec],
        tasks: &[crate::TimedTask],
        rules: &DatacenterConfig,
    ) -> Result<FleetWorld, Error> {
        let mut shapes: Vec<VmShape> = Vec::new();
        let mut fleet = Vec::with_capacity(nodes.len());
        for node in nodes {
            let pool = if node.price_per_hour == 0.0 {
                Pool::Owned
            } else {
                Pool::OnDemand
            };
            let shape = VmShape {
                name: "custom",
                cpus: node.capacity.cpu_milli / 1_000,
                memory_gib: node.capacity.memory_mib / 1_024,
                gpus: node.gpus.count,
                storage_gib: node.capacity.storage_gib,
                price_per_hour: node.price_per_hour,
                share: 0.0,
                pool,
            };
            let index = match shapes.iter().position(|s| *s == shape) {
                Some(index) => index,
                None => {
                    shapes.push(shape);
                    shapes.len() - 1
                }
            };
            fleet.push((node.clone(), index));
        }
        let mut ordered: Vec<&crate::TimedTask> = tasks.iter().collect();
        ordered.sort_by_key(|t| t.arrival_s);
        let mut scenario_tasks = Vec::with_capacity(ordered.len());
        for (index, task) in ordered.into_iter().enumerate() {
            let Some(duration_s) = task.duration_s else {
                return Err(Error::OutOfRange {
                    name: "duration_s",
                    value: task.spec.id.0 as f64,
                    expected: "a duration for every task of a scenario (value: the task id)",
                });
            };
            let arrival_min = task.arrival_s / 60;
            let duration_min = duration_s.div_ceil(60).max(1);
            let mut spec = task.spec.clone();
            spec.id = TaskId(index as u64);
            scenario_tasks.push(ScenarioTask {
                spec,
                arrival_min,
                duration_min,
                deadline_min: arrival_min + duration_min + (duration_min / 2).max(20),
                flexible: false,
            });
        }
        let last_arrival_min = scenario_tasks.last().map_or(0, |t| t.arrival_min);
        let config = DatacenterConfig {
            vms: nodes.len(),
            tasks: scenario_tasks.len(),
            hours: (last_arrival_min / 60 + 1).max(1),
            ..*rules
        };
        config.validate()?;
        Ok(FleetWorld {
            config,
            shapes,
            fleet,
            cloud_starts_on: true,
            spot_revocations_per_hour: 0.0,
            tasks: scenario_tasks,
        })
    }
}

/// The data center's tasks, arriving by [`arrival_minutes`].
fn generate_tasks(config: &DatacenterConfig, rng: &mut SeededRng) -> Vec<ScenarioTask> {
    arrival_minutes(config, rng)
        .into_iter()
        .enumerate()
        .map(|(i, arrival_min)| {
            let kind = uniform(rng);
            let between =
                |rng: &mut SeededRng, low: u64, high: u64| low + rng.below(high - low + 1);
            let (spec, duration_min) = if kind < 0.03 {
                let spec = TaskSpec::new(TaskId(i as u64), Resources::new(4_000, 16_384))
                    .with_gpu(GpuRequest::whole(1))
                    .with_toleration(Toleration::key(GPU_TAINT));
                (spec, between(rng, 30, 180))
            } else if kind < 0.25 {
                let storage = between(rng, 200, 800);
                let resources = Resources::new(2_000, 8_192).with_storage_gib(storage);
                let spec = TaskSpec::new(TaskId(i as u64), resources)
                    .with_toleration(Toleration::key(STORAGE_TAINT));
                (spec, between(rng, 10, 60))
            } else {
                let cpus = between(rng, 1, 8);
                let memory_gib = cpus * between(rng, 1, 4);
                let resources = Resources::new(cpus * 1_000, memory_gib * 1_024);
                (
                    TaskSpec::new(TaskId(i as u64), resources),
                    between(rng, 10, 120),
                )
            };
            let priority = match rng.below(10) {
                0 => Priority(200),
                1..=4 => Priority::NORMAL,
                _ => Priority(50),
            };
            let slack = (duration_min / 2).max(20);
            ScenarioTask {
                spec: spec.with_priority(priority),
                arrival_min,
                duration_min,
                deadline_min: arrival_min + duration_min + slack,
                flexible: false,
            }
        })
        .collect()
}

/// A VM's power state.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Power {
    Off,
    /// A spot VM taken back by the cloud: gone for the rest of the run.
    Revoked,
    Starting {
        ready_min: u64,
    },
    On {
        idle_since: Option<u64>,
    },
}

/// Runs `strategy` on the scenario `world` and measures it.
///
/// Minute by minute: runs that end are reported (some runs fail part-way
/// and are retried by the scheduler), arrivals are submitted, VMs that
/// finished starting join, one scheduling cycle places what it can, then
/// (when the strategy releases idle VMs) VMs idle for `idle_release_min`
/// are released and, for tasks still waiting, VMs are started — the
/// cheapest shape that holds each waiting task, counting capacity already
/// starting. Cost accrues for every powered (on or starting) VM-minute.
///
/// # Errors
/// Scheduler errors (none are expected for generated workloads).
pub fn run_datacenter(world: &FleetWorld, strategy: Strategy) -> Result<StrategyReport, Error> {
    let config = &world.config;
    let clock = Arc::new(ManualClock::new());
    let mut scheduler_config = SchedulerConfig::default();
    scheduler_config.preemption = strategy.preemption;
    let mut scheduler = CoreScheduler::builder(strategy.policy)
        .clock(Arc::clone(&clock) as Arc<dyn lepton_core::Clock>)
        .config(scheduler_config)
        .build();
    for (node, _) in &world.fleet {
        scheduler.add_node(node)?;
    }
    let mut power = Vec::with_capacity(world.fleet.len());
    for (node, shape) in &world.fleet {
        if world.cloud_starts_on || world.shapes[*shape].pool == Pool::Owned {
            power.push(Power::On { idle_since: None });
        } else {
            scheduler.cordon(node.id)?;
            power.push(Power::Off);
        }
    }
    let headroom: Vec<usize> = world
        .shapes
        .iter()
        .enumerate()
        .map(|(index, _)| {
            let count = world.fleet.iter().filter(|(_, s)| *s == index).count();
            if strategy.headroom > 0.0 && count > 0 {
                ((count as f64 * strategy.headroom).ceil() as usize).max(SPARE_MIN)
            } else {
                0
            }
        })
        .collect();
    // Per run: the minute it ends and whether it fails then.
    let mut ends: BTreeMap<u64, Vec<(Run, bool)>> = BTreeMap::new();
    let mut first_start: HashMap<TaskId, u64> = HashMap::new();
    let mut ended_at: HashMap<TaskId, u64> = HashMap::new();
    let mut waiting: BTreeSet<TaskId> = BTreeSet::new();
    let mut next_arrival = 0;
    let mut minute = 0u64;
    let mut totals = Totals::default();
    let mut timeline = Vec::new();
    let mut preemptions = 0;
    let mut revocations = 0;
    let mut log = Vec::new();
    // A day of arrivals, then until everything has ended (bounded).
    let last_minute = config.hours * 60 + 48 * 60;
    while minute <= last_minute {
        clock.set(Timestamp::from_secs(minute * 60));
        for (run, fails) in ends.remove(&minute).unwrap_or_default() {
            let running = matches!(
                scheduler.task_state(run.task),
                Some(TaskState::Running { .. })
            );
            if !running || scheduler.current_run(run.task) != Some(run) {
                continue; // preempted meanwhile
            }
            if fails {
                log.push(Record::Stopped(run));
                scheduler.fail(run, "the run failed part-way")?;
                if matches!(
                    scheduler.task_state(run.task),
                    Some(TaskState::Failed { .. })
                ) {
                    log.push(Record::GaveUp(run.task));
                } else {
                    // Retried: it waits for a node again.
                    waiting.insert(run.task);
                }
            } else {
                scheduler.complete(run)?;
                log.push(Record::Completed(run));
                ended_at.insert(run.task, minute);
            }
        }
        while let Some(task) = world.tasks.get(next_arrival) {
            if task.arrival_min > minute {
                break;
            }
            scheduler.submit(&task.spec)?;
            log.push(Record::Submitted(task.spec.id));
            waiting.insert(task.spec.id);
            next_arrival += 1;
        }
        for task in revoke_spot(&mut scheduler, world, &mut power, minute, &mut log)? {
            revocations += 1;
            waiting.extend(task);
        }
        for (index, state) in power.iter_mut().enumerate() {
            if let Power::Starting { ready_min } = *state {
                if ready_min <= minute {
                    scheduler.uncordon(world.fleet[index].0.id)?;
                    *state = Power::On { idle_since: None };
                }
            }
        }
        for assignment in scheduler.schedule() {
            for evicted in &assignment.evicts {
                log.push(Record::Stopped(*evicted));
                if evicted.task != assignment.task {
                    preemptions += 1;
                    waiting.insert(evicted.task);
                }
            }
            log.push(Record::Started {
                run: assignment.run(),
                node: assignment.node,
                gpus: assignment.gpus.to_vec(),
            });
            let task = &world.tasks[assignment.task.0 as usize];
            let run = assignment.run();
            first_start.entry(run.task).or_insert(minute);
            waiting.remove(&run.task);
            let fails = fails(config.seed, run, config.failure_rate);
            let length = if fails {
                1 + task.duration_min / 2
            } else {
                task.duration_min
            };
            ends.entry(minute + length).or_default().push((run, fails));
        }
        // Tasks placed again since (a retry, a preempted task) stop waiting.
        waiting.retain(|task| {
            !matches!(
                scheduler.task_state(*task),
                Some(TaskState::Running { .. } | TaskState::Completed | TaskState::Failed { .. })
            )
        });
        if strategy.release_idle {
            manage_power(
                &mut scheduler,
                world,
                &mut power,
                &waiting,
                minute,
                &headroom,
                strategy.use_spot,
            )?;
        }
        totals.add_minute(&scheduler, world, &power);
        if minute.is_multiple_of(10) {
            timeline.push(totals.point(minute));
        }
        let done = next_arrival == world.tasks.len()
            && ends.is_empty()
            && scheduler.task_counts().total()
                == scheduler.task_counts().completed + scheduler.task_counts().failed;
        if done {
            break;
        }
        minute += 1;
    }
    // Anything still queued or running at the bound is lost work: the
    // independent checker counts it from the log.
    let nodes: Vec<NodeSpec> = world.fleet.iter().map(|(n, _)| n.clone()).collect();
    let specs: Vec<TaskSpec> = world.tasks.iter().map(|t| t.spec.clone()).collect();
    let verdict = check(&nodes, &specs, &log);
    let mut waits: Vec<f64> = world
        .tasks
        .iter()
        .map(|t| {
            let start = first_start.get(&t.spec.id).copied().unwrap_or(minute);
            (start - t.arrival_min) as f64 * 60.0
        })
        .collect();
    waits.sort_by(f64::total_cmp);
    let deadline_misses = world
        .tasks
        .iter()
        .filter(|t| {
            ended_at
                .get(&t.spec.id)
                .is_none_or(|&end| end > t.deadline_min)
        })
        .count();
    let mean_wait_s = waits.iter().sum::<f64>() / waits.len().max(1) as f64;
    Ok(StrategyReport {
        policy: strategy.name,
        utilization_pct: totals.utilization_pct(),
        cpu_utilization_pct: totals.share(totals.cpu_used, totals.cpu_powered),
        memory_utilization_pct: totals.share(totals.memory_used, totals.memory_powered),
        gpu_utilization_pct: totals.share(totals.gpu_used, totals.gpu_powered),
        cost: totals.cost,
        vm_hours: totals.vm_minutes as f64 / 60.0,
        deadline_misses,
        mean_wait_s,
        p95_wait_s: quantile(&waits, 0.95),
        completed: verdict.completed,
        failed: verdict.failed_after_retries,
        lost: verdict.lost,
        ran_twice: verdict.ran_twice,
        overcommitted: verdict.overcommitted,
        preemptions,
        revocations,
        timeline,
        waits_s: waits,
    })
}

/// Whether `run` fails part-way: the same runs fail under every strategy.
fn fails(seed: u64, run: Run, rate: f64) -> bool {
    let mut rng = SeededRng::new(
        seed ^ run.task.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(run.attempt) << 48,
    );
    ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < rate
}

/// Releases idle VMs and starts VMs for waiting tasks.
fn manage_power(
    scheduler: &mut CoreScheduler,
    world: &FleetWorld,
    power: &mut [Power],
    waiting: &BTreeSet<TaskId>,
    minute: u64,
    headroom: &[usize],
    use_spot: bool,
) -> Result<(), Error> {
    let config = &world.config;
    let busy = |scheduler: &CoreScheduler, index: usize| {
        scheduler
            .cluster()
            .node(world.fleet[index].0.id)
            .is_some_and(|node| node.task_count() > 0)
    };
    // Idle or starting VMs per shape: the spare capacity.
    let mut spare = vec![0usize; world.shapes.len()];
    for (index, state) in power.iter().enumerate() {
        let spare_now = match state {
            Power::Starting { .. } => true,
            Power::On { .. } => !busy(scheduler, index),
            Power::Off | Power::Revoked => false,
        };
        if spare_now {
            spare[world.fleet[index].1] += 1;
        }
    }
    for (index, state) in power.iter_mut().enumerate() {
        let Power::On { idle_since } = state else {
            continue;
        };
        if busy(scheduler, index) {
            *idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert(minute);
        let shape = world.fleet[index].1;
        let owned = world.shapes[shape].pool == Pool::Owned;
        if !owned && minute - since >= config.idle_release_min && spare[shape] > headroom[shape] {
            scheduler.cordon(world.fleet[index].0.id)?;
            *state = Power::Off;
            spare[shape] -= 1;
        }
    }
    // Capacity already starting, per VM: (cpu, memory, storage, gpus) left.
    let mut starting: Vec<(usize, Resources, u32)> = power
        .iter()
        .enumerate()
        .filter(|(_, state)| matches!(state, Power::Starting { .. }))
        .map(|(index, _)| {
            let spec = &world.fleet[index].0;
            (index, spec.capacity.clone(), spec.gpus.count)
        })
        .collect();
    for task in waiting {
        let task = &world.tasks[task.0 as usize];
        let spec = &task.spec;
        // Spot only for tasks with slack, and only when the strategy uses it.
        let allowed = |index: usize| match world.shapes[world.fleet[index].1].pool {
            Pool::Owned | Pool::OnDemand => true,
            Pool::Spot => use_spot && task.flexible,
        };
        let fits = |free: &Resources, gpus: u32| {
            free.cpu_milli >= spec.request.cpu_milli
                && free.memory_mib >= spec.request.memory_mib
                && free.storage_gib >= spec.request.storage_gib
                && gpus >= spec.gpu.count
        };
        let take = |free: &mut Resources, gpus: &mut u32| {
            free.cpu_milli -= spec.request.cpu_milli;
            free.memory_mib -= spec.request.memory_mib;
            free.storage_gib -= spec.request.storage_gib;
            *gpus -= spec.gpu.count;
        };
        if let Some((_, free, gpus)) = starting
            .iter_mut()
            .find(|(index, f, g)| allowed(*index) && fits(f, *g))
        {
            take(free, gpus);
            continue;
        }
        // The cheapest off VM that holds it (GPU VMs only for GPU tasks).
        let candidate = power
            .iter()
            .enumerate()
            .filter(|&(index, state)| *state == Power::Off && allowed(index))
            .map(|(index, _)| (index, &world.fleet[index]))
            .filter(|(_, (node, _))| tolerates(spec, node))
            .filter(|(_, (node, _))| fits(&node.capacity, node.gpus.count))
            .min_by(|(a, (_, sa)), (b, (_, sb))| {
                world.shapes[*sa]
                    .price_per_hour
                    .total_cmp(&world.shapes[*sb].price_per_hour)
                    .then(a.cmp(b))
            })
            .map(|(index, _)| index);
        let Some(index) = candidate else {
            continue;
        };
        power[index] = Power::Starting {
            ready_min: minute + config.startup_min,
        };
        let node = &world.fleet[index].0;
        let mut free = node.capacity.clone();
        let mut gpus = node.gpus.count;
        take(&mut free, &mut gpus);
        starting.push((index, free, gpus));
    }
    // Restore the spare capacity used up.
    for (shape, &want) in headroom.iter().enumerate() {
        let mut missing = want.saturating_sub(spare[shape]);
        for (index, state) in power.iter_mut().enumerate() {
            if missing == 0 {
                break;
            }
            if *state == Power::Off && world.fleet[index].1 == shape {
                *state = Power::Starting {
                    ready_min: minute + config.startup_min,
                };
                missing -= 1;
            }
        }
    }
    Ok(())
}

/// Revokes each powered spot VM with the world's rate (per minute: the
/// hourly rate / 60, drawn from the seed, the VM and the minute, so every
/// strategy faces the same odds): its runs are logged as stopped and go
/// back to the queue, and the VM is gone. Returns, per VM revoked, the
/// tasks it held.
fn revoke_spot(
    scheduler: &mut CoreScheduler,
    world: &FleetWorld,
    power: &mut [Power],
    minute: u64,
    log: &mut Vec<Record>,
) -> Result<Vec<Vec<TaskId>>, Error> {
    let rate = world.spot_revocations_per_hour / 60.0;
    if rate <= 0.0 {
        return Ok(Vec::new());
    }
    let mut revoked = Vec::new();
    for (index, state) in power.iter_mut().enumerate() {
        let (node, shape) = &world.fleet[index];
        let powered = matches!(state, Power::On { .. } | Power::Starting { .. });
        if !powered || world.shapes[*shape].pool != Pool::Spot {
            continue;
        }
        let draw = world.config.seed ^ node.id.0.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ minute << 32;
        if SeededRng::new(draw).next_u64() as f64 / u64::MAX as f64 >= rate {
            continue;
        }
        let tasks = scheduler.cluster().tasks_on(node.id);
        for &task in &tasks {
            if let Some(run) = scheduler.current_run(task) {
                log.push(Record::Stopped(run));
            }
        }
        // The scheduler queues its tasks again, uncharged.
        scheduler.remove_node(node.id)?;
        *state = Power::Revoked;
        revoked.push(tasks);
    }
    Ok(revoked)
}

/// Whether `task` tolerates every taint of `node`.
fn tolerates(task: &TaskSpec, node: &NodeSpec) -> bool {
    node.taints.iter().all(|taint| {
        task.constraints
            .tolerations
            .iter()
            .any(|t| t.key == taint.key && t.value.as_ref().is_none_or(|v| *v == taint.value))
    })
}

/// Sums over minutes of used and powered capacity, and cost.
#[derive(Debug, Default)]
struct Totals {
    cpu_used: f64,
    cpu_powered: f64,
    memory_used: f64,
    memory_powered: f64,
    gpu_used: f64,
    gpu_powered: f64,
    vm_minutes: u64,
    cost: f64,
    /// This minute's (used, powered) for the timeline.
    now: [(f64, f64); 3],
    powered_now: usize,
}

impl Totals {
    fn add_minute(&mut self, scheduler: &CoreScheduler, world: &FleetWorld, power: &[Power]) {
        let mut now = [(0.0, 0.0); 3];
        let mut powered = 0;
        for (index, state) in power.iter().enumerate() {
            if matches!(state, Power::Off | Power::Revoked) {
                continue;
            }
            powered += 1;
            let (spec, shape) = &world.fleet[index];
            self.cost += world.shapes[*shape].price_per_hour / 60.0;
            let capacity = &spec.capacity;
            now[0].1 += capacity.cpu_milli as f64;
            now[1].1 += capacity.memory_mib as f64;
            now[2].1 += f64::from(spec.gpus.count);
            if let Some(node) = scheduler.cluster().node(spec.id) {
                let free = node.free();
                now[0].0 += capacity.cpu_milli.saturating_sub(free.cpu_milli) as f64;
                now[1].0 += capacity.memory_mib.saturating_sub(free.memory_mib) as f64;
                now[2].0 += node.gpu_free_milli().iter().filter(|&&m| m == 0).count() as f64;
            }
        }
        self.vm_minutes += powered as u64;
        self.cpu_used += now[0].0;
        self.cpu_powered += now[0].1;
        self.memory_used += now[1].0;
        self.memory_powered += now[1].1;
        self.gpu_used += now[2].0;
        self.gpu_powered += now[2].1;
        self.now = now;
        self.powered_now = powered;
    }

    fn share(&self, used: f64, powered: f64) -> f64 {
        if powered == 0.0 {
            0.0
        } else {
            used * 100.0 / powered
        }
    }

    fn utilization_pct(&self) -> f64 {
        (self.share(self.cpu_used, self.cpu_powered)
            + self.share(self.memory_used, self.memory_powered)
            + self.share(self.gpu_used, self.gpu_powered))
            / 3.0
    }

    fn point(&self, minute: u64) -> TimelinePoint {
        let now: f64 = self.now.iter().map(|&(u, p)| self.share(u, p)).sum::<f64>() / 3.0;
        TimelinePoint {
            hour: minute as f64 / 60.0,
            powered_vms: self.powered_now,
            utilization_pct: now,
            cost: self.cost,
        }
    }
}
