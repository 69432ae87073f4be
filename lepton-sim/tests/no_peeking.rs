//! No data-center strategy reads what a real scheduler cannot know: two
//! days that differ only in how long their tasks run get the same
//! decisions — the same VMs powered, the same use, the same cost, minute by
//! minute — until the first run ends and a strategy may learn from it.

#![allow(clippy::unwrap_used)]

use lepton_policies::LifetimeAware;
use lepton_sim::scenario::{
    datacenter_strategies, run_datacenter, DatacenterConfig, FleetWorld, DATACENTER_TUNING,
};

/// `world` with every duration set by `duration`, from its own.
fn with_durations(world: &FleetWorld, duration: impl Fn(u64) -> u64) -> FleetWorld {
    let mut world = world.clone();
    for task in &mut world.tasks {
        task.duration_min = duration(task.duration_min);
    }
    world
}

#[test]
fn durations_change_nothing_until_a_run_ends() {
    let config = DatacenterConfig {
        seed: 11,
        vms: 200,
        tasks: 4_000,
        // Failed runs end early: a failure is a run ending too.
        failure_rate: 0.0,
        ..DatacenterConfig::default()
    };
    let world = FleetWorld::generate(&config).unwrap();
    // No run ends before minute 300 in either day.
    let first_end_min = 300;
    let short = with_durations(&world, |d| d + first_end_min);
    let long = with_durations(&world, |d| 3 * d + first_end_min);
    let arrived = world
        .tasks
        .iter()
        .filter(|t| t.arrival_min < first_end_min)
        .count();
    assert!(
        arrived > 100,
        "only {arrived} tasks arrive before the first end"
    );
    let strategies = |_| {
        datacenter_strategies(
            "lifetime",
            Box::new(LifetimeAware::new()),
            &DATACENTER_TUNING,
        )
    };
    let (short_baselines, short_lepton) = strategies(());
    let (long_baselines, long_lepton) = strategies(());
    let pairs = short_baselines
        .into_iter()
        .chain([short_lepton])
        .zip(long_baselines.into_iter().chain([long_lepton]));
    for (a, b) in pairs {
        let name = a.name.clone();
        // The two days run side by side: this test is among the suite's
        // longest.
        let (a, b) = std::thread::scope(|scope| {
            let long = scope.spawn(|| run_datacenter(&long, b).unwrap());
            let short = run_datacenter(&short, a).unwrap();
            (short, long.join().unwrap())
        });
        let before = |report: &lepton_sim::scenario::StrategyReport| {
            report
                .timeline
                .iter()
                .filter(|point| point.hour * 60.0 <= first_end_min as f64)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(before(&a).len(), 31, "{name}");
        assert_eq!(before(&a), before(&b), "{name}");
        // And the days do differ once runs end.
        assert_ne!(a.timeline, b.timeline, "{name}");
    }
}
