//! Fair share among tenants (issue 25): a day of four teams' work on a
//! shared pool, admitted by one first-come-first-served queue or by
//! Lepton's tenant queues (`lepton_core::admission`: a queue per team,
//! dominant resource fairness), on seeds 1–5. Prints one line per seed
//! and way of admitting, then the means. Then gangs: a day of distributed
//! training jobs on 128 GPUs, placed as gangs or worker by worker
//! (`lepton::sim::run_gangs`, best fit), seeds 1–5.
//!
//! Run: `cargo run --release --example fairness`.

use lepton::policies::by_name;
use lepton::sim::{run_fairness, run_gangs, Admitting, FairnessConfig, GangConfig, Placing};

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
    Ok(())
}
