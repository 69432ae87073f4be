//! The data center's tuning: every autoscaled strategy gets nine settings
//! of its knobs, run on the tuning seeds 101–103 only (seeds 1–5 are for
//! reporting), and keeps the cheapest setting whose deadline misses a
//! scheduler could avoid stay within 0.05 % of the tasks (30 over the
//! three days), or else the one with the fewest.
//!
//! - kubernetes, kubernetes-binpack: their scale-down — the cluster
//!   autoscaler's rules (`AutoscalerRules`: evicting or not, delay after
//!   add 0 or 10 minutes, unneeded time 2 or 10 minutes) or the simpler
//!   rule of releasing a VM idle for 10 minutes with no pause;
//! - kubernetes-binpack-overprovisioned and Lepton: the spare capacity
//!   (`Spare`: 0.5, 1 or 2 % of each shape, at least 2, 5 or 10 VMs).
//!
//! Run: `cargo run --release --example tune_datacenter`.

use lepton::policies::{BestFit, KubeResources};
use lepton::sim::scenario::{
    run_datacenter, AutoscalerRules, DatacenterConfig, FleetWorld, Spare, Strategy,
};
use lepton::Policy;

/// Avoidable misses allowed over the three tuning days.
const MISSES_ALLOWED: usize = 30;

/// Builds a strategy's policy afresh for each run.
type MakePolicy = Box<dyn Fn() -> Box<dyn Policy>>;

/// One setting of a strategy's knobs.
#[derive(Clone, Copy)]
struct Setting {
    autoscaler: Option<AutoscalerRules>,
    spare: Spare,
}

fn describe(setting: &Setting) -> String {
    let scale_down = match setting.autoscaler {
        None => "idle release".to_owned(),
        Some(r) => format!(
            "autoscaler: unneeded {} min, delay after add {} min, evict {}",
            r.unneeded_min, r.delay_after_add_min, r.evict
        ),
    };
    if setting.spare.share > 0.0 {
        format!(
            "{scale_down}, spare {} % (at least {})",
            setting.spare.share * 100.0,
            setting.spare.min
        )
    } else {
        scale_down
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut scale_downs = vec![Setting {
        autoscaler: None,
        spare: Spare::NONE,
    }];
    for evict in [true, false] {
        for delay_after_add_min in [0, 10] {
            for unneeded_min in [2, 10] {
                let rules = AutoscalerRules {
                    unneeded_min,
                    delay_after_add_min,
                    evict,
                };
                scale_downs.push(Setting {
                    autoscaler: Some(rules),
                    spare: Spare::NONE,
                });
            }
        }
    }
    let mut spares = Vec::new();
    for share in [0.005, 0.01, 0.02] {
        for min in [2, 5, 10] {
            spares.push(Setting {
                autoscaler: None,
                spare: Spare { share, min },
            });
        }
    }
    let kube = |policy: KubeResources| move || Box::new(policy) as Box<dyn Policy>;
    let strategies: [(&str, MakePolicy, &[Setting]); 4] = [
        (
            "kubernetes",
            Box::new(kube(KubeResources::DEFAULT)),
            &scale_downs,
        ),
        (
            "kubernetes-binpack",
            Box::new(kube(KubeResources::BINPACK)),
            &scale_downs,
        ),
        (
            "kubernetes-binpack-overprovisioned",
            Box::new(kube(KubeResources::BINPACK)),
            &spares,
        ),
        (
            "lepton",
            Box::new(|| Box::new(BestFit) as Box<dyn Policy>),
            &spares,
        ),
    ];
    let worlds = [101, 102, 103].map(|seed| {
        FleetWorld::generate(&DatacenterConfig {
            seed,
            ..DatacenterConfig::default()
        })
    });
    println!("seeds 101-103, summed: cost USD, avoidable misses; * the setting kept");
    for (name, policy, settings) in strategies {
        println!("{name}");
        let mut results = Vec::new();
        for setting in settings {
            let (mut cost, mut avoidable) = (0.0, 0);
            for world in &worlds {
                let world = world.as_ref().map_err(|e| e.to_string())?;
                let report = run_datacenter(
                    world,
                    Strategy {
                        autoscaler: setting.autoscaler,
                        ..Strategy::releasing(name, policy(), setting.spare)
                    },
                )?;
                cost += report.cost;
                avoidable += report.deadline_misses - report.unavoidable_misses;
            }
            results.push((cost, avoidable, describe(setting)));
        }
        let admissible = |r: &&(f64, usize, String)| r.1 <= MISSES_ALLOWED;
        let kept = results
            .iter()
            .filter(admissible)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .or_else(|| {
                results
                    .iter()
                    .min_by(|a, b| a.1.cmp(&b.1).then(a.0.total_cmp(&b.0)))
            })
            .map(|r| r.2.clone());
        for (cost, avoidable, setting) in &results {
            let mark = if Some(setting) == kept.as_ref() {
                "*"
            } else {
                " "
            };
            println!("  {mark} {cost:>9.0} {avoidable:>5}  {setting}");
        }
    }
    Ok(())
}
