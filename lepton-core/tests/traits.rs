//! An orchestrator's own node and task types, scheduled through the
//! `Resource` and `Task` traits, and policies as trait objects, references
//! and closures.

mod support;

use std::collections::BTreeMap;

use lepton_core::*;
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
    fn id(&self) -> NodeId {
        NodeId(self.uuid)
    }
    fn capacity(&self) -> Resources {
        Resources::new(self.vcpus * 1_000, self.ram_gib * 1_024)
    }
    fn kind(&self) -> NodeKind {
        NodeKind::Vm
    }
    fn labels(&self) -> Labels {
        BTreeMap::from([("zone".to_owned(), self.zone.to_owned())])
    }
    fn price_per_hour(&self) -> f64 {
        self.hourly_cost
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
    fn id(&self) -> TaskId {
        TaskId(self.number)
    }
    fn request(&self) -> Resources {
        Resources::new(self.cores * 1_000, 512)
    }
    fn priority(&self) -> Priority {
        if self.urgent {
            Priority::HIGHEST
        } else {
            Priority::NORMAL
        }
    }
    fn constraints(&self) -> Constraints {
        let mut constraints = Constraints::default();
        if let Some(zone) = self.zone {
            constraints.node_selector.insert("zone".into(), zone.into());
        }
        constraints
    }
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
            borrowed.select(&task, &cluster),
            Some(Placement::on(NodeId(1)))
        );
    }
    let mut boxed: Box<dyn Policy> = Box::new(inner);
    let mut twice_boxed: Box<dyn Policy> = Box::new(boxed);
    assert_eq!(twice_boxed.name(), "first-fit");
    assert_eq!(
        twice_boxed.select(&task, &cluster),
        Some(Placement::on(NodeId(1)))
    );
    boxed = twice_boxed;
    let too_big = TaskSpec::new(TaskId(2), Resources::new(5_000, 1));
    assert_eq!(boxed.select(&too_big, &cluster), None);
}
