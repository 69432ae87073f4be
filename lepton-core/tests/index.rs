//! The cluster's index searches (`FeasibleNodes::first_fit`,
//! `tightest_fit`, `loosest_fit`, `iter`) give exactly what a scan over
//! every node with the stage's slow check gives, with and without a
//! policy's filter, through random sequences of node additions
//! (including ones that change the largest node), removals, state changes,
//! reservations and releases; and every node lists exactly the tasks it
//! holds. The free-key order is brought up to date when read, so a search
//! from inside a filter and searches from several threads must see it
//! current and not deadlock.

use lepton_core::cluster::{ClusterNode, NodeFilter};
use lepton_core::model::{GpuModel, NodeState};
use lepton_core::{
    ClusterState, GpuRequest, Gpus, Misfit, NodeId, NodeSpec, Placement, Resources, TaskId,
    TaskSpec,
};
use proptest::prelude::*;

/// Free CPU / largest CPU + free GPU / largest GPU, as an exact integer.
fn free_key(cluster: &ClusterState, node: &ClusterNode) -> u128 {
    let largest = cluster.largest_node();
    u128::from(node.free().cpu_milli) * u128::from(largest.gpu_milli.max(1))
        + u128::from(node.gpu_free_milli_total()) * u128::from(largest.cpu_milli.max(1))
}

/// A policy's filter: one that refuses every third node id (so that
/// refused nodes sit anywhere in the indexes' orders).
fn every_third(_: &TaskSpec, node: &ClusterNode) -> Result<(), Misfit> {
    if node.id().0 % 3 == 1 {
        Err(Misfit::Policy("every third".into()))
    } else {
        Ok(())
    }
}

type Admit = Option<&'static dyn NodeFilter>;

/// No filter, and [`every_third`].
const FILTERS: [(&str, Admit); 2] = [("no filter", None), ("a filter", Some(&every_third))];

/// Every node the stage's `check` (with its reasons) lets through, in
/// cluster order: the reference the index searches are held to.
fn scan<'a>(
    cluster: &'a ClusterState,
    task: &'a TaskSpec,
    admit: Admit,
) -> impl Iterator<Item = &'a ClusterNode> + 'a {
    let view = cluster.feasible(task, admit);
    cluster
        .nodes()
        .iter()
        .filter(move |n| view.check(n).is_ok())
}

fn scan_first(cluster: &ClusterState, task: &TaskSpec, admit: Admit) -> Option<NodeId> {
    scan(cluster, task, admit).next().map(|n| n.id())
}

fn scan_tightest(cluster: &ClusterState, task: &TaskSpec, admit: Admit) -> Option<NodeId> {
    // min_by_key keeps the first of equal keys: the earliest node.
    scan(cluster, task, admit)
        .min_by_key(|n| free_key(cluster, n))
        .map(|n| n.id())
}

fn scan_loosest(cluster: &ClusterState, task: &TaskSpec, admit: Admit) -> Option<NodeId> {
    let best = scan(cluster, task, admit)
        .map(|n| free_key(cluster, n))
        .max()?;
    scan(cluster, task, admit)
        .find(|n| free_key(cluster, n) == best)
        .map(|n| n.id())
}

#[derive(Debug, Clone)]
enum Op {
    AddNode {
        cpu: u64,
        memory: u64,
        gpus: u32,
        a100: bool,
    },
    RemoveNode(usize),
    SetState(usize, u8),
    Place {
        task: Box<TaskSpec>,
        how: u8,
    },
    Release(usize),
}

fn task_strategy() -> impl Strategy<Value = TaskSpec> {
    (1u64..40, 1u64..64, 0u8..4, 1u32..=1000, any::<bool>()).prop_map(
        |(cpu, memory, gpu_kind, milli, only_a100)| {
            let gpu = match gpu_kind {
                0 => GpuRequest::NONE,
                1 => GpuRequest::shared(milli),
                2 => GpuRequest::whole(1),
                _ => GpuRequest::whole(2),
            };
            let task =
                TaskSpec::new(TaskId(0), Resources::new(cpu * 1_000, memory * 1_024)).with_gpu(gpu);
            if only_a100 {
                task.with_gpu_models([GpuModel::new("A100")])
            } else {
                task
            }
        },
    )
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u64..=128, 1u64..=256, prop::sample::select(vec![0u32, 1, 2, 4, 8]), any::<bool>())
            .prop_map(|(cpu, memory, gpus, a100)| Op::AddNode { cpu, memory, gpus, a100 }),
        1 => any::<usize>().prop_map(Op::RemoveNode),
        1 => (any::<usize>(), 0u8..3).prop_map(|(i, s)| Op::SetState(i, s)),
        8 => (task_strategy(), 0u8..3).prop_map(|(task, how)| Op::Place { task: Box::new(task), how }),
        3 => any::<usize>().prop_map(Op::Release),
    ]
}

fn check_all_agree(cluster: &ClusterState, task: &TaskSpec) {
    for (name, admit) in FILTERS {
        let search = cluster.feasible(task, admit);
        assert_eq!(
            search.iter().map(|n| n.id()).collect::<Vec<_>>(),
            scan(cluster, task, admit)
                .map(|n| n.id())
                .collect::<Vec<_>>(),
            "iter, {name}"
        );
        assert_eq!(
            search.first_fit().map(|n| n.id()),
            scan_first(cluster, task, admit),
            "first fit, {name}"
        );
        assert_eq!(
            search.tightest_fit().map(|n| n.id()),
            scan_tightest(cluster, task, admit),
            "tightest, {name}"
        );
        assert_eq!(
            search.loosest_fit().map(|n| n.id()),
            scan_loosest(cluster, task, admit),
            "loosest, {name}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn indexes_agree_with_a_full_scan(ops in prop::collection::vec(op_strategy(), 1..120)) {
        let mut cluster = ClusterState::new();
        let mut next_node = 0u64;
        let mut next_task = 0u64;
        let mut running: Vec<TaskId> = Vec::new();
        for op in ops {
            match op {
                Op::AddNode { cpu, memory, gpus, a100 } => {
                    let model = if a100 { "A100" } else { "T4" };
                    let gpus = if gpus == 0 { Gpus::none() } else { Gpus::new(model, gpus) };
                    let spec = NodeSpec::new(NodeId(next_node), Resources::new(cpu * 1_000, memory * 1_024))
                        .with_gpus(gpus);
                    next_node += 1;
                    cluster.add_node(spec).unwrap();
                }
                Op::RemoveNode(i) => {
                    if let Some(node) = cluster.nodes().get(i % cluster.nodes().len().max(1)) {
                        let id = node.id();
                        if node.task_count() == 0 {
                            cluster.remove_node(id).unwrap();
                        }
                    }
                }
                Op::SetState(i, state) => {
                    if let Some(node) = cluster.nodes().get(i % cluster.nodes().len().max(1)) {
                        let state = [NodeState::Ready, NodeState::Cordoned, NodeState::Down][state as usize];
                        cluster.set_state(node.id(), state).unwrap();
                    }
                }
                Op::Place { mut task, how } => {
                    next_task += 1;
                    task.id = TaskId(next_task);
                    check_all_agree(&cluster, &task);
                    let search = cluster.feasible(&task, None);
                    let chosen = match how {
                        0 => search.first_fit(),
                        1 => search.tightest_fit(),
                        _ => search.loosest_fit(),
                    };
                    if let Some(node) = chosen.map(|n| n.id()) {
                        cluster.reserve(&task, &Placement::on(node)).unwrap();
                        running.push(task.id);
                    }
                }
                Op::Release(i) => {
                    if !running.is_empty() {
                        let task = running.swap_remove(i % running.len());
                        cluster.release(task).unwrap();
                    }
                }
            }
            check_task_lists(&cluster, &running);
        }
    }
}

/// Every node lists exactly the running tasks allocated to it.
fn check_task_lists(cluster: &ClusterState, running: &[TaskId]) {
    for node in cluster.nodes() {
        let mut listed: Vec<TaskId> = node.tasks().iter().map(|&(t, _)| t).collect();
        listed.sort_unstable();
        let mut expected: Vec<TaskId> = running
            .iter()
            .copied()
            .filter(|&t| cluster.allocation(t).map(|a| a.node) == Some(node.id()))
            .collect();
        expected.sort_unstable();
        assert_eq!(listed, expected, "tasks on {}", node.id());
    }
}

/// 64 nodes of growing size, with tasks placed by first fit and some
/// released: changes the free-key order has not read yet.
fn cluster_with_unread_changes() -> ClusterState {
    let mut cluster = ClusterState::new();
    for id in 0..64 {
        let spec = NodeSpec::new(NodeId(id), Resources::new(8_000 + id * 500, 65_536));
        cluster.add_node(spec).expect("a new node");
    }
    for id in 0..200 {
        let task = TaskSpec::new(TaskId(id), Resources::new(1_000 + id % 7 * 300, 1_024));
        let node = cluster
            .feasible(&task, None)
            .first_fit()
            .expect("room")
            .id();
        cluster.reserve(&task, &Placement::on(node)).expect("fits");
    }
    for id in (0..200).step_by(3) {
        cluster.release(TaskId(id)).expect("placed");
    }
    cluster
}

/// Runs `f` on another thread; fails if it has not returned in 60 s (a
/// deadlock) or panicked.
fn within_a_minute(f: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        done.send(()).expect("the test waits");
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("finished (not deadlocked, not panicked)");
}

#[test]
fn a_filter_may_search_the_cluster_it_filters() {
    within_a_minute(|| {
        let cluster = cluster_with_unread_changes();
        let task = TaskSpec::new(TaskId(1_000), Resources::new(2_000, 1_024));
        let tightest = scan_tightest(&cluster, &task, None);
        // Admits only the node the unfiltered search would choose, which it
        // finds by searching the same cluster from inside the search.
        let only_the_tightest = |task: &TaskSpec, node: &ClusterNode| {
            let inner = cluster.feasible(task, None).tightest_fit().map(|n| n.id());
            if inner == Some(node.id()) {
                Ok(())
            } else {
                Err(Misfit::Policy("not the tightest".into()))
            }
        };
        let search = cluster.feasible(&task, Some(&only_the_tightest));
        assert!(tightest.is_some());
        assert_eq!(search.loosest_fit().map(|n| n.id()), tightest);
    });
}

#[test]
fn threads_searching_one_cluster_all_see_it_up_to_date() {
    within_a_minute(|| {
        for round in 0..20u64 {
            let cluster = cluster_with_unread_changes();
            let tasks: Vec<TaskSpec> = (0..4)
                .map(|i| TaskSpec::new(TaskId(1_000 + i), Resources::new(500 + round * 400, 512)))
                .collect();
            std::thread::scope(|scope| {
                for task in &tasks {
                    let cluster = &cluster;
                    scope.spawn(move || {
                        let search = cluster.feasible(task, None);
                        assert_eq!(
                            search.tightest_fit().map(|n| n.id()),
                            scan_tightest(cluster, task, None)
                        );
                        assert_eq!(
                            search.loosest_fit().map(|n| n.id()),
                            scan_loosest(cluster, task, None)
                        );
                    });
                }
            });
        }
    });
}

#[test]
fn an_empty_cluster_has_no_fit() {
    let cluster = ClusterState::new();
    let task = TaskSpec::new(TaskId(1), Resources::new(1, 1));
    let search = cluster.feasible(&task, None);
    assert!(search.first_fit().is_none());
    assert!(search.tightest_fit().is_none());
    assert!(search.loosest_fit().is_none());
    assert!(search.is_empty());
}
