//! Gangs on a GPU cluster: a day of distributed training jobs, each a
//! gang of workers that makes progress only once every worker runs,
//! placed by the real scheduler either with gangs (all or nothing: the
//! job's workers are [`Gang`] members) or worker by worker, as a
//! scheduler without gangs places them. Measured: how long jobs wait to
//! start, the GPU-hours that started workers hold idle while their peers
//! wait, the share of the cluster's GPU-hours that did work, and the jobs
//! that never started (workers holding GPUs can wait for each other for
//! ever).
//!
//! The world knows each job's duration, to end it; the scheduler never
//! reads it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::model::Gang;
use lepton_core::rng::SeededRng;
use lepton_core::scheduler::SchedulerConfig;
use lepton_core::{
    CoreScheduler, GpuRequest, Gpus, NodeId, NodeSpec, Policy, Resources, Run, Scheduler, TaskId,
    TaskSpec,
};
use serde::Serialize;

use crate::Error;

/// GPUs per node.
pub(crate) const GPUS_PER_NODE: u32 = 8;

/// A gang run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GangConfig {
    /// Nodes of 8 GPUs.
    pub nodes: u64,
    /// Jobs arriving over `hours`.
    pub jobs: u64,
    /// Hours the jobs arrive over; the run ends 12 hours later.
    pub hours: u64,
    /// Seed of the jobs.
    pub seed: u64,
}

impl Default for GangConfig {
    /// 16 nodes (128 GPUs), 290 jobs over a day (about 110 % of the GPU
    /// hours), seed 1.
    fn default() -> Self {
        GangConfig {
            nodes: 16,
            jobs: 290,
            hours: 24,
            seed: 1,
        }
    }
}

impl GangConfig {
    /// [`Error::OutOfRange`] for no nodes, no jobs or no hours.
    pub(crate) fn check(&self) -> Result<(), Error> {
        for (name, value) in [
            ("nodes", self.nodes),
            ("jobs", self.jobs),
            ("hours", self.hours),
        ] {
            if value == 0 {
                return Err(Error::OutOfRange {
                    name,
                    value: 0.0,
                    expected: "at least 1",
                });
            }
        }
        Ok(())
    }
}

/// How the jobs' workers are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placing {
    /// Each job's workers are one gang: all start together or none does.
    Gangs,
    /// Each worker on its own, as a scheduler without gangs places them.
    Workers,
}

/// What a gang run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GangReport {
    /// `gangs` or `workers`.
    pub placing: &'static str,
    /// Jobs submitted.
    pub jobs: u64,
    /// Jobs whose workers all ran by the end.
    pub started: u64,
    /// Jobs that finished by the end.
    pub finished: u64,
    /// Mean minutes from a job's arrival to all its workers running, over
    /// the jobs that started.
    pub mean_wait_min: f64,
    /// The 95th percentile of the same.
    pub p95_wait_min: f64,
    /// GPU-hours held by workers that ran while their job had not started
    /// (waiting for peers): paid for, doing nothing.
    pub idle_gpu_hours: f64,
    /// GPU-hours of jobs running, as a share of the cluster's GPU-hours
    /// up to the end, percent.
    pub useful_gpu_pct: f64,
}

pub(crate) struct Job {
    pub(crate) arrival: u64,
    pub(crate) workers: Vec<TaskId>,
    pub(crate) gpus_per_worker: u32,
    pub(crate) duration_s: u64,
    /// When each worker started running, by the world's clock.
    pub(crate) running: HashMap<TaskId, (Run, u64)>,
    pub(crate) started: Option<u64>,
    pub(crate) finished: bool,
    /// GPU-seconds its workers held before it started.
    idle_gpu_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    Arrival(usize),
    Done(usize),
    Tick,
}

/// Runs a day of gang-scheduled training jobs under `policy`.
///
/// # Errors
/// [`Error::OutOfRange`] for no nodes, no jobs or no hours.
pub fn run_gangs(
    policy: Box<dyn Policy>,
    config: &GangConfig,
    placing: Placing,
) -> Result<GangReport, Error> {
    config.check()?;
    let clock = Arc::new(ManualClock::new());
    let mut scheduler_config = SchedulerConfig::default();
    scheduler_config.retry_waiting_on_release = true;
    let mut scheduler = CoreScheduler::builder(policy)
        .clock(clock.clone())
        .config(scheduler_config)
        .build();
    for id in 0..config.nodes {
        scheduler.add_node(&gpu_node(id))?;
    }
    let end = config.hours * 3_600 + 12 * 3_600;
    let mut heap = BinaryHeap::new();
    let mut jobs = draw_jobs(config);
    for (j, job) in jobs.iter().enumerate() {
        heap.push(Reverse((job.arrival, Happening::Arrival(j))));
    }
    let mut owner: HashMap<TaskId, usize> = HashMap::new();
    for (j, job) in jobs.iter().enumerate() {
        owner.extend(job.workers.iter().map(|&w| (w, j)));
    }
    for t in (0..end).step_by(60) {
        heap.push(Reverse((t, Happening::Tick)));
    }
    while let Some(Reverse((now, happening))) = heap.pop() {
        if now > end {
            break;
        }
        clock.set(Timestamp(now * 1_000_000));
        match happening {
            Happening::Arrival(j) => {
                let job = &jobs[j];
                let gang = Gang::new(format!("job-{j}"), job.workers.len() as u32);
                for &worker in &job.workers {
                    let mut spec = job.worker(worker);
                    if placing == Placing::Gangs {
                        spec = spec.with_gang(gang.clone());
                    }
                    scheduler.submit(&spec)?;
                }
            }
            Happening::Done(j) => {
                for (run, _) in std::mem::take(&mut jobs[j].running).into_values() {
                    scheduler.complete(run)?;
                }
                jobs[j].finished = true;
            }
            Happening::Tick => {}
        }
        if heap.peek().is_some_and(|Reverse((t, _))| *t == now) {
            continue;
        }
        // Nothing fails here: nothing for `expire_timeouts` to stop.
        for assignment in scheduler.schedule() {
            let Some(&j) = owner.get(&assignment.task) else {
                continue;
            };
            let job = &mut jobs[j];
            job.running.insert(assignment.task, (assignment.run(), now));
            if job.started.is_none() && job.running.len() == job.workers.len() {
                job.started = Some(now);
                let held: u64 = job.running.values().map(|&(_, since)| now - since).sum();
                job.idle_gpu_s = held * u64::from(job.gpus_per_worker);
                heap.push(Reverse((now + job.duration_s, Happening::Done(j))));
            }
        }
    }
    Ok(report(&jobs, config, end, placing))
}

/// A node: 64 cores, 512 GiB, 8 GPUs.
pub(crate) fn gpu_node(id: u64) -> NodeSpec {
    NodeSpec::new(NodeId(id), Resources::new(64_000, 524_288))
        .with_gpus(Gpus::new("A100", GPUS_PER_NODE))
}

impl Job {
    /// Worker `id` of the job: 4 cores, 16 GiB, its GPUs.
    pub(crate) fn worker(&self, id: TaskId) -> TaskSpec {
        TaskSpec::new(id, Resources::new(4_000, 16_384))
            .with_gpu(GpuRequest::whole(self.gpus_per_worker))
    }
}

/// The day's jobs, drawn with the config's seed: 1, 2, 4 or 8 workers (40,
/// 30, 20, 10 %) of 1, 2 or 4 whole GPUs, 30–240 minutes, arriving
/// uniformly over the hours; workers numbered from 0.
pub(crate) fn draw_jobs(config: &GangConfig) -> Vec<Job> {
    let mut rng = SeededRng::new(config.seed ^ 0x6A96_5EED);
    let span = config.hours * 3_600;
    let mut next_task = 0;
    (0..config.jobs)
        .map(|_| {
            let workers = [1, 1, 1, 1, 2, 2, 2, 4, 4, 8][rng.below(10) as usize];
            let gpus_per_worker = [1, 1, 2, 2, 4][rng.below(5) as usize];
            let arrival = rng.below(span);
            let ids = (0..workers).map(|w| TaskId(next_task + w)).collect();
            next_task += workers;
            Job {
                arrival,
                workers: ids,
                gpus_per_worker,
                duration_s: 60 * (30 + rng.below(211)),
                running: HashMap::new(),
                started: None,
                finished: false,
                idle_gpu_s: 0,
            }
        })
        .collect()
}

fn report(jobs: &[Job], config: &GangConfig, end: u64, placing: Placing) -> GangReport {
    let mut waits: Vec<f64> = jobs
        .iter()
        .filter_map(|job| job.started.map(|s| (s - job.arrival) as f64 / 60.0))
        .collect();
    waits.sort_by(f64::total_cmp);
    let mut idle = 0.0;
    let mut useful = 0.0;
    for job in jobs {
        let gpus = f64::from(job.gpus_per_worker);
        idle += job.idle_gpu_s as f64 / 3_600.0;
        if job.started.is_none() {
            // Workers of a job that never started held their GPUs to the end.
            for &(_, since) in job.running.values() {
                idle += gpus * end.saturating_sub(since) as f64 / 3_600.0;
            }
        }
        if let Some(started) = job.started {
            let stop = (started + job.duration_s).min(end);
            useful += gpus * job.workers.len() as f64 * (stop - started) as f64 / 3_600.0;
        }
    }
    let capacity = config.nodes as f64 * f64::from(GPUS_PER_NODE) * end as f64 / 3_600.0;
    let p95 = waits
        .get(((waits.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    GangReport {
        placing: match placing {
            Placing::Gangs => "gangs",
            Placing::Workers => "workers",
        },
        jobs: config.jobs,
        started: waits.len() as u64,
        finished: jobs.iter().filter(|j| j.finished).count() as u64,
        mean_wait_min: waits.iter().sum::<f64>() / waits.len().max(1) as f64,
        p95_wait_min: p95,
        idle_gpu_hours: idle,
        useful_gpu_pct: 100.0 * useful / capacity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(placing: Placing) -> GangReport {
        let config = GangConfig {
            nodes: 4,
            jobs: 80,
            hours: 8,
            seed: 3,
        };
        let policy = lepton_policies::by_name("bestfit").unwrap();
        run_gangs(policy, &config, placing).unwrap()
    }

    #[test]
    fn gangs_hold_no_gpu_idle_and_start_jobs_sooner_than_workers_alone() {
        let (gangs, workers) = (run(Placing::Gangs), run(Placing::Workers));
        assert_eq!(gangs.idle_gpu_hours, 0.0, "{gangs:?}");
        assert!(workers.idle_gpu_hours > 10.0, "{workers:?}");
        assert!(
            gangs.mean_wait_min < workers.mean_wait_min,
            "{gangs:?} {workers:?}"
        );
        assert!(gangs.started >= workers.started, "{gangs:?} {workers:?}");
    }

    #[test]
    fn no_nodes_or_jobs_is_refused_by_name() {
        let policy = lepton_policies::by_name("bestfit").unwrap();
        let config = GangConfig {
            jobs: 0,
            ..GangConfig::default()
        };
        let err = run_gangs(policy, &config, Placing::Gangs).unwrap_err();
        assert!(err.to_string().contains("jobs"), "{err}");
    }
}
