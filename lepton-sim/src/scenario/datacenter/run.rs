//! One strategy through the scenario's world, minute by minute: a stepper
//! over the real scheduler, as `timed`'s replay is over events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::scheduler::{SchedulerConfig, TaskState};
use lepton_core::{Assignment, CoreScheduler, NodeId, NodeSpec, Run, Scheduler, TaskId, TaskSpec};
use lepton_policies::DemandForecast;

use super::autoscaler::{Autoscaler, FleetNow, ScaleDownPlan};
use super::bound::{fails, floor, run_length};
use super::karpenter::Consolidator;
use super::loads::VmLoads;
use super::power::{revoke_spot, Power, PowerManager};
use super::{FleetWorld, Pool, ScenarioTask, Strategy, StrategyReport, TimelinePoint};
use crate::chaos::check::{check, Record};
use crate::scenario::quantile;
use crate::Error;

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
    run_datacenter_while(world, strategy, || true)
}

/// [`run_datacenter`], stopped early (its report then covers the minutes
/// run) as soon as `go_on` says no: checked once a simulated minute, for a
/// gym environment whose agent has gone.
///
/// # Errors
/// As [`run_datacenter`].
pub(crate) fn run_datacenter_while(
    world: &FleetWorld,
    strategy: Strategy,
    go_on: impl Fn() -> bool,
) -> Result<StrategyReport, Error> {
    let mut run = DatacenterRun::new(world, strategy)?;
    // A day of arrivals, then until everything has ended (bounded).
    let last_minute = world.config.hours * 60 + 48 * 60;
    let mut minute = 0u64;
    while minute <= last_minute && go_on() {
        if run.step(minute)? {
            break;
        }
        minute += 1;
    }
    Ok(run.report(minute))
}

/// The demand forecast's bucket: ten minutes.
const FORECAST_BUCKET_S: u64 = 600;

/// Demand learned online in every run — per shape, the VMs taken into
/// use (those that turn from idle, starting or off to busy) — for the
/// spare by forecast ([`Strategy::spare_forecast`]) and the timeline's
/// forecast against what came.
struct Demand {
    per_shape: Vec<DemandForecast>,
    /// Per VM: whether it held a task at the end of the last minute.
    busy: Vec<bool>,
    /// With a spare by forecast: its factor and, per shape, the fixed
    /// spare kept at least.
    spare: Option<(f64, Vec<usize>)>,
}

/// A strategy's run in progress.
struct DatacenterRun<'a> {
    world: &'a FleetWorld,
    name: String,
    release_idle: bool,
    /// Scale-down by the cluster autoscaler's rules, when the strategy uses them.
    autoscaler: Option<Autoscaler>,
    /// Karpenter-style consolidation, when the strategy uses it.
    consolidator: Option<Consolidator>,
    use_spot: bool,
    clock: Arc<ManualClock>,
    scheduler: CoreScheduler,
    /// What the minute's scans read of each VM's node.
    loads: VmLoads,
    power: Vec<Power>,
    /// Spare VMs to keep per shape.
    headroom: Vec<usize>,
    demand: Demand,
    /// Per minute: the runs that end then, and whether each fails.
    ends: BTreeMap<u64, Vec<(Run, bool)>>,
    first_start: HashMap<TaskId, u64>,
    /// When each run that may still be stopped started.
    run_starts: HashMap<Run, u64>,
    /// Minutes of runs stopped by the strategy (preempted, revoked).
    lost_work_min: u64,
    ended_at: HashMap<TaskId, u64>,
    waiting: BTreeSet<TaskId>,
    next_arrival: usize,
    totals: Totals,
    timeline: Vec<TimelinePoint>,
    preemptions: usize,
    revocations: usize,
    /// What the independent checker reads.
    log: Vec<Record>,
}

impl<'a> DatacenterRun<'a> {
    /// The scheduler on the world's fleet, powered as the world starts.
    fn new(world: &'a FleetWorld, strategy: Strategy) -> Result<Self, Error> {
        let clock = Arc::new(ManualClock::new());
        let mut scheduler_config = SchedulerConfig::default();
        scheduler_config.preemption = strategy.preemption;
        scheduler_config.retry_waiting_on_release = true;
        let mut scheduler = CoreScheduler::builder(strategy.policy)
            .clock(Arc::clone(&clock) as Arc<dyn lepton_core::clock::Clock>)
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
        let headroom = (0..world.shapes.len())
            .map(|index| {
                let count = world.fleet.iter().filter(|(_, s)| *s == index).count();
                strategy.spare.vms(count)
            })
            .collect::<Vec<usize>>();
        let demand = Demand {
            per_shape: vec![DemandForecast::new(FORECAST_BUCKET_S); world.shapes.len()],
            busy: vec![false; world.fleet.len()],
            spare: strategy
                .spare_forecast
                .map(|factor| (factor, headroom.clone())),
        };
        Ok(DatacenterRun {
            world,
            name: strategy.name,
            release_idle: strategy.release_idle,
            autoscaler: strategy
                .autoscaler
                .map(|rules| Autoscaler::new(rules, world.fleet.len())),
            consolidator: strategy
                .consolidation
                .map(|rules| Consolidator::new(rules, world.fleet.len())),
            use_spot: strategy.use_spot,
            clock,
            scheduler,
            loads: VmLoads::new(world),
            power,
            headroom,
            demand,
            ends: BTreeMap::new(),
            first_start: HashMap::new(),
            run_starts: HashMap::new(),
            lost_work_min: 0,
            ended_at: HashMap::new(),
            waiting: BTreeSet::new(),
            next_arrival: 0,
            totals: Totals::default(),
            timeline: Vec::new(),
            preemptions: 0,
            revocations: 0,
            log: Vec::new(),
        })
    }

    /// One minute of the run; true once every task has arrived and ended.
    fn step(&mut self, minute: u64) -> Result<bool, Error> {
        self.clock.set(Timestamp::from_secs(minute * 60));
        self.end_runs(minute)?;
        self.admit_arrivals(minute)?;
        for runs in revoke_spot(
            &mut self.scheduler,
            self.world,
            &mut self.power,
            minute,
            &mut self.log,
        )? {
            self.revocations += 1;
            for run in runs {
                self.stopped(run, minute);
                self.waiting.insert(run.task);
            }
        }
        self.join_started_vms(minute)?;
        self.place(minute);
        self.learn_demand(minute);
        if self.release_idle {
            self.manage_power(minute)?;
        }
        let loads = self.loads.sync(self.world, self.scheduler.cluster());
        self.totals.add_minute(loads, self.world, &self.power);
        if minute.is_multiple_of(10) {
            self.timeline.push(self.totals.point(minute));
        }
        let counts = self.scheduler.task_counts();
        Ok(self.next_arrival == self.world.tasks.len()
            && self.ends.is_empty()
            && counts.total() == counts.completed + counts.failed)
    }

    /// Learns which VMs were taken into use this minute, after counting
    /// what the forecast expected of it; with a spare by forecast, sets
    /// each shape's spare from the forecast.
    fn learn_demand(&mut self, minute: u64) {
        let demand = &mut self.demand;
        let now_s = minute * 60;
        let loads = self.loads.sync(self.world, self.scheduler.cluster());
        let expected: f64 = demand
            .per_shape
            .iter_mut()
            .map(|shape| shape.rate_per_s(now_s) * 60.0)
            .sum();
        let mut taken = 0;
        for ((index, was_busy), power) in demand.busy.iter_mut().enumerate().zip(&self.power) {
            // A VM that is off holds nothing.
            let off = matches!(power, Power::Off | Power::Revoked);
            let busy = !off && loads.get(index).tasks > 0;
            if busy && !*was_busy {
                demand.per_shape[self.world.fleet[index].1].observe(now_s, 1.0);
                taken += 1;
            }
            *was_busy = busy;
        }
        self.totals.add_demand(taken, expected);
        let Some((factor, floor)) = &demand.spare else {
            return;
        };
        let window_s = (self.world.config.startup_min * 60) as f64;
        let shapes = self.headroom.iter_mut().zip(&mut demand.per_shape);
        for ((headroom, shape), floor) in shapes.zip(floor) {
            let expected = factor * shape.rate_per_s(now_s) * window_s;
            *headroom = (expected.ceil() as usize).max(*floor);
        }
    }

    /// Reports the runs that end this minute: completed, or failed part-way
    /// (retried by the scheduler, or given up).
    fn end_runs(&mut self, minute: u64) -> Result<(), Error> {
        let scheduler = &mut self.scheduler;
        for (run, fails) in self.ends.remove(&minute).unwrap_or_default() {
            let running = matches!(
                scheduler.task_state(run.task),
                Some(TaskState::Running { .. })
            );
            if !running || scheduler.current_run(run.task) != Some(run) {
                continue; // preempted meanwhile
            }
            self.run_starts.remove(&run);
            if fails {
                self.log.push(Record::Stopped(run));
                scheduler.fail(run, "the run failed part-way")?;
                if matches!(
                    scheduler.task_state(run.task),
                    Some(TaskState::Failed { .. })
                ) {
                    self.log.push(Record::GaveUp(run.task));
                } else {
                    // Retried: it waits for a node again.
                    self.waiting.insert(run.task);
                }
            } else {
                scheduler.complete(run)?;
                self.log.push(Record::Completed(run));
                self.ended_at.insert(run.task, minute);
            }
        }
        Ok(())
    }

    /// Submits the tasks that arrive by this minute.
    fn admit_arrivals(&mut self, minute: u64) -> Result<(), Error> {
        while let Some(task) = self.world.tasks.get(self.next_arrival) {
            if task.arrival_min > minute {
                break;
            }
            self.scheduler.submit(&task.spec)?;
            self.log.push(Record::Submitted(task.spec.id));
            self.waiting.insert(task.spec.id);
            self.next_arrival += 1;
        }
        Ok(())
    }

    /// VMs whose start-up is over take tasks.
    fn join_started_vms(&mut self, minute: u64) -> Result<(), Error> {
        for (index, state) in self.power.iter_mut().enumerate() {
            if let Power::Starting { ready_min } = *state {
                if ready_min <= minute {
                    self.scheduler.uncordon(self.world.fleet[index].0.id)?;
                    *state = Power::On { idle_since: None };
                }
            }
        }
        Ok(())
    }

    /// Releases and starts VMs by the strategy's rules.
    fn manage_power(&mut self, minute: u64) -> Result<(), Error> {
        let manager = PowerManager {
            world: self.world,
            minute,
            headroom: &self.headroom,
            use_spot: self.use_spot,
        };
        if let Some(consolidator) = &mut self.consolidator {
            // Idle release and scale-up as for every releasing strategy;
            // consolidation on a cluster with nothing waiting.
            manager.manage(
                &mut self.scheduler,
                &mut self.power,
                &self.waiting,
                &mut self.loads,
            )?;
            if !self.waiting.is_empty() {
                return Ok(());
            }
            let loads = self.loads.sync(self.world, self.scheduler.cluster());
            let mut spare = manager.spare(loads, &self.power);
            let fleet = FleetNow {
                scheduler: &self.scheduler,
                loads,
                world: self.world,
                power: &self.power,
                minute,
            };
            let plan = consolidator.plan(&fleet, &mut spare, &self.headroom);
            return self.carry_out(plan, minute);
        }
        let Some(autoscaler) = &mut self.autoscaler else {
            return manager.manage(
                &mut self.scheduler,
                &mut self.power,
                &self.waiting,
                &mut self.loads,
            );
        };
        // The autoscaler scales up first and down only in a loop that did
        // not scale up (which changes no node).
        let loads = self.loads.sync(self.world, self.scheduler.cluster());
        let mut spare = manager.spare(loads, &self.power);
        if manager.scale_up(&mut self.power, &self.waiting, &spare) {
            autoscaler.scaled_up(minute);
            return Ok(());
        }
        let fleet = FleetNow {
            scheduler: &self.scheduler,
            loads,
            world: self.world,
            power: &self.power,
            minute,
        };
        let plan = autoscaler.scale_down(&fleet, &mut spare, &self.headroom);
        self.carry_out(plan, minute)
    }

    /// Releases, replaces and drains what scale-down decided.
    fn carry_out(&mut self, plan: ScaleDownPlan, minute: u64) -> Result<(), Error> {
        for index in plan.release {
            self.release(index)?;
        }
        if let Some((old, new)) = plan.replace {
            self.scheduler.cordon(self.world.fleet[old].0.id)?;
            self.power[new] = Power::Starting {
                ready_min: minute + self.world.config.startup_min,
            };
        }
        if let Some(index) = plan.drain {
            // The soft taint on unneeded VMs, as a cordon for the drain.
            self.drain(index, &plan.unneeded, minute)?;
        }
        Ok(())
    }

    /// Powers off the idle VM at `index`.
    fn release(&mut self, index: usize) -> Result<(), Error> {
        self.scheduler.cordon(self.world.fleet[index].0.id)?;
        self.power[index] = Power::Off;
        Ok(())
    }

    /// Drains the VM at `index` and powers it off: its tasks go elsewhere
    /// (the VMs at `avoid` cordoned meanwhile) or wait, their work so far
    /// lost.
    fn drain(&mut self, index: usize, avoid: &[usize], minute: u64) -> Result<(), Error> {
        let avoided: Vec<NodeId> = avoid.iter().map(|&i| self.world.fleet[i].0.id).collect();
        for &node in &avoided {
            self.scheduler.cordon(node)?;
        }
        let drained = self.scheduler.drain(self.world.fleet[index].0.id);
        for &node in &avoided {
            self.scheduler.uncordon(node)?;
        }
        let drained = drained?;
        for assignment in drained.moved {
            self.started(assignment, minute);
        }
        for run in drained.requeued {
            self.log.push(Record::Stopped(run));
            self.stopped(run, minute);
            self.waiting.insert(run.task);
        }
        self.power[index] = Power::Off;
        Ok(())
    }

    /// One scheduling cycle: each run placed is logged and its end (and
    /// whether it fails part-way) planned; preempted tasks wait again.
    fn place(&mut self, minute: u64) {
        for assignment in self.scheduler.schedule() {
            self.started(assignment, minute);
        }
    }

    /// A run started by `assignment` (placed, or moved off a drained VM).
    fn started(&mut self, assignment: Assignment, minute: u64) {
        let config = &self.world.config;
        for evicted in &assignment.evicts {
            self.log.push(Record::Stopped(*evicted));
            self.stopped(*evicted, minute);
            if evicted.task != assignment.task {
                self.preemptions += 1;
                self.waiting.insert(evicted.task);
            }
        }
        self.log.push(Record::Started {
            run: assignment.run(),
            node: assignment.node,
            gpus: assignment.gpus.to_vec(),
        });
        let task = &self.world.tasks[assignment.task.0 as usize];
        let run = assignment.run();
        self.first_start.entry(run.task).or_insert(minute);
        self.run_starts.insert(run, minute);
        self.waiting.remove(&run.task);
        let fails = fails(config.seed, run, config.failure_rate);
        let length = match task.ends_at_min {
            Some(end) => end.saturating_sub(minute).max(1),
            None => run_length(task, fails),
        };
        self.ends
            .entry(minute + length)
            .or_default()
            .push((run, fails));
    }

    /// `run` was stopped at `minute` by the strategy's doing: its work is lost.
    fn stopped(&mut self, run: Run, minute: u64) {
        if let Some(start) = self.run_starts.remove(&run) {
            self.lost_work_min += minute - start;
        }
    }

    /// What the run measured, `minute` being its last.
    fn report(self, minute: u64) -> StrategyReport {
        let world = self.world;
        // Anything still queued or running at the bound is lost work: the
        // independent checker counts it from the log.
        let nodes: Vec<NodeSpec> = world.fleet.iter().map(|(n, _)| n.clone()).collect();
        let specs: Vec<TaskSpec> = world.tasks.iter().map(|t| t.spec.clone()).collect();
        let verdict = check(&nodes, &specs, &self.log);
        let wait_min = |t: &ScenarioTask| {
            let start = self.first_start.get(&t.spec.id).copied().unwrap_or(minute);
            start.saturating_sub(t.arrival_min)
        };
        let measured = || world.tasks.iter().filter(|t| !t.already_running);
        let mut waits: Vec<f64> = measured().map(|t| wait_min(t) as f64 * 60.0).collect();
        let slo_violations = measured()
            .filter(|t| {
                t.start_within_min.is_some_and(|bound| {
                    wait_min(t) > bound || !self.first_start.contains_key(&t.spec.id)
                })
            })
            .count();
        waits.sort_by(f64::total_cmp);
        let deadline_misses = world
            .tasks
            .iter()
            .filter(|t| {
                self.ended_at
                    .get(&t.spec.id)
                    .is_none_or(|&end| end > t.deadline_min)
            })
            .count();
        let unavoidable_misses = world
            .tasks
            .iter()
            .filter(|t| floor(world, t).end.is_none_or(|end| end > t.deadline_min))
            .count();
        let mean_wait_s = waits.iter().sum::<f64>() / waits.len().max(1) as f64;
        let totals = &self.totals;
        StrategyReport {
            policy: self.name,
            utilization_pct: totals.utilization_pct(),
            cpu_utilization_pct: totals.share(totals.cpu_used, totals.cpu_powered),
            memory_utilization_pct: totals.share(totals.memory_used, totals.memory_powered),
            gpu_utilization_pct: totals.share(totals.gpu_used, totals.gpu_powered),
            cost: totals.cost,
            vm_hours: totals.vm_minutes as f64 / 60.0,
            deadline_misses,
            unavoidable_misses,
            slo_violations,
            mean_wait_s,
            p50_wait_s: quantile(&waits, 0.5),
            p95_wait_s: quantile(&waits, 0.95),
            p99_wait_s: quantile(&waits, 0.99),
            lost_work_hours: self.lost_work_min as f64 / 60.0,
            completed: verdict.completed,
            failed: verdict.failed_after_retries,
            lost: verdict.lost,
            ran_twice: verdict.ran_twice,
            overcommitted: verdict.overcommitted,
            preemptions: self.preemptions,
            revocations: self.revocations,
            timeline: self.timeline,
            waits_s: waits,
        }
    }
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
    /// VMs taken into use since the last timeline point, and how many the
    /// demand forecast expected.
    taken: usize,
    expected: f64,
}

impl Totals {
    fn add_minute(&mut self, loads: &VmLoads, world: &FleetWorld, power: &[Power]) {
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
            let load = loads.get(index);
            if load.present {
                now[0].0 += load.cpu_used as f64;
                now[1].0 += load.memory_used as f64;
                now[2].0 += f64::from(load.gpus_full);
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

    fn add_demand(&mut self, taken: usize, expected: f64) {
        self.taken += taken;
        self.expected += expected;
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

    /// The timeline's point now; the demand counts start again.
    fn point(&mut self, minute: u64) -> TimelinePoint {
        let now: f64 = self.now.iter().map(|&(u, p)| self.share(u, p)).sum::<f64>() / 3.0;
        TimelinePoint {
            hour: minute as f64 / 60.0,
            powered_vms: self.powered_now,
            utilization_pct: now,
            cost: self.cost,
            vms_taken_into_use: std::mem::take(&mut self.taken),
            forecast_vms_taken_into_use: std::mem::take(&mut self.expected),
        }
    }
}
