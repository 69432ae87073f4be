//! Fair share among tenants (issue 25): a day of four teams' work on a
//! shared pool, admitted by one first-come-first-served queue or by
//! Lepton's tenant queues (`lepton_core::admission`: a queue per team,
//! dominant resource fairness), on seeds 1–5. Prints one line per seed
//! and way of admitting, then the means. Then gangs: a day of distributed
//! training jobs on 128 GPUs, placed as gangs or worker by worker
//! (`lepton::sim::run_gangs`, best fit), seeds 1–5. Last, guarantees:
//! the DLRM trace's services as the tenants of four queues, shared first
//! come first served, by a priority per tenant, or by Lepton's queues
//! with guarantees and reclaim (`lepton::sim::run_tenants`); and the gang
//! day split among three teams with guarantees, shared those three ways
//! (`lepton::sim::run_team_gangs`), on 128 and 64 GPUs.
//!
//! Run: `cargo run --release --example fairness`.

use lepton::policies::by_name;
use lepton::sim::{
    dlrm_trace_path, read_dlrm, run_fairness, run_gangs, run_team_gangs, run_tenants, Admitting,
    FairnessConfig, GangConfig, Placing, Sharing, TenantConfig, TenantReport,
};

/// Prints one line: what it is, how it was admitted, Jain's index, CPU %,
/// GPU % and each team's mean wait.
fn line(what: &str, admitting: &str, figures: &[f64; 7]) {
    let [jain, cpu, gpu, waits @ ..] = figures;
    let waits: Vec<String> = waits.iter().map(|w| format!("{w:9.1}")).collect();
    println!(
        "{what:>4} {admitting:<5} {jain:.3} {cpu:5.1} {gpu:5.1} {}",
        waits.join(" ")
    );
}

/// Each queue's GPUs promised, violation hours and mean wait, in a row.
fn per_queue(report: &TenantReport) -> String {
    let queues: Vec<String> = report
        .queues
        .iter()
        .map(|(name, gpus, hours, wait)| format!("{name} {gpus} {hours:.1} {wait:.0}"))
        .collect();
    queues.join(" | ")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "seed admit jain  cpu%  gpu%  mean wait (min): batch, training, analytics, interactive"
    );
    for admitting in [Admitting::Fifo, Admitting::Drf] {
        let mut means = [0.0; 7];
        let mut name = "";
        for seed in 1..=5 {
            let config = FairnessConfig {
                seed,
                ..FairnessConfig::default()
            };
            let r = run_fairness(&config, admitting)?;
            name = r.admitting;
            let mut figures = [r.jain_waiting, r.cpu_pct, r.gpu_pct, 0.0, 0.0, 0.0, 0.0];
            for (slot, (_, mean, _)) in figures[3..].iter_mut().zip(&r.waits_min) {
                *slot = *mean;
            }
            line(&seed.to_string(), name, &figures);
            for (mean, value) in means.iter_mut().zip(figures) {
                *mean += value / 5.0;
            }
        }
        line("mean", name, &means);
    }
    println!();
    println!("seed placing started/jobs finished wait(min) p95(min) idle GPU-h useful GPU%");
    for placing in [Placing::Workers, Placing::Gangs] {
        for seed in 1..=5 {
            let config = GangConfig {
                seed,
                ..GangConfig::default()
            };
            let r = run_gangs(by_name("bestfit")?, &config, placing)?;
            println!(
                "{seed:>4} {:<7} {:>7}/{:<4} {:>8} {:>9.1} {:>8.1} {:>10.1} {:>10.1}",
                r.placing,
                r.started,
                r.jobs,
                r.finished,
                r.mean_wait_min,
                r.p95_wait_min,
                r.idle_gpu_hours,
                r.useful_gpu_pct
            );
        }
    }
    println!();
    tenants()?;
    println!();
    team_gangs()
}

/// The gang day split among three teams with guarantees, on 128 and on
/// 64 GPUs (half the jobs), seeds 1–5, with the means.
fn team_gangs() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "GPUs seed sharing violation-h jain  p95(min) gpu% preempted  per team: GPUs promised, violation-h, mean wait (min)"
    );
    for (nodes, jobs) in [(16, 290), (8, 145)] {
        for sharing in [Sharing::Fifo, Sharing::Priority, Sharing::Queues] {
            let mut means = [0.0; 5];
            for seed in 1..=5 {
                let config = GangConfig {
                    nodes,
                    jobs,
                    seed,
                    ..GangConfig::default()
                };
                let r = run_team_gangs(by_name("bestfit")?, &config, sharing)?;
                let figures = [
                    r.violation_hours,
                    r.jain_waiting,
                    r.p95_wait_min,
                    r.gpu_pct,
                    r.preempted as f64,
                ];
                for (mean, value) in means.iter_mut().zip(figures) {
                    *mean += value / 5.0;
                }
                println!(
                    "{:>4} {seed:>4} {:<8} {:>11.1} {:.3} {:>8.0} {:>4.1} {:>9}  {}",
                    r.gpus,
                    r.sharing,
                    figures[0],
                    figures[1],
                    figures[2],
                    figures[3],
                    r.preempted,
                    per_queue(&r)
                );
            }
            let [violation, jain, p95, gpu, preempted] = means;
            println!(
                "{:>4} mean {:<8} {violation:>11.1} {jain:.3} {p95:>8.0} {gpu:>4.1} {preempted:>9.1}",
                nodes * 8,
                format!("{sharing:?}").to_lowercase()
            );
        }
    }
    Ok(())
}
/// The DLRM trace's services as tenants of four queues with guarantees,
/// on a cluster of 80 % and of 100 % of the window's peak.
fn tenants() -> Result<(), Box<dyn std::error::Error>> {
    let instances = read_dlrm(&dlrm_trace_path())?;
    println!(
        "capacity GPUs sharing violation-h jain  p95(min) gpu% preempted never-ran  per queue: GPUs promised, violation-h, mean wait (min)"
    );
    for capacity in [0.8, 1.0] {
        let config = TenantConfig {
            capacity,
            ..TenantConfig::default()
        };
        for sharing in [Sharing::Fifo, Sharing::Priority, Sharing::Queues] {
            let r = run_tenants(&instances, by_name("bestfit")?, &config, sharing)?;
            println!(
                "{capacity:>8} {:>4} {:<8} {:>11.1} {:.3} {:>8.0} {:>4.1} {:>9} {:>9}  {}",
                r.gpus,
                r.sharing,
                r.violation_hours,
                r.jain_waiting,
                r.p95_wait_min,
                r.gpu_pct,
                r.preempted,
                r.never_ran,
                per_queue(&r)
            );
        }
    }
    Ok(())
}
