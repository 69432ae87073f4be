//! The data-center simulation's accounting on small days: cost is powered
//! VM-minutes × price, idle VMs are released after the idle time, waiting tasks start VMs that are ready only after the start-up
//! time, warm spare capacity is kept, and every task ends.

#![allow(clippy::unwrap_used)]

use lepton_policies::{BestFit, RoundRobin};
use lepton_sim::scenario::{
    datacenter_tuning, run_datacenter, DatacenterConfig, FleetWorld, Spare, Strategy,
    StrategyReport, DATACENTER_TUNING, VM_SHAPES,
};

fn small() -> DatacenterConfig {
    DatacenterConfig {
        seed: 7,
        vms: 40,
        tasks: 130,
        hours: 4,
        ..DatacenterConfig::default()
    }
}

fn run(world: &FleetWorld, release_idle: bool, spare: Spare) -> StrategyReport {
    let strategy = Strategy {
        name: "test".into(),
        policy: if release_idle {
            Box::new(BestFit)
        } else {
            Box::new(RoundRobin::default())
        },
        release_idle,
        autoscaler: None,
        consolidation: None,
        preemption: false,
        spare,
        spare_forecast: None,
        use_spot: false,
    };
    run_datacenter(world, strategy).unwrap()
}

#[test]
fn always_on_costs_every_vm_for_the_whole_run() {
    let world = FleetWorld::generate(&small()).unwrap();
    let report = run(&world, false, Spare::NONE);
    let minutes = (report.vm_hours * 60.0 / world.fleet.len() as f64).round();
    assert!((report.vm_hours * 60.0 - minutes * 40.0).abs() < 1e-6);
    let hourly: f64 = world
        .fleet
        .iter()
        .map(|(_, shape)| VM_SHAPES[*shape].price_per_hour)
        .sum();
    assert!((report.cost - hourly * minutes / 60.0).abs() < 1e-6);
    assert!(report.timeline.iter().all(|p| p.powered_vms == 40));
    assert_eq!(report.lost, 0);
    assert_eq!(report.completed + report.failed, 130);
}

#[test]
fn idle_vms_are_released_and_waiting_tasks_start_them_again() {
    let world = FleetWorld::generate(&small()).unwrap();
    let always_on = run(&world, false, Spare::NONE);
    let released = run(&world, true, Spare::NONE);
    // Everything is on at minute 0; VMs idle since then are released at
    // minute 10, the idle time.
    assert_eq!(released.timeline[0].powered_vms, 40);
    assert!(released.timeline[1].powered_vms < 40);
    // Later, fewer are powered, and the day costs less.
    let fewest = released
        .timeline
        .iter()
        .map(|p| p.powered_vms)
        .min()
        .unwrap();
    assert!(fewest < 40, "never released a VM");
    assert!(released.cost < always_on.cost);
    // VMs came back: the count rose again at some point.
    let rose = released
        .timeline
        .windows(2)
        .any(|w| w[1].powered_vms > w[0].powered_vms);
    assert!(rose, "never started a VM again");
    // Waiting for VMs to start shows in the waits.
    assert!(
        released.mean_wait_s > always_on.mean_wait_s,
        "{} s vs {} s",
        released.mean_wait_s,
        always_on.mean_wait_s
    );
    assert_eq!(released.lost, 0);
    assert_eq!(released.completed + released.failed, 130);
}

#[test]
fn warm_spare_keeps_vms_of_every_shape_powered() {
    let world = FleetWorld::generate(&small()).unwrap();
    let without = run(&world, true, Spare::NONE);
    let with = run(
        &world,
        true,
        Spare {
            share: 0.01,
            min: 5,
        },
    );
    // At least three per shape stay on (or are starting) once the day quiets.
    let shapes = VM_SHAPES.len();
    assert!(with
        .timeline
        .iter()
        .skip(3)
        .all(|p| p.powered_vms >= 3 * shapes.min(5)));
    assert!(with.cost > without.cost);
    assert!(with.mean_wait_s <= without.mean_wait_s);
}

#[test]
fn bad_settings_are_named() {
    let bad = DatacenterConfig { vms: 5, ..small() };
    let err = FleetWorld::generate(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "vms = 5 is out of range: 10 to 100,000 VMs"
    );
    let bad = DatacenterConfig {
        failure_rate: f64::NAN,
        ..small()
    };
    assert!(FleetWorld::generate(&bad)
        .unwrap_err()
        .to_string()
        .contains("failure_rate = NaN"));
}

#[test]
fn work_lost_to_preemption_is_counted_and_waits_are_ordered() {
    let config = DatacenterConfig {
        vms: 10,
        tasks: 400,
        ..small()
    };
    let world = FleetWorld::generate(&config).unwrap();
    let strategy = |preemption| Strategy {
        name: "test".into(),
        policy: Box::new(BestFit),
        release_idle: false,
        autoscaler: None,
        consolidation: None,
        preemption,
        spare: Spare::NONE,
        spare_forecast: None,
        use_spot: false,
    };
    let calm = run_datacenter(&world, strategy(false)).unwrap();
    assert_eq!((calm.preemptions, calm.lost_work_hours), (0, 0.0));
    let preempting = run_datacenter(&world, strategy(true)).unwrap();
    assert!(preempting.preemptions > 0);
    // Each preempted run had run at least a minute, at most the day.
    let hours = preempting.lost_work_hours;
    assert!(hours >= preempting.preemptions as f64 / 60.0, "{hours} h");
    assert!(
        hours <= preempting.preemptions as f64 * 24.0 * 3.0,
        "{hours} h"
    );
    for report in [&calm, &preempting] {
        assert!(report.p50_wait_s <= report.p95_wait_s);
        assert!(report.p95_wait_s <= report.p99_wait_s);
        assert!(
            report.p99_wait_s > 0.0,
            "an overloaded day makes tasks wait"
        );
    }
}

#[test]
fn the_floor_cover_uses_owned_capacity_first_minute_by_minute() {
    use lepton_core::{NodeId, NodeSpec, Resources, TaskId, TaskSpec};
    use lepton_sim::scenario::{floor_cover_cost, lower_bound_cost};
    use lepton_sim::TimedTask;
    // One owned 4-CPU VM (free) and nine priced ones at 1 USD an hour.
    let nodes: Vec<NodeSpec> = (0..10)
        .map(|id| {
            let mut node = NodeSpec::new(NodeId(id), Resources::new(4_000, 16_384));
            node.price_per_hour = if id == 0 { 0.0 } else { 1.0 };
            node
        })
        .collect();
    // Two 4-CPU tasks for the first hour (one fits the owned VM, the other
    // needs a priced one), then a 2-CPU task the owned VM holds alone.
    let task = |id: u64, cpu: u64, arrival_s: u64, duration_s: u64| {
        let spec = TaskSpec::new(TaskId(id), Resources::new(cpu, 1_024));
        TimedTask::new(spec, arrival_s, Some(duration_s))
    };
    let tasks = [
        task(0, 4_000, 0, 3_600),
        task(1, 4_000, 0, 3_600),
        task(2, 2_000, 7_200, 1_800),
    ];
    let rules = DatacenterConfig {
        failure_rate: 0.0,
        ..DatacenterConfig::default()
    };
    let world = FleetWorld::from_workload(&nodes, &tasks, &rules).unwrap();
    let cover = floor_cover_cost(&world);
    assert!((cover - 1.0).abs() < 1e-9, "{cover}");
    // Counting owned capacity as unlimited, the other bound says nothing.
    assert_eq!(lower_bound_cost(&world), 0.0);
}

#[test]
fn each_size_takes_the_tuning_of_the_nearest_size_tuned() {
    assert_eq!(datacenter_tuning(1_000), DATACENTER_TUNING);
    // 100 VMs keep no spare by forecast; 10,000 take 3,000's.
    for (vms, forecast) in [
        (60, None),
        (150, None),
        (200, Some(0.5)),
        (10_000, Some(1.0)),
    ] {
        let tuning = datacenter_tuning(vms);
        assert_eq!(tuning.lepton_spare_forecast, forecast, "{vms} VMs");
        // The baselines keep their 1,000-VM setting.
        assert_eq!(
            tuning.karpenter_overprovisioned,
            DATACENTER_TUNING.karpenter_overprovisioned
        );
        assert_eq!(tuning.overprovisioned, DATACENTER_TUNING.overprovisioned);
    }
}

#[test]
fn the_timeline_counts_vms_taken_into_use_and_the_forecast_follows_them() {
    let world = FleetWorld::generate(&DatacenterConfig {
        seed: 3,
        vms: 100,
        tasks: 2_000,
        ..DatacenterConfig::default()
    })
    .unwrap();
    let report = run(&world, true, Spare::NONE);
    let taken: usize = report.timeline.iter().map(|p| p.vms_taken_into_use).sum();
    let expected: f64 = report
        .timeline
        .iter()
        .map(|p| p.forecast_vms_taken_into_use)
        .sum();
    // VMs are released and taken into use again through the day; the
    // forecast, learned from the minutes before each, follows them.
    assert!(taken > world.fleet.len() / 2, "{taken}");
    let ratio = expected / taken as f64;
    assert!(
        (0.8..1.25).contains(&ratio),
        "forecast {expected} for {taken}"
    );
}
