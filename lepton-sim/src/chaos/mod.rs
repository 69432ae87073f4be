//! Chaos runs: the real scheduler against a simulated world that crashes
//! nodes, fails launches and delivers reports twice or late.
//!
//! The world, in integer virtual seconds:
//! - tasks of the synthetic mix arrive at a steady rate a little above what
//!   the cluster completes, each running 60 to 600 s; a fifth are services;
//!   a twentieth have a high priority and three twentieths a low one, so
//!   that preemption happens;
//! - every live node sends a heartbeat every 5 s; the scheduler declares a
//!   node down after 15 s of silence;
//! - a share of the nodes crash once, at a random time, killing their runs,
//!   and come back after 5 to 600 s (some before the scheduler notices);
//!   on coming back a node's agent reports each killed run as failed;
//! - a launch fails with the configured probability, reported 0 to 2 s later;
//! - a share of completions is delivered a second time, up to 30 s later;
//! - the rebalancer runs every 60 s;
//! - optionally, a share of the tasks come in gangs of 2 to 4 that must
//!   start together, and the tasks are spread over tenant queues with
//!   maxima (`gang_share`, `queues`).
//!
//! Everything the world did and the scheduler acknowledged goes into a log,
//! and [`check`](check::check) recomputes lost, duplicated and
//! over-committed work from that log alone.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::synthetic::{synthetic_nodes, synthetic_task};
use crate::Error;
use lepton_core::admission::{Admission, Limits, QueueSpec};
use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::model::{Gang, Priority, TaskKind};
use lepton_core::rng::SeededRng;
use lepton_core::scheduler::{RebalanceConfig, SchedulerConfig, TaskState};
use lepton_core::Policy;
use lepton_core::{Assignment, CoreScheduler, Event, Scheduler};
use lepton_core::{NodeId, NodeSpec};
use lepton_core::{Run, TaskId, TaskSpec};

pub(crate) mod check;

use check::{check, check_tenancy, Record};

const HEARTBEAT_EVERY_S: u64 = 5;
const HEARTBEAT_TIMEOUT_S: u64 = 15;
/// Tasks arriving per node per second: somewhat more than the synthetic
/// mix's nodes complete with 60–600 s runs, so that a queue builds up and
/// high priorities preempt.
const ARRIVALS_PER_NODE_PER_S: f64 = 0.03;

/// A chaos run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosConfig {
    /// Nodes in the cluster.
    pub nodes: u64,
    /// Tasks submitted over the run.
    pub tasks: u64,
    /// Share of the nodes that crash once during the run, in [0, 1].
    pub node_failure_rate: f64,
    /// Probability that a launch fails, in [0, 1].
    pub launch_error_rate: f64,
    /// Probability that a completion is delivered twice, in [0, 1].
    pub duplicate_rate: f64,
    /// Share of the tasks that come in gangs (of 2 to 4 consecutive
    /// arrivals, all needed to start), in [0, 1].
    pub gang_share: f64,
    /// Tenant queues the tasks are spread over (`org/t0`, `org/t1`, …,
    /// each at most 40 % of the cluster's CPU and memory, `org` at most
    /// 90 %); 0: none.
    pub queues: u32,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for ChaosConfig {
    /// 1,000 nodes, 100,000 tasks, 10 % of nodes crashing, 5 % launch
    /// errors, 5 % duplicated completions, seed 42.
    fn default() -> Self {
        ChaosConfig {
            nodes: 1_000,
            tasks: 100_000,
            node_failure_rate: 0.1,
            launch_error_rate: 0.05,
            duplicate_rate: 0.05,
            gang_share: 0.0,
            queues: 0,
            seed: 42,
        }
    }
}

impl ChaosConfig {
    /// Checks every value is in range.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the value: a rate outside [0, 1], or no
    /// nodes.
    pub fn validate(&self) -> Result<(), Error> {
        for (name, value) in [
            ("crash share (node failure rate)", self.node_failure_rate),
            ("launch error rate", self.launch_error_rate),
            ("duplicate rate", self.duplicate_rate),
            ("gang share", self.gang_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::OutOfRange {
                    name,
                    value,
                    expected: "a probability in [0, 1]",
                });
            }
        }
        if self.queues > 1_000 {
            return Err(Error::OutOfRange {
                name: "queues",
                value: f64::from(self.queues),
                expected: "at most 1000",
            });
        }
        if self.nodes == 0 {
            return Err(Error::OutOfRange {
                name: "nodes",
                value: 0.0,
                expected: "at least 1",
            });
        }
        Ok(())
    }
}

/// What a chaos run found. `lost`, `ran_twice` and `overcommitted` come
/// from the independent checker; the rest describe the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChaosReport {
    /// Tasks submitted.
    pub tasks: u64,
    /// Tasks that completed (once).
    pub completed: usize,
    /// Tasks that failed after their retries.
    pub failed_after_retries: usize,
    /// Tasks still queued, waiting to be retried or running when the run
    /// reached `limit_s` (a launch error rate of 1 retries services
    /// forever): the scheduler still holds them, so they are not lost.
    pub unfinished: usize,
    /// Tasks that ended neither completed, failed nor unfinished: tasks the
    /// scheduler dropped (must be 0).
    pub lost: usize,
    /// Tasks that completed twice or ran twice at once.
    pub ran_twice: usize,
    /// Moments a node held more than its capacity.
    pub overcommitted: usize,
    /// Gangs formed.
    pub gangs: usize,
    /// Cycles that started part of a gang (must be 0), by the checker.
    pub gangs_partly_started: usize,
    /// Cycle ends at which a queue ran more than its maximum (must be 0),
    /// by the checker.
    pub queues_over_maximum: usize,
    /// The most failed attempts of one task.
    pub max_retries_seen: usize,
    /// Nodes that crashed.
    pub node_crashes: u64,
    /// Launches that failed.
    pub launch_errors: u64,
    /// Reports the scheduler refused as duplicate, late or stale.
    pub refused_reports: u64,
    /// Tasks evicted for higher priorities.
    pub preemptions: u64,
    /// Tasks moved by the rebalancer.
    pub moves: u64,
    /// Nodes the scheduler declared down for silence.
    pub silent_nodes: u64,
    /// Virtual seconds simulated.
    pub virtual_s: u64,
    /// The run's time limit in virtual seconds: twice the arrivals' span
    /// plus six hours.
    pub limit_s: u64,
    /// Wall-clock seconds the run took.
    pub wall_s: f64,
}

/// Something the world does at a virtual second.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    Arrival(usize),
    Heartbeats,
    Crash(NodeId),
    Recover(NodeId),
    LaunchFailed(Run),
    Finished(Run),
    Duplicate(Run),
    ReportKilled(Run),
}

struct World {
    scheduler: CoreScheduler,
    clock: ManualClock,
    rng: SeededRng,
    config: ChaosConfig,
    tasks: Vec<TaskSpec>,
    durations: Vec<u64>,
    index: HashMap<TaskId, usize>,
    heap: BinaryHeap<Reverse<(u64, u64, Happening)>>,
    sequence: u64,
    /// The runs the world is running, and where.
    live: HashMap<Run, NodeId>,
    down: HashMap<NodeId, Vec<Run>>,
    log: Vec<Record>,
    submitted: usize,
    report: ChaosReport,
    /// The tenant queues declared.
    queues: Vec<QueueSpec>,
}

/// Runs the chaos experiment with `policy` and checks its log.
///
/// # Errors
/// [`Error::OutOfRange`] for a rate outside [0, 1] or no nodes.
pub fn run_chaos(policy: Box<dyn Policy>, config: &ChaosConfig) -> Result<ChaosReport, Error> {
    config.validate()?;
    let started = Instant::now();
    let mut world = World::new(policy, config)?;
    world.run();
    let nodes = synthetic_nodes(config.nodes, config.seed);
    let verdict = check(&nodes, &world.tasks, &world.log);
    let tenancy = check_tenancy(&world.tasks, &world.queues, &world.log);
    let mut report = world.report;
    report.gangs_partly_started = tenancy.gangs_partly_started;
    report.queues_over_maximum = tenancy.queues_over_maximum;
    report.completed = verdict.completed;
    report.failed_after_retries = verdict.failed_after_retries;
    report.unfinished = verdict.unfinished;
    report.lost = verdict.lost;
    report.ran_twice = verdict.ran_twice;
    report.overcommitted = verdict.overcommitted;
    report.max_retries_seen = world
        .tasks
        .iter()
        .map(|t| world.scheduler.failures(t.id).len())
        .max()
        .unwrap_or(0);
    let stats = world.scheduler.report();
    report.preemptions = stats.preemptions;
    report.moves = stats.moves;
    report.silent_nodes = stats.silent_nodes;
    report.wall_s = started.elapsed().as_secs_f64();
    Ok(report)
}

impl World {
    fn new(mut policy: Box<dyn Policy>, config: &ChaosConfig) -> Result<Self, Error> {
        policy.reseed(config.seed);
        let clock = ManualClock::new();
        let mut scheduler_config = SchedulerConfig::default();
        scheduler_config.heartbeat_timeout = Some(Duration::from_secs(HEARTBEAT_TIMEOUT_S));
        // Retries moved by events: an overloaded cluster costs what
        // changes, not its queue's length, per cycle.
        scheduler_config.retry_waiting_on_release = true;
        scheduler_config.rebalance =
            Some(RebalanceConfig::new(Duration::from_secs(60), 0.5, 0.9, 10)?);
        let nodes = synthetic_nodes(config.nodes, config.seed);
        let queues = tenant_queues(&nodes, config.queues);
        let mut admission = Admission::new();
        for queue in &queues {
            admission.add_queue(queue.clone())?;
        }
        let mut scheduler = CoreScheduler::builder(policy)
            .clock(Arc::new(clock.clone()))
            .config(scheduler_config)
            .queues(&admission)
            .build();
        for node in &nodes {
            scheduler.add_node(node)?;
        }
        let mut rng = SeededRng::new(config.seed ^ 0xC4A0_5EED);
        let mut tasks = Vec::new();
        let mut durations = Vec::new();
        for id in 0..config.tasks {
            let mut spec = synthetic_task(id, &mut rng);
            spec.priority = match rng.below(20) {
                0 => Priority(200),
                1..=3 => Priority(50),
                _ => Priority::NORMAL,
            };
            if rng.below(5) == 0 {
                spec.kind = TaskKind::Service;
            }
            if config.queues > 0 {
                let tenant = rng.below(u64::from(config.queues));
                spec.queue = Some(format!("org/t{tenant}"));
            }
            tasks.push(spec);
            durations.push(60 + rng.below(541));
        }
        let gangs = form_gangs(&mut tasks, config.gang_share, &mut rng);
        let index = tasks.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        let mut world = World {
            scheduler,
            clock,
            rng,
            config: config.clone(),
            tasks,
            durations,
            index,
            heap: BinaryHeap::new(),
            sequence: 0,
            live: HashMap::new(),
            down: HashMap::new(),
            log: Vec::new(),
            submitted: 0,
            report: ChaosReport {
                tasks: config.tasks,
                gangs,
                gangs_partly_started: 0,
                queues_over_maximum: 0,
                completed: 0,
                failed_after_retries: 0,
                unfinished: 0,
                lost: 0,
                ran_twice: 0,
                overcommitted: 0,
                max_retries_seen: 0,
                node_crashes: 0,
                launch_errors: 0,
                refused_reports: 0,
                preemptions: 0,
                moves: 0,
                silent_nodes: 0,
                virtual_s: 0,
                limit_s: 0,
                wall_s: 0.0,
            },
            queues,
        };
        world.plan(&nodes);
        Ok(world)
    }

    /// Arrivals, heartbeats and crashes, and the run's time limit.
    fn plan(&mut self, nodes: &[NodeSpec]) {
        let rate = ARRIVALS_PER_NODE_PER_S * self.config.nodes as f64;
        let span = (self.config.tasks as f64 / rate).ceil() as u64;
        // Runs end within half an hour of the last arrival at the default
        // rates; the limit only stops runs that cannot end (every launch
        // failing, services retried without limit).
        self.report.limit_s = 2 * span + 6 * 3_600;
        for i in 0..self.tasks.len() {
            let at = (i as f64 / rate) as u64;
            self.at(at, Happening::Arrival(i));
        }
        self.at(0, Happening::Heartbeats);
        let crashes = (self.config.node_failure_rate * nodes.len() as f64).round() as usize;
        let mut order: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
        self.rng.shuffle(&mut order);
        for &node in order.iter().take(crashes) {
            let at = self.rng.below(span.max(1));
            self.at(at, Happening::Crash(node));
        }
    }

    fn at(&mut self, second: u64, happening: Happening) {
        self.sequence += 1;
        self.heap.push(Reverse((second, self.sequence, happening)));
    }

    fn run(&mut self) {
        while let Some(Reverse((now, _, happening))) = self.heap.pop() {
            if now > self.report.limit_s {
                break;
            }
            self.clock.set(Timestamp::from_secs(now));
            self.apply(now, happening);
            let more_now = self
                .heap
                .peek()
                .is_some_and(|Reverse((second, _, _))| *second == now);
            if !more_now {
                // Runs the scheduler ended itself (a gang's members after
                // another failed) are stopped before the cycle.
                for run in self.scheduler.expire_timeouts() {
                    self.stop(run);
                }
                let assignments = self.scheduler.schedule();
                self.launch(now, assignments);
                self.log.push(Record::Cycle);
                self.report.virtual_s = now;
                if self.finished() {
                    break;
                }
            }
        }
        self.log_ends();
    }

    fn apply(&mut self, now: u64, happening: Happening) {
        match happening {
            Happening::Arrival(i) => {
                // Valid by construction: the synthetic mix.
                self.submitted += 1;
                if self.scheduler.submit(&self.tasks[i]).is_ok() {
                    self.log.push(Record::Submitted(self.tasks[i].id));
                }
            }
            Happening::Heartbeats => {
                for node in 0..self.config.nodes {
                    let node = NodeId(node);
                    if !self.down.contains_key(&node) {
                        // Every node exists: no error.
                        let _ = self.scheduler.handle(Event::Heartbeat(node));
                    }
                }
                self.at(now + HEARTBEAT_EVERY_S, Happening::Heartbeats);
            }
            Happening::Crash(node) => {
                self.report.node_crashes += 1;
                let mut killed: Vec<Run> = self
                    .live
                    .iter()
                    .filter(|(_, &on)| on == node)
                    .map(|(run, _)| *run)
                    .collect();
                killed.sort_unstable();
                for run in &killed {
                    self.live.remove(run);
                    self.log.push(Record::Stopped(*run));
                }
                self.down.insert(node, killed);
                let back = now + 5 + self.rng.below(596);
                self.at(back, Happening::Recover(node));
            }
            Happening::Recover(node) => {
                let killed = self.down.remove(&node).unwrap_or_default();
                // The agent is back: its heartbeat first, then a failure
                // report for each run it lost (stale if already retried).
                let _ = self.scheduler.handle(Event::Heartbeat(node));
                for run in killed {
                    self.at(now, Happening::ReportKilled(run));
                }
            }
            Happening::ReportKilled(run) => {
                let event = Event::TaskFailed {
                    run,
                    reason: "killed by a node crash".to_owned(),
                };
                self.report_failure(run, event);
            }
            Happening::LaunchFailed(run) => {
                let event = Event::LaunchFailed {
                    run,
                    reason: "injected launch error".to_owned(),
                };
                self.report_failure(run, event);
            }
            Happening::Finished(run) => {
                if self.live.remove(&run).is_none() {
                    return; // stopped or killed since: nothing finished
                }
                self.complete(run);
                if self.rng.below(1_000_000) < (self.config.duplicate_rate * 1e6) as u64 {
                    let later = now + self.rng.below(31);
                    self.at(later, Happening::Duplicate(run));
                }
            }
            Happening::Duplicate(run) => self.complete(run),
        }
    }

    /// Delivers a completion; logs it when the scheduler accepts it.
    fn complete(&mut self, run: Run) {
        match self.scheduler.complete(run) {
            Ok(()) => self.log.push(Record::Completed(run)),
            Err(_) => self.report.refused_reports += 1,
        }
    }

    /// Delivers a failure report. Accepted or refused (its run ended
    /// already, or a report came twice), the scheduler no longer holds
    /// the run.
    fn report_failure(&mut self, run: Run, event: Event) {
        if self.scheduler.handle(event).is_err() {
            self.report.refused_reports += 1;
        }
        self.log.push(Record::Released(run));
    }

    /// Stops a run the scheduler let go of.
    fn stop(&mut self, run: Run) {
        self.log.push(Record::Released(run));
        if self.live.remove(&run).is_some() {
            self.log.push(Record::Stopped(run));
        }
    }

    /// Whether every task arrived and ended (by the scheduler's account;
    /// the checker verifies it from the log).
    fn finished(&self) -> bool {
        let counts = self.scheduler.task_counts();
        self.submitted == self.tasks.len()
            && counts.queued + counts.backing_off + counts.running == 0
    }

    /// Logs, at the run's end, every task the scheduler gave up and every
    /// task it still holds.
    fn log_ends(&mut self) {
        for task in &self.tasks {
            match self.scheduler.task_state(task.id) {
                Some(TaskState::Failed { .. }) => self.log.push(Record::GaveUp(task.id)),
                Some(
                    TaskState::Queued | TaskState::BackingOff { .. } | TaskState::Running { .. },
                ) => self.log.push(Record::Unfinished(task.id)),
                _ => {}
            }
        }
    }

    /// Stops what the assignments evict, then starts them (or fails the launch).
    fn launch(&mut self, now: u64, assignments: Vec<Assignment>) {
        for assignment in &assignments {
            for &run in &assignment.evicts {
                self.stop(run);
            }
        }
        for assignment in assignments {
            let run = assignment.run();
            self.log.push(Record::Placed(run));
            let fails = self.rng.below(1_000_000) < (self.config.launch_error_rate * 1e6) as u64;
            if fails || self.down.contains_key(&assignment.node) {
                self.report.launch_errors += 1;
                let at = now + self.rng.below(3);
                self.at(at, Happening::LaunchFailed(run));
                continue;
            }
            self.log.push(Record::Started {
                run,
                node: assignment.node,
                gpus: assignment.gpus.to_vec(),
            });
            self.live.insert(run, assignment.node);
            let duration = self.index.get(&run.task).map_or(60, |&i| self.durations[i]);
            self.at(now + duration, Happening::Finished(run));
        }
    }
}

/// `org` (at most 90 % of the cluster's CPU and memory) and `count`
/// tenants below it (`org/t0`, …, each at most 40 %); none for 0.
fn tenant_queues(nodes: &[NodeSpec], count: u32) -> Vec<QueueSpec> {
    if count == 0 {
        return Vec::new();
    }
    let cpu: u64 = nodes.iter().map(|n| n.capacity.cpu_milli).sum();
    let memory: u64 = nodes.iter().map(|n| n.capacity.memory_mib).sum();
    let share = |percent: u64| {
        Limits::cpu_milli(cpu * percent / 100).with_memory_mib(memory * percent / 100)
    };
    let mut queues = vec![QueueSpec::new("org").with_max(share(90))];
    queues.extend((0..count).map(|i| QueueSpec::new(format!("org/t{i}")).with_max(share(40))));
    queues
}

/// Groups runs of 2 to 4 consecutive tasks into gangs, each started by a
/// task with probability `share` / 3 (so that about `share` of the tasks
/// are members); the members share the first one's queue. Returns how
/// many gangs were formed.
fn form_gangs(tasks: &mut [TaskSpec], share: f64, rng: &mut SeededRng) -> usize {
    let mut gangs = 0;
    let mut i = 0;
    while i + 1 < tasks.len() {
        let starts = rng.below(1_000_000) < (share / 3.0 * 1e6) as u64;
        if !starts {
            i += 1;
            continue;
        }
        let size = (2 + rng.below(3) as usize).min(tasks.len() - i);
        let gang = Gang::new(format!("g{}", tasks[i].id.0), size as u32);
        let queue = tasks[i].queue.clone();
        for member in &mut tasks[i..i + size] {
            member.gang = Some(gang.clone());
            member.queue.clone_from(&queue);
        }
        gangs += 1;
        i += size;
    }
    gangs
}
