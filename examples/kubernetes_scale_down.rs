//! Which scale-down the data center's Kubernetes baselines get: the
//! cluster autoscaler's own rules (`AutoscalerRules`: its defaults, and
//! the settings an operator would tune) against the simpler rule the
//! demo uses (a VM idle for `idle_release_min` is released at once,
//! with no pause after a scale-up), for kubernetes-binpack on the tuning
//! seeds 101–103 only (seeds 1–5 are for reporting). Prints the cost and
//! the deadline misses a scheduler could avoid, summed over the seeds.
//!
//! Run: `cargo run --release --example kubernetes_scale_down`.

use lepton::policies::KubeResources;
use lepton::sim::scenario::{
    run_datacenter, AutoscalerRules, DatacenterConfig, FleetWorld, Strategy,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut settings: Vec<(String, Option<AutoscalerRules>)> =
        vec![("idle release (the demo's)".into(), None)];
    for evict in [true, false] {
        for delay_after_add_min in [0, 10] {
            for unneeded_min in [2, 10] {
                let rules = AutoscalerRules {
                    unneeded_min,
                    delay_after_add_min,
                    evict,
                };
                let name = format!(
                    "autoscaler: unneeded {unneeded_min} min, delay after add \
                     {delay_after_add_min} min, evict {evict}"
                );
                settings.push((name, Some(rules)));
            }
        }
    }
    let worlds = [101, 102, 103].map(|seed| {
        FleetWorld::generate(&DatacenterConfig {
            seed,
            ..DatacenterConfig::default()
        })
    });
    println!("kubernetes-binpack on seeds 101-103: cost USD, avoidable misses, hours of work lost");
    for (name, rules) in settings {
        let (mut cost, mut avoidable, mut lost) = (0.0, 0, 0.0);
        for world in &worlds {
            let world = world.as_ref().map_err(|e| e.to_string())?;
            let report = run_datacenter(
                world,
                Strategy {
                    name: name.clone(),
                    policy: Box::new(KubeResources::BINPACK),
                    release_idle: true,
                    autoscaler: rules,
                    preemption: false,
                    headroom: 0.0,
                    use_spot: false,
                },
            )?;
            cost += report.cost;
            avoidable += report.deadline_misses - report.unavoidable_misses;
            lost += report.lost_work_hours;
        }
        println!("{cost:>9.0} {avoidable:>5} {lost:>7.1}  {name}");
    }
    Ok(())
}
