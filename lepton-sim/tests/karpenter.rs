//! Karpenter-style consolidation (`Consolidation`) on hand-made data
//! centers: a VM whose tasks fit elsewhere is drained whatever its
//! utilization (the cluster autoscaler keeps a VM at half), a VM whose
//! tasks cannot move stays, nothing with tasks is disrupted under
//! do-not-disrupt, a VM is replaced by a cheaper one that holds its tasks,
//! and no task is ever lost.

#![allow(clippy::unwrap_used)]

use lepton_core::{NodeId, NodeSpec, Resources, TaskId, TaskSpec};
use lepton_policies::KubeResources;
use lepton_sim::scenario::{
    run_datacenter, AutoscalerRules, Consolidation, DatacenterConfig, FleetWorld, Spare, Strategy,
    StrategyReport,
};
use lepton_sim::TimedTask;

/// VMs of these (CPUs, USD an hour), and tasks of these CPU requests
/// arriving at minute 0 and running 2 hours.
fn world(vms: &[(u64, f64)], cpus_milli: &[u64]) -> FleetWorld {
    let nodes: Vec<NodeSpec> = vms
        .iter()
        .enumerate()
        .map(|(id, &(cpus, price))| {
            let mut node = NodeSpec::new(NodeId(id as u64), Resources::new(cpus * 1_000, 16_384));
            node.price_per_hour = price;
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

/// Ten 4-CPU VMs at 1 USD an hour.
fn ten_small(cpus_milli: &[u64]) -> FleetWorld {
    world(&[(4, 1.0); 10], cpus_milli)
}

const EVICTING: Consolidation = Consolidation {
    after_min: 1,
    replace: true,
    evict: true,
};

fn consolidating(world: &FleetWorld, rules: Consolidation) -> StrategyReport {
    let strategy = Strategy {
        consolidation: Some(rules),
        ..Strategy::releasing("karpenter", Box::new(KubeResources::DEFAULT), Spare::NONE)
    };
    checked(run_datacenter(world, strategy).unwrap())
}

fn checked(report: StrategyReport) -> StrategyReport {
    let zeros = (report.lost, report.ran_twice, report.overcommitted);
    assert_eq!(zeros, (0, 0, 0), "{report:?}");
    report
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
fn a_vm_whose_tasks_fit_elsewhere_goes_whatever_its_utilization() {
    // Least-allocated scoring puts one task on each of two VMs, both half
    // requested: the autoscaler's threshold (below half) keeps both.
    let world = ten_small(&[2_000, 2_000]);
    let karpenter = consolidating(&world, EVICTING);
    assert_eq!(powered_at(&karpenter, 1.0), 1);
    assert!(karpenter.lost_work_hours > 0.0, "the moved task restarted");
    let autoscaler = Strategy {
        autoscaler: Some(AutoscalerRules::DEFAULTS),
        ..Strategy::releasing("ca", Box::new(KubeResources::DEFAULT), Spare::NONE)
    };
    let autoscaler = checked(run_datacenter(&world, autoscaler).unwrap());
    assert_eq!(powered_at(&autoscaler, 1.0), 2);
    assert!(karpenter.cost < autoscaler.cost);
}

#[test]
fn a_vm_whose_tasks_cannot_move_stays() {
    let report = consolidating(&ten_small(&[3_000, 3_000]), EVICTING);
    assert_eq!(powered_at(&report, 1.0), 2);
    assert_eq!(report.lost_work_hours, 0.0);
    assert_eq!(report.completed, 2);
}

#[test]
fn do_not_disrupt_removes_only_empty_vms() {
    let rules = Consolidation {
        evict: false,
        ..EVICTING
    };
    let report = consolidating(&ten_small(&[2_000, 2_000]), rules);
    // The eight empty VMs go within minutes; the two with a task stay.
    assert_eq!(powered_at(&report, 0.5), 2);
    assert_eq!(powered_at(&report, 1.5), 2);
    assert_eq!(report.lost_work_hours, 0.0);
}

#[test]
fn a_vm_is_replaced_by_a_cheaper_one_that_holds_its_tasks() {
    // Five 8-CPU VMs at 2 USD and five 4-CPU ones at 1 USD; least
    // allocated puts the 3-CPU task on an 8-CPU VM (more of it free).
    let vms = [[(8, 2.0); 5], [(4, 1.0); 5]].concat();
    let world = world(&vms, &[3_000]);
    let replaced = consolidating(&world, EVICTING);
    let deleted = consolidating(
        &world,
        Consolidation {
            replace: false,
            ..EVICTING
        },
    );
    // Replaced: one cheap VM runs the task by the first hour.
    assert_eq!(powered_at(&replaced, 1.0), 1);
    assert!(
        replaced.cost < deleted.cost,
        "{} vs {}",
        replaced.cost,
        deleted.cost
    );
    assert_eq!(replaced.completed, 1);
    // The replacement was ready before the task moved: it restarted once.
    assert!(replaced.lost_work_hours > 0.0 && replaced.lost_work_hours < 0.5);
}
