//! An orchestrator's own node and task types, scheduled through the
//! `Resource` and `Task` traits, and policies as trait objects, references
//! and closures.

use lepton_test_support as support;

use lepton_core::model::{
    GpuModel, NodeKind, Priority, QosClass, Resource, Taint, Task, TaskKind, Toleration,
};
use lepton_core::scheduler::TaskState;
use lepton_core::{
    ClusterState, CoreScheduler, GpuRequest, Gpus, NodeId, NodeSpec, Placement, Policy, Resources,
    Scheduler, TaskId, TaskSpec,
};
use support::first_fit;

/// An orchestrator's own VM type: only what it already knows.
struct Vm {
    uuid: u64,
    vcpus: u64,
    ram_gib: u64,
    zone: &'static str,
    hourly_cost: f64,
}

impl Resource for Vm {
    fn to_spec(&self) -> NodeSpec {
        NodeSpec::new(
            NodeId(self.uuid),
            Resources::new(self.vcpus * 1_000, self.ram_gib * 1_024),
        )
        .with_kind(NodeKind::Vm)
        .with_label("zone", self.zone)
        .with_price_per_hour(self.hourly_cost)
    }
}

/// An orchestrator's own job type.
struct Job {
    number: u64,
    cores: u64,
    urgent: bool,
    zone: Option<&'static str>,
}

impl Task for Job {
    fn to_spec(&self) -> TaskSpec {
        let priority = if self.urgent {
            Priority::HIGHEST
        } else {
            Priority::NORMAL
        };
        let spec = TaskSpec::new(TaskId(self.number), Resources::new(self.cores * 1_000, 512))
            .with_priority(priority);
        match self.zone {
            Some(zone) => spec.with_node_selector("zone", zone),
            None => spec,
        }
    }
}

/// A type that sets every field of a task and of a node differently from
/// the defaults, to check that each one reaches the scheduler.
struct Everything;

impl Task for Everything {
    fn to_spec(&self) -> TaskSpec {
        TaskSpec::new(TaskId(9), Resources::new(1_000, 256))
            .with_name("every-field")
            .with_gpu(GpuRequest::shared(250))
            .with_priority(Priority(200))
            .with_qos(QosClass::Guaranteed)
            .with_kind(TaskKind::Service)
            .with_timeout_ms(30_000)
            .with_gpu_models([GpuModel::new("T4")])
            .with_node_selector("zone", "a")
            .with_toleration(Toleration::exact("gpu", "yes"))
            .with_anti_affinity("web")
            .with_config("image", "busybox")
    }
}

impl Resource for Everything {
    fn to_spec(&self) -> NodeSpec {
        NodeSpec::new(NodeId(9), Resources::new(8_000, 16_384))
            .with_name("every-field")
            .with_kind(NodeKind::ContainerHost)
            .with_gpus(Gpus::new("T4", 2))
            .with_label("zone", "a")
            .with_taint(Taint::new("gpu", "yes"))
            .with_zone("eu-1")
            .with_price_per_hour(1.25)
            .with_max_task(Resources::new(4_000, 8_192))
    }
}

#[test]
fn every_field_of_an_own_type_reaches_the_scheduler() {
    let mut scheduler = CoreScheduler::new(first_fit());
    scheduler.add_node(&Everything).unwrap();
    scheduler.submit(&Everything).unwrap();
    let node = scheduler.cluster().node(NodeId(9)).unwrap().spec();
    let expected_node = Resource::to_spec(&Everything);
    assert_eq!(node.name.as_deref(), Some("every-field"));
    assert_eq!(node.kind, NodeKind::ContainerHost);
    assert_eq!(node.gpus, Gpus::new("T4", 2));
    assert_eq!(node.labels.get("zone").map(String::as_str), Some("a"));
    assert_eq!(node.taints, vec![Taint::new("gpu", "yes")]);
    assert_eq!(node.zone.as_deref(), Some("eu-1"));
    assert_eq!(node.price_per_hour, 1.25);
    assert_eq!(node.max_task, expected_node.max_task);
    let task = scheduler.task(TaskId(9)).unwrap();
    assert_eq!(task.name.as_deref(), Some("every-field"));
    assert_eq!(task.gpu, GpuRequest::shared(250));
    assert_eq!(task.priority, Priority(200));
    assert_eq!(task.qos, QosClass::Guaranteed);
    assert_eq!(task.kind, TaskKind::Service);
    assert_eq!(task.timeout_ms, Some(30_000));
    assert_eq!(task.constraints, Task::to_spec(&Everything).constraints);
    assert_eq!(task.config, Task::to_spec(&Everything).config);
    // And the constraints are honoured: the node has what the task asks.
    let assignments = scheduler.schedule();
    assert_eq!(assignments.len(), 1, "{:?}", scheduler.report());
    assert_eq!(assignments[0].node, NodeId(9));
}

#[test]
fn own_types_are_scheduled_with_their_constraints_and_priorities() {
    let mut scheduler = CoreScheduler::new(first_fit());
    let vms = [
        Vm {
            uuid: 10,
            vcpus: 2,
            ram_gib: 4,
            zone: "a",
            hourly_cost: 0.1,
        },
        Vm {
            uuid: 20,
            vcpus: 8,
            ram_gib: 32,
            zone: "b",
            hourly_cost: 0.4,
        },
    ];
    for vm in &vms {
        scheduler.add_node(vm).unwrap();
    }
    let node = scheduler.cluster().node(NodeId(20)).unwrap();
    assert_eq!(node.spec().kind, NodeKind::Vm);
    assert_eq!(node.spec().price_per_hour, 0.4);

    // The urgent job is submitted last but decided first, so it gets the
    // only zone-a VM's two cores; the normal zone-a job then fits nowhere.
    scheduler
        .submit(&Job {
            number: 1,
            cores: 2,
            urgent: false,
            zone: Some("a"),
        })
        .unwrap();
    scheduler
        .submit(&Job {
            number: 2,
            cores: 4,
            urgent: false,
            zone: None,
        })
        .unwrap();
    scheduler
        .submit(&Job {
            number: 3,
            cores: 2,
            urgent: true,
            zone: Some("a"),
        })
        .unwrap();
    let assignments = scheduler.schedule();
    let placed: Vec<(u64, u64)> = assignments.iter().map(|a| (a.task.0, a.node.0)).collect();
    assert_eq!(placed, vec![(3, 10), (2, 20)]);
    assert!(matches!(
        scheduler.task_state(TaskId(1)),
        Some(TaskState::BackingOff { attempts: 1, .. })
    ));
}

#[test]
fn policies_work_boxed_borrowed_and_as_closures() {
    let mut inner = first_fit();
    let mut cluster = ClusterState::new();
    cluster
        .add_node(NodeSpec::new(NodeId(1), Resources::new(1_000, 1_024)))
        .unwrap();
    let task = TaskSpec::new(TaskId(1), Resources::new(500, 1));
    {
        // `&mut P` is a policy too, so a caller can lend one it keeps.
        let mut borrowed: Box<dyn Policy + '_> = Box::new(&mut inner);
        assert_eq!(
            borrowed.select(&cluster.feasible(&task, None)),
            Some(Placement::on(NodeId(1)))
        );
    }
    let mut boxed: Box<dyn Policy> = Box::new(inner);
    let mut twice_boxed: Box<dyn Policy> = Box::new(boxed);
    assert_eq!(twice_boxed.name(), "first-fit");
    assert_eq!(
        twice_boxed.select(&cluster.feasible(&task, None)),
        Some(Placement::on(NodeId(1)))
    );
    boxed = twice_boxed;
    let too_big = TaskSpec::new(TaskId(2), Resources::new(5_000, 1));
    assert_eq!(boxed.select(&cluster.feasible(&too_big, None)), None);
}
