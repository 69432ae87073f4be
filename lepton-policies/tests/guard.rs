//! No built-in policy ever trips the scheduler's guard: on random clusters
//! (GPU models, zones, labels, taints, cordoned and down nodes, nodes part
//! full) and random tasks (GPU shares and whole GPUs, model pins,
//! selectors, tolerations), every policy's choice passes the feasibility
//! stage it was handed and books without an error; and a scheduler running
//! each policy through cycles, completions and drains counts no policy
//! error.

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use lepton_core::clock::ManualClock;
use lepton_core::model::{GpuModel, NodeState, Taint, Toleration};
use lepton_core::{
    Assignment, ClusterState, CoreScheduler, GpuRequest, Gpus, NodeId, NodeSpec, Placement, Policy,
    Resources, Scheduler, TaskId, TaskSpec,
};
use lepton_policies::{build, policy_names, Error, PolicyContext, RulePolicy};
use proptest::prelude::*;

/// Filters and scorers of every kind, so the `rule` policy's filter is
/// exercised too.
const RULES: &str = r#"
[[filter]]
forbid_label = { maintenance = "true" }
max_cpu_utilization = 0.9
[[score]]
rule = "bestfit"
weight = 2.0
[[score]]
rule = "cheapest"
[[score]]
rule = "gpu_packing"
"#;

/// Every policy the registry lists, built as `lepton policies` would.
fn policies() -> Vec<Box<dyn Policy>> {
    let context = PolicyContext {
        rules: Some(Arc::new(RulePolicy::from_toml_str(RULES).unwrap())),
        ..PolicyContext::default()
    };
    let names = policy_names();
    assert!(names.len() >= 12, "{names:?}");
    names
        .iter()
        .filter_map(|name| match build(name, &context) {
            Ok(policy) => Some(policy),
            // Built without its crate feature (`drl` without
            // `--features drl`): refused by name, and checked in the
            // builds that have it (the workspace's tests enable it).
            Err(Error::FeatureDisabled { name: refused, .. }) if refused == *name => None,
            Err(e) => panic!("{name}: {e}"),
        })
        .collect()
}

#[derive(Debug, Clone)]
struct NodeShape {
    cores: u64,
    gpus: u32,
    a100: bool,
    zone_b: bool,
    maintenance: bool,
    tainted: bool,
    state: u8,
    /// Tasks of (cores, milli of one GPU) placed first, where they fit.
    load: Vec<(u64, u32)>,
}

#[derive(Debug, Clone)]
struct TaskShape {
    cores: u64,
    /// 0: none; 1..=999: a share of one GPU; 1000+k: k whole GPUs.
    gpu: u32,
    pin_a100: bool,
    zone_b: bool,
    tolerates: bool,
}

fn node_shape() -> impl Strategy<Value = NodeShape> {
    (
        (1u64..=32, prop_oneof![Just(0u32), 1u32..=8], any::<bool>()),
        (
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.2),
        ),
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        prop::collection::vec((1u64..=8, prop_oneof![Just(0u32), 100u32..=1000]), 0..4),
    )
        .prop_map(
            |((cores, gpus, a100), (zone_b, maintenance, tainted), state, load)| NodeShape {
                cores,
                gpus,
                a100,
                zone_b,
                maintenance,
                tainted,
                state,
                load,
            },
        )
}

fn task_shape() -> impl Strategy<Value = TaskShape> {
    (
        1u64..=16,
        prop_oneof![Just(0u32), 100u32..=999, 1001u32..=1004],
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(cores, gpu, pin_a100, zone_b, tolerates)| TaskShape {
            cores,
            gpu,
            pin_a100,
            zone_b,
            tolerates,
        })
}

fn task(id: u64, shape: &TaskShape) -> TaskSpec {
    let gpu = match shape.gpu {
        0 => GpuRequest::NONE,
        milli @ 1..=999 => GpuRequest::shared(milli),
        whole => GpuRequest::whole(whole - 1000),
    };
    let mut spec =
        TaskSpec::new(TaskId(id), Resources::new(shape.cores * 1_000, 1_024)).with_gpu(gpu);
    if shape.pin_a100 {
        spec = spec.with_gpu_models([GpuModel::new("A100")]);
    }
    if shape.zone_b {
        spec = spec.with_node_selector("zone", "b");
    }
    if shape.tolerates {
        spec = spec.with_toleration(Toleration::key("dedicated"));
    }
    spec
}

fn cluster(shapes: &[NodeShape]) -> ClusterState {
    let mut cluster = ClusterState::new();
    let mut next_task = 1_000_000;
    for (id, shape) in (0u64..).zip(shapes) {
        let mut spec = NodeSpec::new(NodeId(id), Resources::new(shape.cores * 1_000, 65_536))
            .with_label("zone", if shape.zone_b { "b" } else { "a" })
            .with_label("tier", "production")
            .with_price_per_hour(1.0 + id as f64 % 3.0);
        if shape.gpus > 0 {
            spec = spec.with_gpus(Gpus::new(
                if shape.a100 { "A100" } else { "T4" },
                shape.gpus,
            ));
        }
        if shape.maintenance {
            spec = spec.with_label("maintenance", "true");
        }
        if shape.tainted {
            spec = spec.with_taint(Taint::new("dedicated", "gpu"));
        }
        cluster.add_node(spec).unwrap();
        for &(cores, milli) in &shape.load {
            next_task += 1;
            let gpu = if milli == 0 || shape.gpus == 0 {
                GpuRequest::NONE
            } else {
                GpuRequest::shared(milli.min(1000))
            };
            let load = TaskSpec::new(TaskId(next_task), Resources::new(cores * 1_000, 512))
                .with_gpu(gpu)
                .with_toleration(Toleration::key("dedicated"));
            let _ = cluster.reserve(&load, &Placement::on(NodeId(id)));
        }
        let state = [NodeState::Ready, NodeState::Cordoned, NodeState::Down][shape.state as usize];
        cluster.set_state(NodeId(id), state).unwrap();
    }
    cluster
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// One decision at a time: each policy's choice is a node of the view
    /// it was handed, and the cluster books it.
    #[test]
    fn every_choice_passes_the_stage_and_books(
        nodes in prop::collection::vec(node_shape(), 1..24),
        tasks in prop::collection::vec(task_shape(), 1..12),
    ) {
        let cluster = cluster(&nodes);
        for mut policy in policies() {
            let filter = policy.filter();
            for (id, shape) in (1u64..).zip(&tasks) {
                let task = task(id, shape);
                let view = cluster.feasible(&task, filter.as_deref());
                let Some(placement) = policy.select(&view) else {
                    continue;
                };
                let node = cluster.node(placement.node).unwrap();
                prop_assert_eq!(view.check(node), Ok(()), "{} chose {:?}", policy.name(), placement);
                prop_assert!(view.iter().any(|n| n.id() == placement.node));
                let booked = cluster.clone().reserve(&task, &placement).map(|_| ());
                prop_assert_eq!(booked, Ok(()), "{} chose {:?}", policy.name(), placement);
            }
        }
    }

    /// Through the scheduler: cycles, completions and a drain, and not one
    /// policy error.
    #[test]
    fn the_scheduler_counts_no_policy_error(
        nodes in prop::collection::vec(node_shape(), 1..16),
        tasks in prop::collection::vec(task_shape(), 1..40),
    ) {
        for policy in policies() {
            let name = policy.name().to_owned();
            let mut scheduler = CoreScheduler::builder(policy)
                .clock(Arc::new(ManualClock::new()))
                .build();
            for (id, shape) in (0u64..).zip(&nodes) {
                let mut spec = NodeSpec::new(NodeId(id), Resources::new(shape.cores * 1_000, 65_536))
                    .with_label("zone", if shape.zone_b { "b" } else { "a" });
                if shape.gpus > 0 {
                    spec = spec.with_gpus(Gpus::new(if shape.a100 { "A100" } else { "T4" }, shape.gpus));
                }
                if shape.tainted {
                    spec = spec.with_taint(Taint::new("dedicated", "gpu"));
                }
                scheduler.add_node(&spec).unwrap();
            }
            let mut running = Vec::new();
            for (id, shape) in (1u64..).zip(&tasks) {
                scheduler.submit(&task(id, shape)).unwrap();
                if id % 5 == 0 {
                    running.extend(scheduler.schedule().iter().map(Assignment::run));
                    if let Some(run) = running.pop() {
                        scheduler.complete(run).unwrap();
                    }
                }
            }
            running.extend(scheduler.schedule().iter().map(Assignment::run));
            let _ = scheduler.drain(NodeId(0));
            let report = scheduler.report();
            prop_assert_eq!(report.policy_errors, 0, "{}: {:?}", name, report.last_policy_error);
        }
    }
}
