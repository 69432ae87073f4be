//! The scheduler's invariants, recomputed from scratch: shared by the
//! property test, the recovery scenarios and the `scheduler_events` fuzz
//! target, so that all of them check the same thing.

use std::collections::{BTreeMap, HashMap};

use lepton_core::model::{NodeState, GPU_MILLI_PER_GPU};
use lepton_core::scheduler::{TaskCounts, TaskState};
use lepton_core::{CoreScheduler, GpuRequest, NodeId, NodeSpec, Resources, Scheduler, TaskId};

/// What the running tasks hold on one node.
#[derive(Debug)]
struct Used {
    cpu_milli: u64,
    memory_mib: u64,
    /// Milli-GPUs held on each GPU, by index.
    gpu_milli: Vec<u32>,
    tasks: u32,
    /// GPU tasks per `(count, milli_per_gpu)` request.
    gpu_requests: BTreeMap<(u32, u32), u32>,
}

impl Used {
    fn new(node: &NodeSpec) -> Self {
        Used {
            cpu_milli: 0,
            memory_mib: 0,
            gpu_milli: vec![0; node.gpus.count as usize],
            tasks: 0,
            gpu_requests: BTreeMap::new(),
        }
    }
}

/// Checks everything that must hold between any two operations.
///
/// `submitted` are the ids of every accepted submission.
pub fn check_invariants(scheduler: &CoreScheduler, submitted: &[TaskId]) {
    let cluster = scheduler.cluster();
    let mut counts = TaskCounts::default();
    // Per node, recomputed from the allocations (plain sums, so the check
    // does not lean on the arithmetic it checks).
    let mut used: HashMap<NodeId, Used> = HashMap::new();

    for &id in submitted {
        let state = scheduler
            .task_state(id)
            .unwrap_or_else(|| panic!("{id} unknown"));
        *match state {
            TaskState::Queued => &mut counts.queued,
            TaskState::BackingOff { .. } => &mut counts.backing_off,
            TaskState::Running { .. } => &mut counts.running,
            TaskState::Completed => &mut counts.completed,
            TaskState::Failed { .. } => &mut counts.failed,
            TaskState::Cancelled => &mut counts.cancelled,
            other => panic!("{id} is in a state this checker does not know: {other:?}"),
        } += 1;
        let allocation = cluster.allocation(id);
        let Some(spec) = scheduler.task(id) else {
            // A `Submitter`'s submission no cycle has taken in yet.
            assert!(
                matches!(state, TaskState::Queued | TaskState::Cancelled),
                "{id} has no spec, yet is {state:?}"
            );
            assert_eq!(allocation, None, "{id} has no spec, yet holds resources");
            continue;
        };
        let (node, allocation) = match (state, allocation) {
            (TaskState::Running { node }, Some(allocation)) => (*node, allocation),
            (TaskState::Running { node }, None) => panic!("{id} runs on {node} but holds nothing"),
            (state, Some(allocation)) => panic!("{id} is {state:?} but holds {allocation:?}"),
            (_, None) => continue,
        };
        assert_eq!(allocation.node, node, "{id}: state and allocation disagree");
        assert_eq!(allocation.task, id);
        assert_eq!(
            allocation.resources, spec.request,
            "{id} holds other than it asked"
        );
        assert_eq!(
            allocation.gpus.len(),
            spec.gpu.count as usize,
            "{id}: GPU count"
        );
        assert_eq!(
            allocation.milli_per_gpu, spec.gpu.milli_per_gpu,
            "{id}: GPU share"
        );
        let node_spec = cluster
            .node(node)
            .unwrap_or_else(|| panic!("{id} runs on unknown {node}"))
            .spec();
        let entry = used.entry(node).or_insert_with(|| Used::new(node_spec));
        entry.cpu_milli += allocation.resources.cpu_milli;
        entry.memory_mib += allocation.resources.memory_mib;
        for (i, &gpu) in allocation.gpus.iter().enumerate() {
            assert!(
                !allocation.gpus[..i].contains(&gpu),
                "{id} holds GPU {gpu} twice"
            );
            let slot = entry.gpu_milli.get_mut(gpu as usize);
            *slot.unwrap_or_else(|| panic!("{id} holds GPU {gpu} of {node}, which has none")) +=
                allocation.milli_per_gpu;
        }
        entry.tasks += 1;
        if !spec.gpu.is_none() {
            let key = (spec.gpu.count, spec.gpu.milli_per_gpu);
            *entry.gpu_requests.entry(key).or_default() += 1;
        }
    }
    assert_eq!(
        cluster.allocation_count(),
        counts.running,
        "allocations of no running task"
    );

    for node in cluster.nodes() {
        let spec = node.spec();
        let gpu_count = spec.gpus.count as usize;
        let id = node.id();
        let used = used.remove(&id).unwrap_or_else(|| Used::new(spec));
        let (capacity, free) = (&spec.capacity, node.free());
        assert!(
            used.cpu_milli <= capacity.cpu_milli && used.memory_mib <= capacity.memory_mib,
            "{id} over-committed: {used:?} on {capacity}"
        );
        let expected_free = Resources::new(
            capacity.cpu_milli - used.cpu_milli,
            capacity.memory_mib - used.memory_mib,
        );
        assert_eq!(free, &expected_free, "{id}: free");
        assert_eq!(node.gpu_free_milli().len(), gpu_count, "{id}: GPUs");
        for (i, (&held, &free)) in used.gpu_milli.iter().zip(node.gpu_free_milli()).enumerate() {
            assert!(
                held <= GPU_MILLI_PER_GPU,
                "{id} GPU {i} over-committed: {held} milli"
            );
            assert_eq!(
                held + free,
                GPU_MILLI_PER_GPU,
                "{id} GPU {i}: held {held}, free {free}"
            );
        }
        assert_eq!(node.task_count(), used.tasks, "{id}: task count");
        let mut gpu_requests = node.gpu_requests().to_vec();
        gpu_requests.sort_unstable_by_key(|&(r, _)| (r.count, r.milli_per_gpu));
        let expected: Vec<_> = used
            .gpu_requests
            .into_iter()
            .map(|((count, milli_per_gpu), tasks)| {
                (
                    GpuRequest {
                        count,
                        milli_per_gpu,
                    },
                    tasks,
                )
            })
            .collect();
        assert_eq!(gpu_requests, expected, "{id}: GPU requests");
        if node.state() == NodeState::Down {
            assert_eq!(used.tasks, 0, "{id} is down but runs tasks");
        }
    }
    assert!(
        used.is_empty(),
        "tasks on nodes the cluster does not list: {used:?}"
    );

    let report = scheduler.report();
    assert_eq!(report.tasks, counts, "report counts");
    assert_eq!(report.tasks.total(), submitted.len());
    assert_eq!(
        scheduler.queue_len(),
        report.tasks.queued + scheduler.stale_queue_entries(),
        "queue entries"
    );
    let nodes_in = |state| {
        cluster
            .nodes()
            .iter()
            .filter(|n| n.state() == state)
            .count()
    };
    assert_eq!(report.nodes_ready, nodes_in(NodeState::Ready));
    assert_eq!(report.nodes_cordoned, nodes_in(NodeState::Cordoned));
    assert_eq!(report.nodes_down, nodes_in(NodeState::Down));
}
