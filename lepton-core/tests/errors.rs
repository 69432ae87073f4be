//! Bad input: every error variant, with the message a user reads, and proof
//! that a rejected call changes nothing.

use lepton_test_support as support;

use lepton_core::model::{GpuModel, NodeState, Taint, Toleration};
use lepton_core::{
    policy_fn, ClusterState, CoreScheduler, Error, Event, FeasibleNodes, GpuRequest, Gpus, NodeId,
    NodeSpec, Placement, Resources, Run, Scheduler, TaskId, TaskSpec,
};
use support::first_fit;

fn scheduler_with_one_node() -> CoreScheduler {
    let mut scheduler = CoreScheduler::new(first_fit());
    let node = NodeSpec::new(NodeId(1), Resources::new(4_000, 8_192)).with_gpus(Gpus::new("T4", 2));
    scheduler.add_node(&node).expect("a valid node");
    scheduler
}

fn task(id: u64) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(1_000, 1_024))
}

#[test]
fn zero_request_is_rejected_with_the_task_id() {
    let mut scheduler = scheduler_with_one_node();
    let err = scheduler
        .submit(&TaskSpec::new(TaskId(17), Resources::zero()))
        .unwrap_err();
    assert_eq!(err, Error::ZeroRequest { task: TaskId(17) });
    assert_eq!(
        err.to_string(),
        "task t-17 requests nothing: every resource and GPU amount is 0"
    );
    assert_eq!(scheduler.report().tasks.total(), 0);
}

#[test]
fn gpu_share_above_1000_is_rejected() {
    let mut scheduler = scheduler_with_one_node();
    let err = scheduler
        .submit(&task(3).with_gpu(GpuRequest::shared(1_500)))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "task t-3 asks for 1500 milli-GPUs on one GPU; a GPU has 1000"
    );
    assert!(scheduler.task_state(TaskId(3)).is_none());
}

#[test]
fn gpu_count_and_share_must_agree() {
    let mut scheduler = scheduler_with_one_node();
    let no_share = GpuRequest {
        count: 2,
        milli_per_gpu: 0,
    };
    let err = scheduler.submit(&task(4).with_gpu(no_share)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "task t-4 asks for 2 GPUs with 0 milli each; both must be 0 or both positive"
    );
    let no_count = GpuRequest {
        count: 0,
        milli_per_gpu: 300,
    };
    assert!(matches!(
        scheduler.submit(&task(5).with_gpu(no_count)),
        Err(Error::InconsistentGpuRequest {
            count: 0,
            milli_per_gpu: 300,
            ..
        })
    ));
}

#[test]
fn duplicate_task_keeps_the_first() {
    let mut scheduler = scheduler_with_one_node();
    scheduler.submit(&task(1)).unwrap();
    let err = scheduler
        .submit(&TaskSpec::new(TaskId(1), Resources::new(9, 9)))
        .unwrap_err();
    assert_eq!(err.to_string(), "task t-1 was already submitted");
    assert_eq!(
        scheduler.task(TaskId(1)).unwrap().request,
        Resources::new(1_000, 1_024)
    );
    assert_eq!(scheduler.report().tasks.queued, 1);
}

#[test]
fn unknown_task() {
    let mut scheduler = scheduler_with_one_node();
    assert_eq!(
        scheduler
            .complete(Run::new(TaskId(99), 1))
            .unwrap_err()
            .to_string(),
        "task t-99 is unknown"
    );
    assert_eq!(
        scheduler.cancel(TaskId(99)),
        Err(Error::UnknownTask { task: TaskId(99) })
    );
}

#[test]
fn actions_that_do_not_apply_to_the_state_are_refused() {
    let mut scheduler = scheduler_with_one_node();
    scheduler.submit(&task(1)).unwrap();
    assert_eq!(
        scheduler
            .complete(Run::new(TaskId(1), 1))
            .unwrap_err()
            .to_string(),
        "cannot complete task t-1: it is queued"
    );
    let assignments = scheduler.schedule();
    assert_eq!(assignments[0].run(), Run::new(TaskId(1), 1));
    // A report naming another run of the task is stale.
    assert_eq!(
        scheduler
            .complete(Run::new(TaskId(1), 2))
            .unwrap_err()
            .to_string(),
        "run t-1#2 is not the current run of task t-1 (attempt 1); ignored"
    );
    scheduler.complete(Run::new(TaskId(1), 1)).unwrap();
    // A second completion must not free the resources twice.
    assert_eq!(
        scheduler
            .complete(Run::new(TaskId(1), 1))
            .unwrap_err()
            .to_string(),
        "cannot complete task t-1: it is completed"
    );
    assert_eq!(
        scheduler.cancel(TaskId(1)).unwrap_err().to_string(),
        "cannot cancel task t-1: it is completed"
    );
    assert_eq!(
        scheduler
            .fail(Run::new(TaskId(1), 1), "late")
            .unwrap_err()
            .to_string(),
        "cannot fail task t-1: it is completed"
    );
    let node = scheduler.cluster().node(NodeId(1)).unwrap();
    assert_eq!(node.free(), &Resources::new(4_000, 8_192));
}

#[test]
fn node_errors_name_the_node_and_value() {
    let mut cluster = ClusterState::new();
    cluster
        .add_node(NodeSpec::new(NodeId(1), Resources::new(1, 1)))
        .unwrap();
    let cases = [
        (
            NodeSpec::new(NodeId(1), Resources::new(1, 1)),
            "node n-1 was already added",
        ),
        (
            NodeSpec::new(NodeId(2), Resources::zero()),
            "node n-2 offers no capacity: every resource and GPU amount is 0",
        ),
        (
            NodeSpec::new(NodeId(3), Resources::new(1, 1)).with_gpus(Gpus::new("A100", 65)),
            "node n-3 declares 65 GPUs; at most 64 per node are supported",
        ),
        (
            NodeSpec::new(NodeId(4), Resources::new(1, 1)).with_price_per_hour(f64::NAN),
            "node n-4 has price per hour NaN; it must be from 0 to 1e6",
        ),
        (
            NodeSpec::new(NodeId(5), Resources::new(1, 1)).with_price_per_hour(-0.5),
            "node n-5 has price per hour -0.5; it must be from 0 to 1e6",
        ),
        // Finite, but a fleet's cost would overflow: refused, and shown
        // without 309 digits.
        (
            NodeSpec::new(NodeId(6), Resources::new(1, 1)).with_price_per_hour(1e308),
            "node n-6 has price per hour 1e308; it must be from 0 to 1e6",
        ),
    ];
    for (spec, message) in cases {
        assert_eq!(cluster.add_node(spec).unwrap_err().to_string(), message);
    }
    assert_eq!(cluster.nodes().len(), 1);
    assert_eq!(
        cluster
            .set_state(NodeId(9), NodeState::Down)
            .unwrap_err()
            .to_string(),
        "node n-9 is unknown"
    );
}

#[test]
fn a_node_with_tasks_cannot_leave_the_cluster_state() {
    let mut cluster = ClusterState::new();
    cluster
        .add_node(NodeSpec::new(NodeId(1), Resources::new(4_000, 4_096)))
        .unwrap();
    cluster
        .reserve(&task(1), &Placement::on(NodeId(1)))
        .unwrap();
    assert_eq!(
        cluster.remove_node(NodeId(1)).unwrap_err().to_string(),
        "node n-1 still runs 1 tasks"
    );
}

#[test]
fn reservations_that_do_not_fit_say_why_and_change_nothing() {
    let mut cluster = ClusterState::new();
    let node = NodeSpec::new(NodeId(1), Resources::new(4_000, 8_192))
        .with_gpus(Gpus::new("T4", 2))
        .with_label("zone", "a")
        .with_taint(Taint::new("dedicated", "ml"));
    cluster.add_node(node).unwrap();
    let tolerant = |id| task(id).with_toleration(Toleration::key("dedicated"));
    let cases: Vec<(TaskSpec, Placement, &str)> = vec![
        (
            tolerant(1).with_node_selector("zone", "b"),
            Placement::on(NodeId(1)),
            "task t-1 does not fit on node n-1: label zone=b is missing",
        ),
        (
            task(2),
            Placement::on(NodeId(1)),
            "task t-2 does not fit on node n-1: taint dedicated=ml is not tolerated",
        ),
        (
            TaskSpec::new(TaskId(3), Resources::new(5_000, 1))
                .with_toleration(Toleration::exact("dedicated", "ml")),
            Placement::on(NodeId(1)),
            "task t-3 does not fit on node n-1: not enough free cpu_milli",
        ),
        (
            tolerant(4).with_gpu(GpuRequest::whole(3)),
            Placement::on(NodeId(1)),
            "task t-4 does not fit on node n-1: fewer than 3 GPUs with 1000 milli free",
        ),
        (
            tolerant(5)
                .with_gpu(GpuRequest::whole(1))
                .with_gpu_models([GpuModel::new("V100M16")]),
            Placement::on(NodeId(1)),
            "task t-5 does not fit on node n-1: the node's GPU model (T4) is not one the task accepts",
        ),
        (
            tolerant(6).with_gpu(GpuRequest::whole(2)),
            Placement::on_gpus(NodeId(1), [1, 1]),
            "task t-6 does not fit on node n-1: GPU choice [1, 1] is invalid: the same GPU twice",
        ),
        (
            tolerant(7).with_gpu(GpuRequest::whole(1)),
            Placement::on_gpus(NodeId(1), [2]),
            "task t-7 does not fit on node n-1: GPU choice [2] is invalid: no GPU with that index",
        ),
        (
            tolerant(8),
            Placement::on(NodeId(2)),
            "node n-2 is unknown",
        ),
    ];
    for (task, placement, message) in cases {
        assert_eq!(
            cluster.reserve(&task, &placement).unwrap_err().to_string(),
            message
        );
    }
    assert_eq!(cluster.allocation_count(), 0);
    let node = cluster.node(NodeId(1)).unwrap();
    assert_eq!(node.free(), &Resources::new(4_000, 8_192));
    assert_eq!(node.gpu_free_milli(), &[1000, 1000]);
}

#[test]
fn anti_affinity_and_state_misfits() {
    let mut cluster = ClusterState::new();
    cluster
        .add_node(NodeSpec::new(NodeId(1), Resources::new(4_000, 8_192)))
        .unwrap();
    cluster
        .reserve(
            &task(1).with_anti_affinity("web"),
            &Placement::on(NodeId(1)),
        )
        .unwrap();
    let err = cluster
        .reserve(
            &task(2).with_anti_affinity("web"),
            &Placement::on(NodeId(1)),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "task t-2 does not fit on node n-1: anti-affinity group \"web\" already runs there as often as it may"
    );
    cluster.release(TaskId(1)).unwrap();
    cluster
        .reserve(
            &task(2).with_anti_affinity("web"),
            &Placement::on(NodeId(1)),
        )
        .unwrap();

    cluster.set_state(NodeId(1), NodeState::Cordoned).unwrap();
    let err = cluster
        .reserve(&task(3), &Placement::on(NodeId(1)))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "task t-3 does not fit on node n-1: the node is cordoned, not ready"
    );
}

#[test]
fn an_anti_affinity_limit_allows_that_many_per_node() {
    let mut cluster = ClusterState::new();
    cluster
        .add_node(NodeSpec::new(NodeId(1), Resources::new(4_000, 8_192)))
        .unwrap();
    let replica = |id| task(id).with_anti_affinity_limit("web", 2);
    for id in [1, 2] {
        cluster
            .reserve(&replica(id), &Placement::on(NodeId(1)))
            .unwrap();
    }
    let err = cluster
        .reserve(&replica(3), &Placement::on(NodeId(1)))
        .unwrap_err();
    assert!(err.to_string().contains("\"web\""), "{err}");
    // Each task's own limit counts: one allowing three more still fits.
    cluster
        .reserve(
            &task(4).with_anti_affinity_limit("web", 3),
            &Placement::on(NodeId(1)),
        )
        .unwrap();
    cluster.release(TaskId(1)).unwrap();
    cluster.release(TaskId(4)).unwrap();
    cluster
        .reserve(&replica(3), &Placement::on(NodeId(1)))
        .unwrap();
}

#[test]
fn a_zero_or_groupless_anti_affinity_limit_is_refused() {
    let zero = task(7).with_anti_affinity_limit("web", 0);
    assert_eq!(
        zero.validate().unwrap_err(),
        Error::MaxPerNode {
            task: TaskId(7),
            limit: 0
        }
    );
    let mut groupless = task(8);
    groupless.constraints.max_per_node = Some(2);
    let err = groupless.validate().unwrap_err();
    assert!(err.to_string().contains("t-8"), "{err}");
    assert!(err.to_string().contains("max_per_node = 2"), "{err}");
}

#[test]
fn double_reserve_and_double_release_are_refused() {
    let mut cluster = ClusterState::new();
    cluster
        .add_node(NodeSpec::new(NodeId(1), Resources::new(4_000, 8_192)))
        .unwrap();
    cluster
        .reserve(&task(1), &Placement::on(NodeId(1)))
        .unwrap();
    assert_eq!(
        cluster
            .reserve(&task(1), &Placement::on(NodeId(1)))
            .unwrap_err()
            .to_string(),
        "task t-1 already holds resources on node n-1"
    );
    cluster.release(TaskId(1)).unwrap();
    assert_eq!(
        cluster.release(TaskId(1)).unwrap_err().to_string(),
        "task t-1 holds no resources"
    );
    assert_eq!(
        cluster.node(NodeId(1)).unwrap().free(),
        &Resources::new(4_000, 8_192)
    );
}

#[test]
fn a_policy_choosing_a_full_node_is_counted_not_trusted() {
    // This policy always answers node 1, even when the task does not fit.
    let stubborn = policy_fn("stubborn", |_: &FeasibleNodes<'_>| {
        Some(Placement::on(NodeId(1)))
    });
    let mut scheduler = CoreScheduler::new(Box::new(stubborn));
    scheduler
        .add_node(&NodeSpec::new(NodeId(1), Resources::new(1_000, 1_024)))
        .unwrap();
    scheduler.submit(&task(1)).unwrap();
    scheduler.submit(&task(2)).unwrap();
    let assignments = scheduler.schedule();
    assert_eq!(assignments.len(), 1);
    let report = scheduler.report();
    assert_eq!(report.policy_errors, 1);
    assert_eq!(
        report.last_policy_error.as_deref(),
        Some("task t-2 does not fit on node n-1: not enough free cpu_milli")
    );
    assert_eq!(report.tasks.backing_off, 1);
    assert_eq!(
        scheduler.cluster().node(NodeId(1)).unwrap().free(),
        &Resources::zero()
    );
}

#[test]
fn a_down_node_is_neither_cordoned_nor_uncordoned() {
    let mut scheduler = scheduler_with_one_node();
    scheduler.handle(Event::NodeDown(NodeId(1))).unwrap();
    for (event, action) in [
        (Event::NodeCordoned(NodeId(1)), "cordon"),
        (Event::NodeUncordoned(NodeId(1)), "uncordon"),
    ] {
        let err = scheduler.handle(event).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot {action} node n-1: it is down (bring it up first)")
        );
    }
    assert_eq!(
        scheduler.cluster().node(NodeId(1)).unwrap().state(),
        NodeState::Down
    );
    scheduler.handle(Event::NodeUp(NodeId(1))).unwrap();
    scheduler.cordon(NodeId(1)).unwrap();
    assert_eq!(
        scheduler.cluster().node(NodeId(1)).unwrap().state(),
        NodeState::Cordoned
    );
}
