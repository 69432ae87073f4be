//! The cluster autoscaler's scale-down rules (`AutoscalerRules`) on
//! hand-made data centers of ten 4-CPU VMs: a VM below half requested is
//! drained once its tasks fit elsewhere and it has been unneeded long
//! enough; a VM whose tasks cannot move is never removed; nothing is
//! drained when tasks may not be evicted.

#![allow(clippy::unwrap_used)]

use lepton_core::{NodeId, NodeSpec, Resources, TaskId, TaskSpec};
use lepton_policies::KubeResources;
use lepton_sim::scenario::{
    run_datacenter, AutoscalerRules, DatacenterConfig, FleetWorld, Spare, Strategy, StrategyReport,
};
use lepton_sim::TimedTask;

/// Ten 4-CPU, 16 GiB VMs at 1 USD an hour, and tasks of these CPU
/// requests arriving at minute 0 and running 2 hours. Least-allocated
/// scoring puts the first on VM 0 and the second on VM 1.
fn world(cpus_milli: &[u64]) -> FleetWorld {
    let nodes: Vec<NodeSpec> = (0..10)
        .map(|id| {
            let mut node = NodeSpec::new(NodeId(id), Resources::new(4_000, 16_384));
            node.price_per_hour = 1.0;
            node
        })
        .collect();
    let tasks: Vec<TimedTask> = cpus_milli
        .iter()
        .enumerate()
        .map(|(id, &cpu)| {
            let spec = TaskSpec::new(TaskId(id as u64), Resources::new(cpu, 1_024));
            TimedTask::new(spec, 0, Some(7_200))
        })
        .collect();
    let rules = DatacenterConfig {
        failure_rate: 0.0,
        ..DatacenterConfig::default()
    };
    FleetWorld::from_workload(&nodes, &tasks, &rules).unwrap()
}

fn run(world: &FleetWorld, rules: AutoscalerRules) -> StrategyReport {
    let strategy = Strategy {
        autoscaler: Some(rules),
        ..Strategy::releasing("kubernetes", Box::new(KubeResources::DEFAULT), Spare::NONE)
    };
    run_datacenter(world, strategy).unwrap()
}

/// Powered VMs at `hour` of the run.
fn powered_at(report: &StrategyReport, hour: f64) -> usize {
    let point = report
        .timeline
        .iter()
        .find(|p| (p.hour - hour).abs() < 1e-9)
        .unwrap();
    point.powered_vms
}

#[test]
fn a_vm_below_half_whose_task_fits_elsewhere_is_drained_after_the_unneeded_time() {
    // VM 0 runs 2 CPUs (50 %: needed), VM 1 one CPU (25 %), which fits on
    // VM 0: after 10 minutes unneeded VM 1 is drained, its task restarted
    // on VM 0, and the eight empty VMs are released with it.
    let report = run(&world(&[2_000, 1_000]), AutoscalerRules::DEFAULTS);
    assert_eq!(powered_at(&report, 0.0), 10);
    assert_eq!(powered_at(&report, 1.0 / 6.0), 1, "{:?}", report.timeline);
    assert!((report.lost_work_hours - 10.0 / 60.0).abs() < 1e-9);
    assert_eq!((report.completed, report.lost, report.ran_twice), (2, 0, 0));
    assert_eq!(report.overcommitted, 0);
}

#[test]
fn a_vm_whose_task_cannot_move_is_never_removed() {
    // VM 1's 1.6 CPUs (40 %) do not fit beside VM 0's 3 CPUs: VM 1 stays.
    let report = run(&world(&[3_000, 1_600]), AutoscalerRules::DEFAULTS);
    assert_eq!(powered_at(&report, 1.0 / 6.0), 2, "{:?}", report.timeline);
    assert_eq!(powered_at(&report, 1.5), 2);
    assert_eq!(report.lost_work_hours, 0.0);
    assert_eq!((report.completed, report.lost), (2, 0));
}

#[test]
fn tasks_that_may_not_be_evicted_keep_their_vm() {
    let rules = AutoscalerRules {
        evict: false,
        ..AutoscalerRules::DEFAULTS
    };
    let report = run(&world(&[2_000, 1_000]), rules);
    assert_eq!(powered_at(&report, 1.0 / 6.0), 2, "{:?}", report.timeline);
    assert_eq!(report.lost_work_hours, 0.0);
    assert_eq!(report.completed, 2);
}

#[test]
fn scale_down_waits_the_unneeded_time() {
    let rules = AutoscalerRules {
        unneeded_min: 30,
        ..AutoscalerRules::DEFAULTS
    };
    let report = run(&world(&[2_000, 1_000]), rules);
    assert_eq!(powered_at(&report, 1.0 / 6.0), 10);
    assert_eq!(powered_at(&report, 2.0 / 6.0), 10);
    assert_eq!(powered_at(&report, 0.5), 1, "{:?}", report.timeline);
    assert!((report.lost_work_hours - 0.5).abs() < 1e-9);
}
