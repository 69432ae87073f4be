//! A catalogue of bad input, by kind: nodes, tasks, amounts and JSON values
//! (trace rows and workloads: `lepton-sim/tests/bad_inputs.rs`). Each case
//! gets its typed error naming the value at fault, nothing panics, and
//! nothing accepted before is lost.
//!
//! `errors.rs` shows every error variant's full message once; this file is
//! about the inputs that lead there, the values at the edges included.

use lepton_test_support as support;

use lepton_core::model::{
    Dimension, ResourceName, GPU_MILLI_PER_GPU, MAX_GPUS_PER_NODE, MAX_PRICE_PER_HOUR,
};
use lepton_core::{
    ClusterState, CoreScheduler, Error, Event, GpuRequest, Gpus, Misfit, NodeId, NodeSpec,
    Placement, Resources, Scheduler, TaskId, TaskSpec,
};
use support::first_fit;

/// Node 1: 4 cores, 8 GiB and two T4s.
fn node_1() -> NodeSpec {
    NodeSpec::new(NodeId(1), Resources::new(4_000, 8_192)).with_gpus(Gpus::new("T4", 2))
}

/// A call on a scheduler that should be refused.
type Call = fn(&mut CoreScheduler) -> Result<(), Error>;

fn task(id: u64) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(1_000, 1_024))
}

/// A scheduler that has accepted node 1, placed task 1 on half a GPU there
/// and queued task 2 (too big to fit).
fn busy_scheduler() -> CoreScheduler {
    let mut scheduler = CoreScheduler::new(first_fit());
    scheduler.add_node(&node_1()).expect("a valid node");
    scheduler
        .submit(&task(1).with_gpu(GpuRequest::shared(500)))
        .expect("a valid task");
    assert_eq!(scheduler.schedule().len(), 1);
    scheduler
        .submit(&TaskSpec::new(TaskId(2), Resources::new(64_000, 1)))
        .expect("a valid task");
    scheduler
}

/// What a rejected call must leave as it was: every node with its free
/// capacity, the task counts, and the states and specs of tasks 1 and 2.
fn snapshot(scheduler: &CoreScheduler) -> String {
    let tasks = [TaskId(1), TaskId(2)].map(|id| (scheduler.task_state(id), scheduler.task(id)));
    format!(
        "{:?}\n{:?}\n{tasks:?}",
        scheduler.cluster().nodes(),
        scheduler.report().tasks
    )
}

// ---------------------------------------------------------------- nodes

#[test]
fn invalid_nodes_are_refused_naming_the_node_and_value() {
    let spec = |id| NodeSpec::new(NodeId(id), Resources::new(1_000, 1_024));
    let price = |id, price, names| {
        let node = NodeId(id);
        let spec = spec(id).with_price_per_hour(price);
        (spec, Error::InvalidPrice { node, price }, names)
    };
    let cases = [
        (
            NodeSpec::new(NodeId(2), Resources::zero()),
            Error::ZeroCapacity { node: NodeId(2) },
            "n-2 offers no capacity",
        ),
        (
            // A model but no GPU, and an extended resource of 0: still nothing.
            NodeSpec::new(NodeId(3), Resources::zero().with_extended("fpga", 0))
                .with_gpus(Gpus::new("T4", 0)),
            Error::ZeroCapacity { node: NodeId(3) },
            "n-3 offers no capacity",
        ),
        price(4, f64::NAN, "n-4 has price per hour NaN"),
        price(5, f64::INFINITY, "n-5 has price per hour inf"),
        price(6, f64::NEG_INFINITY, "n-6 has price per hour -inf"),
        price(7, -0.01, "n-7 has price per hour -0.01"),
        (
            spec(8).with_gpus(Gpus::new("A100", MAX_GPUS_PER_NODE + 1)),
            Error::TooManyGpus {
                node: NodeId(8),
                count: 65,
                max: 64,
            },
            "n-8 declares 65 GPUs",
        ),
        (
            spec(9).with_gpus(Gpus::new("A100", u32::MAX)),
            Error::TooManyGpus {
                node: NodeId(9),
                count: u32::MAX,
                max: 64,
            },
            "n-9 declares 4294967295 GPUs",
        ),
        (
            // The id of the node already there, with a different shape.
            NodeSpec::new(NodeId(1), Resources::new(1, 1)),
            Error::DuplicateNode { node: NodeId(1) },
            "n-1 was already added",
        ),
    ];
    let mut scheduler = busy_scheduler();
    let before = snapshot(&scheduler);
    // Errors are compared as Debug text: a NaN price is not equal to itself.
    let same = |a: &Error, b: &Error| format!("{a:?}") == format!("{b:?}");
    for (spec, expected, names) in cases {
        let error = scheduler.add_node(&spec).unwrap_err();
        assert!(same(&error, &expected), "{spec:?}: {error:?}");
        assert!(error.to_string().contains(names), "{error}");
        // The spec alone says the same, except for the duplicate id, which
        // only the cluster knows.
        if !matches!(expected, Error::DuplicateNode { .. }) {
            assert!(same(&spec.validate().unwrap_err(), &expected));
        }
        // Through an event too, for a backend that reports nodes.
        let error = scheduler.handle(Event::NodeAdded(spec)).unwrap_err();
        assert!(same(&error, &expected));
    }
    assert_eq!(snapshot(&scheduler), before);
}

#[test]
fn nodes_at_the_limits_are_accepted() {
    let mut scheduler = busy_scheduler();
    let at_limits = [
        NodeSpec::new(NodeId(2), Resources::zero()).with_gpus(Gpus::new("T4", 1)),
        NodeSpec::new(NodeId(3), Resources::zero().with_extended("fpga", 1)),
        NodeSpec::new(NodeId(4), Resources::new(1, 0))
            .with_gpus(Gpus::new("A100", MAX_GPUS_PER_NODE))
            .with_price_per_hour(0.0),
        NodeSpec::new(NodeId(5), Resources::new(1, 0)).with_price_per_hour(MAX_PRICE_PER_HOUR),
    ];
    for spec in at_limits {
        scheduler.add_node(&spec).unwrap();
    }
    assert_eq!(scheduler.cluster().nodes().len(), 5);
}

#[test]
fn unknown_node_ids_are_refused_and_change_nothing() {
    let unknown = NodeId(9);
    let calls: [(&str, Call); 7] = [
        ("remove_node", |s| s.remove_node(NodeId(9))),
        ("cordon", |s| s.cordon(NodeId(9))),
        ("uncordon", |s| s.uncordon(NodeId(9))),
        ("NodeRemoved", |s| s.handle(Event::NodeRemoved(NodeId(9)))),
        ("NodeDown", |s| s.handle(Event::NodeDown(NodeId(9)))),
        ("NodeUp", |s| s.handle(Event::NodeUp(NodeId(9)))),
        ("NodeCordoned", |s| s.handle(Event::NodeCordoned(NodeId(9)))),
    ];
    let mut scheduler = busy_scheduler();
    let before = snapshot(&scheduler);
    for (call, bad) in calls {
        let error = bad(&mut scheduler).unwrap_err();
        assert!(
            matches!(error, Error::UnknownNode { node } if node == unknown),
            "{call}: {error:?}"
        );
        assert!(error.to_string().contains("n-9"), "{call}: {error}");
    }
    assert_eq!(snapshot(&scheduler), before);
    let mut cluster = ClusterState::new();
    cluster.add_node(node_1()).unwrap();
    assert!(matches!(
        cluster.remove_node(unknown),
        Err(Error::UnknownNode { node }) if node == unknown
    ));
}

// ---------------------------------------------------------------- tasks

#[test]
fn invalid_tasks_are_refused_naming_the_task_and_value() {
    let gpu = |count, milli_per_gpu| {
        task(10).with_gpu(GpuRequest {
            count,
            milli_per_gpu,
        })
    };
    let cases = [
        (
            TaskSpec::new(TaskId(10), Resources::zero()),
            Error::ZeroRequest { task: TaskId(10) },
            "t-10 requests nothing",
        ),
        (
            TaskSpec::new(TaskId(10), Resources::zero().with_extended("fpga", 0)),
            Error::ZeroRequest { task: TaskId(10) },
            "t-10 requests nothing",
        ),
        (
            gpu(1, GPU_MILLI_PER_GPU + 1),
            Error::GpuShareTooLarge {
                task: TaskId(10),
                milli: 1001,
            },
            "t-10 asks for 1001 milli-GPUs",
        ),
        (
            gpu(4, 1001),
            Error::GpuShareTooLarge {
                task: TaskId(10),
                milli: 1001,
            },
            "t-10 asks for 1001 milli-GPUs",
        ),
        (
            gpu(1, u32::MAX),
            Error::GpuShareTooLarge {
                task: TaskId(10),
                milli: u32::MAX,
            },
            "4294967295 milli-GPUs",
        ),
        (
            gpu(1, 0),
            Error::InconsistentGpuRequest {
                task: TaskId(10),
                count: 1,
                milli_per_gpu: 0,
            },
            "t-10 asks for 1 GPUs with 0 milli each",
        ),
        (
            gpu(0, 1000),
            Error::InconsistentGpuRequest {
                task: TaskId(10),
                count: 0,
                milli_per_gpu: 1000,
            },
            "t-10 asks for 0 GPUs with 1000 milli each",
        ),
        (
            // Task 1's id, running, and task 2's, queued: the first keeps it.
            TaskSpec::new(TaskId(1), Resources::new(9, 9)),
            Error::DuplicateTask { task: TaskId(1) },
            "t-1 was already submitted",
        ),
        (
            TaskSpec::new(TaskId(2), Resources::new(9, 9)).with_gpu(GpuRequest::whole(1)),
            Error::DuplicateTask { task: TaskId(2) },
            "t-2 was already submitted",
        ),
    ];
    let mut scheduler = busy_scheduler();
    let before = snapshot(&scheduler);
    for (spec, expected, names) in cases {
        let error = scheduler.submit(&spec).unwrap_err();
        assert!(error.to_string().contains(names), "{error}");
        assert_eq!(error, expected, "{spec:?}");
        if !matches!(expected, Error::DuplicateTask { .. }) {
            assert_eq!(spec.validate(), Err(expected), "{spec:?}");
            assert!(scheduler.task(spec.id).is_none());
        }
    }
    assert_eq!(snapshot(&scheduler), before);
}

#[test]
fn a_cancelled_task_keeps_its_id_and_unknown_ids_are_refused() {
    let mut scheduler = busy_scheduler();
    scheduler.cancel(TaskId(2)).unwrap();
    let before = snapshot(&scheduler);
    // A cancelled id is not free again: events about the old task could
    // otherwise be taken for the new one.
    assert!(matches!(
        scheduler.submit(&task(2)),
        Err(Error::DuplicateTask { task: TaskId(2) })
    ));
    assert!(matches!(
        scheduler.cancel(TaskId(2)),
        Err(Error::InvalidTransition {
            task: TaskId(2),
            action: "cancel",
            state: "cancelled"
        })
    ));
    for unknown in [TaskId(99), TaskId(u64::MAX)] {
        let error = scheduler.cancel(unknown).unwrap_err();
        assert!(matches!(error, Error::UnknownTask { task } if task == unknown));
        assert!(error.to_string().contains(&unknown.to_string()), "{error}");
    }
    assert_eq!(snapshot(&scheduler), before);
}

#[test]
fn tasks_at_the_limits_are_accepted() {
    let mut scheduler = busy_scheduler();
    for spec in [
        task(10).with_gpu(GpuRequest::shared(GPU_MILLI_PER_GPU)),
        task(11).with_gpu(GpuRequest::shared(1)),
        TaskSpec::new(TaskId(12), Resources::zero()).with_gpu(GpuRequest::whole(MAX_GPUS_PER_NODE)),
        TaskSpec::new(TaskId(u64::MAX), Resources::new(u64::MAX, u64::MAX)),
    ] {
        scheduler.submit(&spec).unwrap();
    }
    assert_eq!(scheduler.report().tasks.total(), 6);
}

// ---------------------------------------------------------------- amounts

#[test]
fn arithmetic_at_u64_max_names_the_dimension_instead_of_wrapping() {
    let max = u64::MAX;
    let full = Resources::new(max, max)
        .with_network_mbps(max)
        .with_storage_gib(max)
        .with_extended("fpga", max);
    let one_of_each: [(Resources, Dimension); 5] = [
        (Resources::new(1, 0), Dimension::CpuMilli),
        (Resources::new(0, 1), Dimension::MemoryMib),
        (
            Resources::zero().with_network_mbps(1),
            Dimension::NetworkMbps,
        ),
        (Resources::zero().with_storage_gib(1), Dimension::StorageGib),
        (
            Resources::zero().with_extended("fpga", 1),
            Dimension::Extended(ResourceName::new("fpga")),
        ),
    ];
    for (one, dimension) in one_of_each {
        assert_eq!(full.checked_add(&one), Err(dimension.clone()));
        assert_eq!(Resources::zero().checked_sub(&one), Err(dimension));
    }
    assert_eq!(full.checked_sub(&full), Ok(Resources::zero()));
    let most = GpuRequest {
        count: u32::MAX,
        milli_per_gpu: u32::MAX,
    };
    assert_eq!(
        most.total_milli(),
        u64::from(u32::MAX) * u64::from(u32::MAX)
    );
}

#[test]
fn a_cluster_of_u64_max_nodes_schedules_and_reports_without_overflow() {
    let mut scheduler = CoreScheduler::new(first_fit());
    let huge = Resources::new(u64::MAX, u64::MAX).with_network_mbps(u64::MAX);
    for id in 1..=3 {
        scheduler
            .add_node(&NodeSpec::new(NodeId(id), huge.clone()))
            .unwrap();
    }
    for id in 1..=4 {
        scheduler
            .submit(&TaskSpec::new(TaskId(id), huge.clone()))
            .unwrap();
    }
    assert_eq!(scheduler.schedule().len(), 3);
    let report = scheduler.report();
    assert_eq!(report.tasks.running, 3);
    assert_eq!(report.utilization.cpu, 1.0);
    // The fourth found no room and waits: refused, not wrapped into a node.
    assert_eq!(report.tasks.backing_off, 1);
    assert!(matches!(
        scheduler.cluster().clone().reserve(
            &TaskSpec::new(TaskId(9), Resources::new(1, 0)),
            &Placement::on(NodeId(1))
        ),
        Err(Error::DoesNotFit {
            misfit: Misfit::Insufficient(Dimension::CpuMilli),
            ..
        })
    ));
}

// ---------------------------------------------------------------- JSON values

/// Asserts `json` does not read as a `T`, with a message holding `names`.
fn refused<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str, names: &str) {
    match serde_json::from_str::<T>(json) {
        Ok(value) => panic!("{json} read as {value:?}"),
        Err(error) => assert!(error.to_string().contains(names), "{json}: {error}"),
    }
}

#[test]
fn out_of_range_json_values_are_serde_errors() {
    let resources = [
        (r#"{"cpu_milli": -1}"#, "integer `-1`"),
        // Past u64, serde_json reads a float and names it rounded.
        (
            r#"{"memory_mib": 18446744073709551616}"#,
            "`1.8446744073709552e+19`",
        ),
        (r#"{"cpu_milli": NaN}"#, "expected value"),
        (r#"{"cpu_milli": 1e400}"#, "number out of range"),
        (r#"{"cpu_milli": 1.5}"#, "floating point `1.5`"),
        (r#"{"cpu_milli": "1000"}"#, "string \"1000\""),
        (r#"{"extended": {"fpga": -2}}"#, "integer `-2`"),
        // serde's maps keep the last of two equal keys; these name it.
        (
            r#"{"extended": {"fpga": 1, "fpga": 8}}"#,
            "duplicate key `fpga`",
        ),
        (
            r#"{"cpu_milli": 1, "cpu_milli": 2}"#,
            "duplicate field `cpu_milli`",
        ),
        (r#"{"cpu_milli": 1"#, "EOF while parsing"),
        ("", "EOF while parsing"),
    ];
    for (json, names) in resources {
        refused::<Resources>(json, names);
    }
    refused::<GpuRequest>(r#"{"count": 1, "milli_per_gpu": 4294967296}"#, "4294967296");
    refused::<GpuRequest>(r#"{"count": -1, "milli_per_gpu": 500}"#, "integer `-1`");
    let node = |field: &str| format!(r#"{{"id": 1, "capacity": {{"cpu_milli": 1}}, {field}}}"#);
    let nodes = [
        (node(r#""price_per_hour": NaN"#), "expected value"),
        (node(r#""price_per_hour": "NaN""#), "string \"NaN\""),
        (node(r#""price_per_hour": 1e400"#), "number out of range"),
        (
            node(r#""gpus": {"model": "T4", "count": -1}"#),
            "integer `-1`",
        ),
        (
            node(r#""labels": {"zone": "a", "zone": "b"}"#),
            "duplicate key `zone`",
        ),
        (node(r#""cpu_milli": 1"#), "unknown field `cpu_milli`"),
        (
            r#"{"id": -1, "capacity": {"cpu_milli": 1}}"#.to_owned(),
            "integer `-1`",
        ),
    ];
    for (json, names) in &nodes {
        refused::<NodeSpec>(json, names);
    }
    // JSON cannot spell a negative price the type refuses, so validation does.
    let negative: NodeSpec = serde_json::from_str(&node(r#""price_per_hour": -1e-9"#)).unwrap();
    assert!(
        matches!(negative.validate(), Err(Error::InvalidPrice { price, .. }) if price == -1e-9)
    );
    refused::<TaskSpec>(
        r#"{"id": 1, "request": {"cpu_milli": 1}, "priority": 256}"#,
        "256",
    );
    refused::<TaskSpec>(r#"{"id": 1, "request": {"cpu_milli": -1}}"#, "integer `-1`");
}
