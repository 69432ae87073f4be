//! Fair share among tenants (issue 25): a day of four teams' work on a
//! shared pool, admitted by one first-come-first-served queue or by
//! Lepton's tenant queues (`lepton_core::admission`: a queue per team,
//! dominant resource fairness), on seeds 1–5. Prints one line per seed
//! and way of admitting, then the means.
//!
//! Run: `cargo run --release --example fairness`.

use lepton::sim::{run_fairness, Admitting, FairnessConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "seed admitting jain  cpu%  gpu%  mean wait (min): batch training analytics interactive"
    );
    for admitting in [Admitting::Fifo, Admitting::Drf] {
        let mut sums = [0.0; 7];
        for seed in 1..=5 {
            let config = FairnessConfig {
                seed,
                ..FairnessConfig::default()
            };
            let r = run_fairness(&config, admitting)?;
            let waits: Vec<f64> = r.waits_min.iter().map(|(_, mean, _)| *mean).collect();
            println!(
                "{seed:>4} {:<9} {:.3} {:5.1} {:5.1}  {:7.1} {:8.1} {:9.1} {:11.1}",
                r.admitting,
                r.jain_waiting,
                r.cpu_pct,
                r.gpu_pct,
                waits[0],
                waits[1],
                waits[2],
                waits[3]
            );
            let row = [
                r.jain_waiting,
                r.cpu_pct,
                r.gpu_pct,
                waits[0],
                waits[1],
                waits[2],
                waits[3],
            ];
            for (sum, value) in sums.iter_mut().zip(row) {
                *sum += value / 5.0;
            }
        }
        println!(
            "mean {:<9} {:.3} {:5.1} {:5.1}  {:7.1} {:8.1} {:9.1} {:11.1}",
            format!("{admitting:?}").to_lowercase(),
            sums[0],
            sums[1],
            sums[2],
            sums[3],
            sums[4],
            sums[5],
            sums[6]
        );
    }
    Ok(())
}
