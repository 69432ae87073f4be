//! Fair share among tenants: a day of a shared cluster's work from four
//! teams of different habits, admitted by Lepton's tenant queues
//! ([`Admission`]: one queue per team, dominant resource fairness) or by
//! one first-come-first-served queue, and measured by how evenly the teams
//! that wait share the cluster.
//!
//! The cluster is counted as a pool of CPU, memory and GPUs (admission's
//! own view; where a task lands is the scheduler's business and left out
//! here): an admitted task runs at once for its duration. Admission never
//! reads a duration; only the world does, to end the task.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use lepton_core::admission::{Admission, Amounts, QueueSpec};
use lepton_core::rng::SeededRng;
use lepton_core::{GpuRequest, Resources, TaskId, TaskSpec};
use serde::Serialize;

use crate::Error;

/// A team's habits.
struct Team {
    /// Its queue.
    name: &'static str,
    /// Tasks per hour while it is active.
    per_hour: f64,
    /// Each task's cores, memory (GiB) and whole GPUs.
    cpus: u64,
    gib: u64,
    gpus: u32,
    /// Each task's run time, minutes: least and most.
    minutes: (u64, u64),
    /// When it is active, hours of the day: from and to.
    hours: (u64, u64),
}

/// The teams.
const TEAMS: [Team; 4] = [
    // A flood of small CPU jobs in the morning: about 250 cores' worth.
    Team {
        name: "org/batch",
        per_hour: 300.0,
        cpus: 2,
        gib: 4,
        gpus: 0,
        minutes: (10, 40),
        hours: (0, 12),
    },
    // GPU training all day: about 15 GPUs' worth.
    Team {
        name: "org/training",
        per_hour: 3.0,
        cpus: 8,
        gib: 48,
        gpus: 2,
        minutes: (60, 240),
        hours: (0, 24),
    },
    // Memory-heavy analytics all day: about 1.1 TiB's worth.
    Team {
        name: "org/analytics",
        per_hour: 12.0,
        cpus: 4,
        gib: 96,
        gpus: 0,
        minutes: (30, 90),
        hours: (0, 24),
    },
    // Light interactive work in office hours: about 10 cores' worth.
    Team {
        name: "org/interactive",
        per_hour: 60.0,
        cpus: 1,
        gib: 4,
        gpus: 0,
        minutes: (5, 15),
        hours: (8, 18),
    },
];

/// Settings of the experiment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FairnessConfig {
    /// Seeds the arrivals.
    pub seed: u64,
    /// The cluster: CPU, memory and GPUs (milli).
    pub capacity: Amounts,
}

impl Default for FairnessConfig {
    fn default() -> Self {
        FairnessConfig {
            seed: 1,
            capacity: Amounts {
                cpu_milli: 256_000,
                memory_mib: 2_048 * 1_024,
                gpu_milli: 16_000,
            },
        }
    }
}

/// How the tasks are admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Admitting {
    /// One queue for everybody, first come first served.
    Fifo,
    /// A queue per team, dominant resource fairness among them.
    Drf,
}

/// What one way of admitting measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FairnessReport {
    /// `fifo` or `drf`.
    pub admitting: &'static str,
    /// Jain's index of the dominant shares of the teams with work waiting,
    /// averaged over the time two or more teams wait (1 is perfectly
    /// even, 1/n one team holding everything).
    pub jain_waiting: f64,
    /// Per team: its name, its mean wait for admission (minutes) and its
    /// 95th-percentile wait.
    pub waits_min: Vec<(String, f64, f64)>,
    /// CPU held, time-averaged, % of the cluster's.
    pub cpu_pct: f64,
    /// GPU held, time-averaged, %.
    pub gpu_pct: f64,
    /// Tasks that ran.
    pub completed: usize,
}

/// A task of the day: its team and duration (the world's; admission never
/// reads it).
struct Arrival {
    at_s: u64,
    team: usize,
    spec: TaskSpec,
    duration_s: u64,
}

/// The day's arrivals, by time, drawn with `seed`.
fn arrivals(seed: u64) -> Vec<Arrival> {
    let mut rng = SeededRng::new(seed);
    let mut all = Vec::new();
    for (team, habits) in TEAMS.iter().enumerate() {
        let Team {
            per_hour,
            cpus,
            gib,
            gpus,
            minutes: (least, most),
            hours: (from, to),
            ..
        } = *habits;
        // Poisson arrivals: exponential gaps.
        let mut at = (from * 3_600) as f64;
        loop {
            at += -(1.0 - rng.uniform()).ln() * 3_600.0 / per_hour;
            if at >= (to * 3_600) as f64 {
                break;
            }
            let mut spec = TaskSpec::new(TaskId(0), Resources::new(cpus * 1_000, gib * 1_024));
            if gpus > 0 {
                spec = spec.with_gpu(GpuRequest::whole(gpus));
            }
            let minutes = least + rng.below(most - least + 1);
            all.push(Arrival {
                at_s: at as u64,
                team,
                spec,
                duration_s: minutes * 60,
            });
        }
    }
    all.sort_by_key(|a| (a.at_s, a.team));
    for (id, arrival) in all.iter_mut().enumerate() {
        arrival.spec.id = TaskId(id as u64);
    }
    all
}

/// Jain's fairness index of `shares`: (Σx)² / (n Σx²); 1 for none or all
/// zero.
pub fn jain(shares: &[f64]) -> f64 {
    let sum: f64 = shares.iter().sum();
    let squares: f64 = shares.iter().map(|x| x * x).sum();
    if squares == 0.0 {
        1.0
    } else {
        sum * sum / (shares.len() as f64 * squares)
    }
}

/// Runs the day admitted `admitting` and measures it.
///
/// # Errors
/// None expected (the queues and tasks are generated valid); the
/// admission's errors otherwise.
pub fn run_fairness(
    config: &FairnessConfig,
    admitting: Admitting,
) -> Result<FairnessReport, Error> {
    let arrivals = arrivals(config.seed);
    let queue_of = |team: usize| match admitting {
        Admitting::Fifo => "all",
        Admitting::Drf => TEAMS[team].name,
    };
    let mut admission = Admission::new();
    match admitting {
        Admitting::Fifo => admission.add_queue(QueueSpec::new("all"))?,
        Admitting::Drf => {
            for team in &TEAMS {
                admission.add_queue(QueueSpec::new(team.name))?;
            }
        }
    }
    let capacity = config.capacity;
    // Per team: what it holds and how many of its tasks wait.
    let mut held = [Amounts::default(); TEAMS.len()];
    let mut waiting = [0usize; TEAMS.len()];
    let mut waits: Vec<Vec<f64>> = vec![Vec::new(); TEAMS.len()];
    let mut ends: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let (mut next, mut now, mut completed) = (0, 0u64, 0);
    let (mut jain_time, mut jain_sum, mut cpu_sum, mut gpu_sum) = (0.0, 0.0, 0.0, 0.0);
    loop {
        let next_arrival = arrivals.get(next).map(|a| a.at_s);
        let next_end = ends.peek().map(|Reverse((at, _))| *at);
        let Some(at) = [next_arrival, next_end].into_iter().flatten().min() else {
            break;
        };
        // The interval [now, at) as it stood.
        let span = (at - now) as f64;
        let total = held.iter().fold(Amounts::default(), |s, h| s.plus(*h));
        cpu_sum += span * total.cpu_milli as f64 / capacity.cpu_milli.max(1) as f64;
        gpu_sum += span * total.gpu_milli as f64 / capacity.gpu_milli.max(1) as f64;
        let shares: Vec<f64> = (0..TEAMS.len())
            .filter(|&t| waiting[t] > 0)
            .map(|t| held[t].dominant_share(capacity))
            .collect();
        if shares.len() >= 2 {
            jain_time += span;
            jain_sum += span * jain(&shares);
        }
        now = at;
        while let Some(&Reverse((end, id))) = ends.peek() {
            if end > now {
                break;
            }
            ends.pop();
            let arrival = &arrivals[id as usize];
            admission.ended(arrival.spec.id);
            held[arrival.team] = held[arrival.team].minus(Amounts::of(&arrival.spec));
            completed += 1;
        }
        while let Some(arrival) = arrivals.get(next).filter(|a| a.at_s <= now) {
            admission.submit(queue_of(arrival.team), &arrival.spec)?;
            waiting[arrival.team] += 1;
            next += 1;
        }
        for task in admission.admit(capacity) {
            let arrival = &arrivals[task.0 as usize];
            waiting[arrival.team] -= 1;
            held[arrival.team] = held[arrival.team].plus(Amounts::of(&arrival.spec));
            waits[arrival.team].push((now - arrival.at_s) as f64 / 60.0);
            ends.push(Reverse((now + arrival.duration_s, task.0)));
        }
    }
    let waits_min = TEAMS
        .iter()
        .zip(&mut waits)
        .map(|(team, waits)| {
            waits.sort_by(f64::total_cmp);
            let mean = waits.iter().sum::<f64>() / waits.len().max(1) as f64;
            let p95 = waits
                .get((waits.len() as f64 * 0.95) as usize)
                .or(waits.last())
                .copied()
                .unwrap_or(0.0);
            (team.name.to_owned(), mean, p95)
        })
        .collect();
    let day = now.max(1) as f64;
    Ok(FairnessReport {
        admitting: match admitting {
            Admitting::Fifo => "fifo",
            Admitting::Drf => "drf",
        },
        jain_waiting: if jain_time > 0.0 {
            jain_sum / jain_time
        } else {
            1.0
        },
        waits_min,
        cpu_pct: cpu_sum * 100.0 / day,
        gpu_pct: gpu_sum * 100.0 / day,
        completed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jains_index_runs_from_one_over_n_to_one() {
        assert_eq!(jain(&[0.5, 0.5, 0.5]), 1.0);
        assert_eq!(jain(&[1.0, 0.0, 0.0, 0.0]), 0.25);
        assert_eq!(jain(&[]), 1.0);
    }

    #[test]
    fn drf_queues_share_more_evenly_than_one_fifo_queue() {
        let config = FairnessConfig::default();
        let fifo = run_fairness(&config, Admitting::Fifo).unwrap();
        let drf = run_fairness(&config, Admitting::Drf).unwrap();
        assert_eq!(fifo.completed, drf.completed);
        assert!(
            drf.jain_waiting > fifo.jain_waiting + 0.1,
            "{fifo:?} {drf:?}"
        );
        // Nobody waits much longer than under FIFO but the team that
        // floods the cluster; interactive work no longer queues behind it.
        for (fifo, drf) in fifo.waits_min.iter().zip(&drf.waits_min) {
            if fifo.0 != "org/batch" {
                assert!(drf.1 < fifo.1, "{fifo:?} {drf:?}");
            }
        }
        assert!(drf.waits_min[3].1 < 1.0, "{drf:?}");
        assert!(drf.cpu_pct >= fifo.cpu_pct - 1.0, "{fifo:?} {drf:?}");
    }
}
