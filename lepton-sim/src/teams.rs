//! Teams sharing a GPU cluster with gangs: the day of distributed
//! training jobs of [`run_gangs`](crate::run_gangs) (each job's workers a
//! gang; a job of one worker a plain task) split among three teams, each
//! promised a third of 80 % of the cluster. One team floods the morning
//! (`lab/burst`: 40 % of the jobs, arriving in the first six hours); two
//! work all day (`lab/steady-a`, `lab/steady-b`: 30 % each). Shared first
//! come first served, by a priority per team (the burst team's highest),
//! or by Lepton's tenant queues with the guarantees and reclaim
//! ([`Sharing`]); measured as [`run_tenants`](crate::run_tenants) is, a
//! job being the unit of work: guarantee violations, Jain's index of the
//! teams' shares of their guarantees, the jobs' waits to start, GPU use
//! and the runs preempted. Gang members are never preempted; a job of one
//! worker may be, and starts over.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use lepton_core::admission::Amounts;
use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::model::{Gang, Priority};
use lepton_core::rng::SeededRng;
use lepton_core::{CoreScheduler, Policy, Scheduler};

use crate::gangs::{draw_jobs, gpu_node, Job, GPUS_PER_NODE};
use crate::tenants::{shared_scheduler, Member, Tally};
use crate::{Error, GangConfig, Sharing, TenantReport};

/// The teams, in the order of their priorities (highest first).
const TEAMS: [&str; 3] = ["lab/burst", "lab/steady-a", "lab/steady-b"];

/// The share of the cluster the guarantees add up to.
const GUARANTEED: f64 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    Arrival(usize),
    /// A job's run ends, if it is still run `generation` of the job.
    Done(usize, u32),
    Tick,
}

/// Runs the gang day of `config`, its jobs split among three teams,
/// shared `sharing` under `policy`.
///
/// # Errors
/// [`Error::OutOfRange`] for no nodes, no jobs or no hours; the
/// scheduler's errors otherwise.
pub fn run_team_gangs(
    policy: Box<dyn Policy>,
    config: &GangConfig,
    sharing: Sharing,
) -> Result<TenantReport, Error> {
    config.check()?;
    let end = config.hours * 3_600 + 12 * 3_600;
    let mut jobs = draw_jobs(config);
    // The teams: a second stream, so the jobs are those of `run_gangs`
    // (but the burst team's arrival times).
    let mut rng = SeededRng::new(config.seed ^ 0x7EA3_5EED);
    let team: Vec<usize> = jobs
        .iter_mut()
        .map(|job| {
            let draw = rng.below(10);
            if draw < 4 {
                job.arrival = rng.below(6 * 3_600);
                0
            } else {
                1 + (draw % 2) as usize
            }
        })
        .collect();

    let node = gpu_node(0);
    let per_node = Amounts {
        cpu_milli: node.capacity.cpu_milli,
        memory_mib: node.capacity.memory_mib,
        gpu_milli: u64::from(GPUS_PER_NODE) * 1_000,
    };
    let share = |of: u64| (of as f64 * config.nodes as f64 * GUARANTEED / 3.0) as u64;
    let guarantee = Amounts {
        cpu_milli: share(per_node.cpu_milli),
        memory_mib: share(per_node.memory_mib),
        gpu_milli: share(per_node.gpu_milli),
    };
    let guarantees = vec![guarantee; TEAMS.len()];
    let names: Vec<String> = TEAMS.iter().map(|t| (*t).to_owned()).collect();

    let clock = Arc::new(ManualClock::new());
    let mut scheduler = shared_scheduler(policy, clock.clone(), sharing, &names, &guarantees)?;
    for id in 0..config.nodes {
        scheduler.add_node(&gpu_node(id))?;
    }

    // One member per job, for the tally: it "runs" while every worker does.
    let mut members: Vec<Member> = jobs
        .iter()
        .zip(&team)
        .map(|(job, &queue)| Member {
            queue,
            amounts: job.workers.iter().fold(Amounts::default(), |sum, &w| {
                sum.plus(Amounts::of(&job.worker(w)))
            }),
            arrives: job.arrival,
            leaves: end,
            run: None,
            started: None,
            carried: false,
        })
        .collect();
    let mut owner: HashMap<_, usize> = HashMap::new();
    for (j, job) in jobs.iter().enumerate() {
        owner.extend(job.workers.iter().map(|&w| (w, j)));
    }
    let mut generation = vec![0u32; jobs.len()];
    let mut heap = BinaryHeap::new();
    for (j, job) in jobs.iter().enumerate() {
        heap.push(Reverse((job.arrival, Happening::Arrival(j))));
    }
    for t in (0..end).step_by(60) {
        heap.push(Reverse((t, Happening::Tick)));
    }
    let mut tally = Tally::new(TEAMS.len());
    let (mut last, mut preempted) = (0, 0);
    while let Some(Reverse((now, happening))) = heap.pop() {
        if now > end {
            break;
        }
        tally.span(&members, &guarantees, last, now - last);
        last = now;
        clock.set(Timestamp(now * 1_000_000));
        match happening {
            Happening::Arrival(j) => submit(&mut scheduler, &jobs[j], j, team[j], sharing)?,
            Happening::Done(j, run) if run == generation[j] => {
                for (run, _) in std::mem::take(&mut jobs[j].running).into_values() {
                    scheduler.complete(run)?;
                }
                jobs[j].finished = true;
                members[j].run = None;
                members[j].leaves = now;
            }
            Happening::Done(..) | Happening::Tick => {}
        }
        if heap.peek().is_some_and(|Reverse((t, _))| *t == now) {
            continue;
        }
        for assignment in scheduler.schedule() {
            for evicted in &assignment.evicts {
                let Some(&j) = owner.get(&evicted.task) else {
                    continue;
                };
                preempted += 1;
                jobs[j].running.remove(&evicted.task);
                // Its run is lost: it starts over when it runs again.
                generation[j] += 1;
                members[j].run = None;
            }
            let Some(&j) = owner.get(&assignment.task) else {
                continue;
            };
            let job = &mut jobs[j];
            job.running.insert(assignment.task, (assignment.run(), now));
            if job.running.len() == job.workers.len() {
                members[j].run = Some(assignment.run());
                members[j].started.get_or_insert(now);
                job.started.get_or_insert(now);
                heap.push(Reverse((
                    now + job.duration_s,
                    Happening::Done(j, generation[j]),
                )));
            }
        }
    }
    tally.span(&members, &guarantees, last, end - last);
    let gpus = config.nodes * u64::from(GPUS_PER_NODE);
    Ok(tally.report(sharing, &members, &names, &guarantees, gpus, end, preempted))
}

/// Submits job `j`'s workers: a gang when there are several, in the
/// team's queue or at its priority as `sharing` says.
fn submit(
    scheduler: &mut CoreScheduler,
    job: &Job,
    j: usize,
    team: usize,
    sharing: Sharing,
) -> Result<(), Error> {
    let gang = Gang::new(format!("job-{j}"), job.workers.len() as u32);
    for &worker in &job.workers {
        let mut spec = job.worker(worker);
        if job.workers.len() > 1 {
            spec = spec.with_gang(gang.clone());
        }
        spec = match sharing {
            Sharing::Fifo => spec,
            Sharing::Priority => spec.with_priority(Priority(200 - 20 * team as u8)),
            Sharing::Queues => spec.with_queue(TEAMS[team]),
        };
        scheduler.submit(&spec)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_break_fewer_guarantees_and_share_more_evenly_than_fifo() {
        let config = GangConfig::default();
        let run = |sharing| {
            let policy = lepton_policies::by_name("bestfit").unwrap();
            run_team_gangs(policy, &config, sharing).unwrap()
        };
        let (fifo, queues) = (run(Sharing::Fifo), run(Sharing::Queues));
        assert!(
            queues.violation_hours < fifo.violation_hours,
            "{queues:?} {fifo:?}"
        );
        assert!(
            queues.jain_waiting > fifo.jain_waiting + 0.1,
            "{queues:?} {fifo:?}"
        );
    }
}
