//! Property and scenario tests for [`CoreScheduler`].
//!
//! The property test drives the scheduler with random operations and, after
//! every one, recomputes the cluster's accounting from the tasks' allocations
//! and each task's state from a small model of what the operation must do.

use lepton_test_support as support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::cluster::{Allocation, ClusterNode};
use lepton_core::model::{NodeState, Priority, GPU_MILLI_PER_GPU};
use lepton_core::scheduler::{RetryPolicy, SchedulerConfig, Submitter, TaskCounts, TaskState};
use lepton_core::{
    policy_fn, Assignment, CoreScheduler, Error, Event, FeasibleNodes, GpuRequest, Gpus, NodeId,
    NodeSpec, Placement, Policy, Resources, Run, Scheduler, TaskId, TaskSpec,
};
use proptest::prelude::*;
use proptest::sample::Index;
use support::invariants::check_invariants;

// ---------------------------------------------------------------------------
// Policies

/// A tiny deterministic PRNG (splitmix64), so the policy's choices come from
/// the proptest input and shrink with it.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the random policy decided for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// A node the cluster called feasible: it must accept the task.
    Feasible,
    /// Any node and GPUs, fitting or not.
    Blind,
    /// None: the cluster called no node feasible.
    Nowhere,
}

/// The random policy's decisions, in order.
type Picks = Arc<Mutex<Vec<(TaskId, Pick)>>>;

/// Picks a random feasible node, and one time in eight a random node and
/// random GPUs whether they fit or not: the scheduler must refuse those
/// choices without touching the accounting. Decisions are logged to `picks`.
fn random_policy(seed: u64, picks: Picks) -> impl Policy {
    let log = move |task: &TaskSpec, pick| {
        let mut picks = picks.lock().unwrap_or_else(PoisonError::into_inner);
        picks.push((task.id, pick));
    };
    let mut rng = SplitMix(seed);
    policy_fn("random", move |feasible: &FeasibleNodes<'_>| {
        let task = feasible.task();
        if rng.below(8) == 0 {
            let nodes = feasible.cluster().nodes();
            let node = nodes.get(rng.below(nodes.len().max(1)))?;
            let gpus = node.gpu_free_milli().len().max(1);
            let choice: Vec<u32> = (0..task.gpu.count)
                .map(|_| rng.below(gpus) as u32)
                .collect();
            log(task, Pick::Blind);
            return Some(Placement::on_gpus(node.id(), choice));
        }
        let feasible: Vec<&ClusterNode> = feasible.iter().collect();
        if feasible.is_empty() {
            log(task, Pick::Nowhere);
            return None;
        }
        log(task, Pick::Feasible);
        Some(Placement::on(feasible[rng.below(feasible.len())].id()))
    })
}

/// Everything observable, to check that a refused operation changed nothing.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    tasks: Vec<TaskSnapshot>,
    nodes: Vec<NodeSnapshot>,
    counts: TaskCounts,
    queue_len: usize,
    stale_queue_entries: usize,
    placements: u64,
    unschedulable: u64,
    policy_errors: u64,
    next_backoff_due: Option<Timestamp>,
}

/// One task: its state, what it asked for and what it holds.
#[derive(Debug, Clone, PartialEq)]
struct TaskSnapshot {
    state: Option<TaskState>,
    run: Option<Run>,
    asked: Option<(Resources, GpuRequest, Priority)>,
    holds: Option<Allocation>,
}

/// One node: its state and what is free on it.
#[derive(Debug, Clone, PartialEq)]
struct NodeSnapshot {
    id: NodeId,
    state: NodeState,
    free: Resources,
    gpu_free_milli: Vec<u32>,
    tasks: u32,
}

impl Snapshot {
    fn of(scheduler: &CoreScheduler, ids: impl IntoIterator<Item = TaskId>) -> Self {
        let cluster = scheduler.cluster();
        let report = scheduler.report();
        Snapshot {
            tasks: ids
                .into_iter()
                .map(|id| TaskSnapshot {
                    state: scheduler.task_state(id).cloned(),
                    run: scheduler.current_run(id),
                    asked: scheduler
                        .task(id)
                        .map(|s| (s.request.clone(), s.gpu, s.priority)),
                    holds: cluster.allocation(id).cloned(),
                })
                .collect(),
            nodes: cluster
                .nodes()
                .iter()
                .map(|n| NodeSnapshot {
                    id: n.id(),
                    state: n.state(),
                    free: n.free().clone(),
                    gpu_free_milli: n.gpu_free_milli().to_vec(),
                    tasks: n.task_count(),
                })
                .collect(),
            counts: report.tasks,
            queue_len: scheduler.queue_len(),
            stale_queue_entries: scheduler.stale_queue_entries(),
            placements: report.placements,
            unschedulable: report.unschedulable,
            policy_errors: report.policy_errors,
            next_backoff_due: scheduler.next_backoff_due(),
        }
    }
}

/// The backoff after `attempts` consecutive misses: 1 s doubling, capped at 10 s.
fn expected_backoff(attempts: u32) -> Duration {
    let secs = 1u64 << attempts.saturating_sub(1).min(10);
    Duration::from_secs(secs.min(10))
}

// ---------------------------------------------------------------------------
// The property test

#[derive(Debug, Clone)]
struct NodeShape {
    cpu_milli: u64,
    memory_mib: u64,
    gpus: u32,
}

fn node_shape() -> impl Strategy<Value = NodeShape> {
    (
        prop::sample::select(vec![4_000u64, 8_000, 16_000, 32_000]),
        prop::sample::select(vec![8_192u64, 16_384, 65_536]),
        prop::sample::select(vec![0u32, 2, 4, 8]),
    )
        .prop_map(|(cpu_milli, memory_mib, gpus)| NodeShape {
            cpu_milli,
            memory_mib,
            gpus,
        })
}

#[derive(Debug, Clone)]
enum Op {
    /// Submits a task, through the scheduler or through a [`Submitter`]
    /// (taken in by the next cycle).
    Submit {
        cpu_milli: u64,
        memory_mib: u64,
        gpu: GpuRequest,
        priority: u8,
        through_handle: bool,
    },
    /// Submits again an id already accepted (index into them).
    Resubmit {
        task: Index,
        through_handle: bool,
    },
    Schedule,
    Complete {
        task: Index,
        run: WhichRun,
    },
    Fail {
        task: Index,
        run: WhichRun,
        how: Failure,
    },
    Cancel(Index),
    NodeDown(Index),
    NodeUp(Index),
    Cordon(Index),
    Uncordon(Index),
    AdvanceClock {
        secs: u64,
    },
}

/// Which run of a task an event names: the current one, or a stale one
/// (a late report from an earlier run, or a bogus later one).
#[derive(Debug, Clone, Copy)]
enum WhichRun {
    Current,
    Earlier,
    Later,
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    Exit,
    TimeOut,
    Launch,
}

fn which_run() -> impl Strategy<Value = WhichRun> {
    prop_oneof![6 => Just(WhichRun::Current), 1 => Just(WhichRun::Earlier), 1 => Just(WhichRun::Later)]
}

/// The retry policy of the property test: one retry, 3 s later.
const RETRY: RetryPolicy = RetryPolicy {
    max_retries: Some(1),
    delay: Duration::from_secs(3),
    max_delay: Duration::from_secs(3),
};

fn gpu_request() -> impl Strategy<Value = GpuRequest> {
    prop_oneof![
        8 => Just(GpuRequest::NONE),
        // Round shares fill a GPU exactly, to hit the boundary.
        2 => prop::sample::select(vec![250u32, 500, 1000]).prop_map(GpuRequest::shared),
        2 => (250..=1000u32).prop_map(GpuRequest::shared),
        2 => (1..=4u32).prop_map(GpuRequest::whole),
        // Invalid: a share above one GPU, or count and share disagreeing.
        1 => (1001..=5000u32).prop_map(GpuRequest::shared),
        1 => (1..=1000u32).prop_map(|milli_per_gpu| GpuRequest { count: 0, milli_per_gpu }),
        1 => (1..=4u32).prop_map(|count| GpuRequest { count, milli_per_gpu: 0 }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    // Mostly small requests so that many tasks run side by side and fill
    // nodes up, round ones so that they fill them exactly; some too big for
    // most nodes; zero now and then, so that all-zero (invalid) requests occur.
    let cpu = prop_oneof![
        1 => Just(0u64),
        4 => prop::sample::select(vec![500u64, 1_000, 2_000, 4_000]),
        4 => 1..=4_000u64,
        1 => 4_000..=40_000u64,
    ];
    let memory = prop_oneof![
        1 => Just(0u64),
        4 => prop::sample::select(vec![1_024u64, 2_048, 4_096, 8_192]),
        4 => 1..=8_192u64,
        1 => 8_192..=80_000u64,
    ];
    let priority = prop_oneof![Just(0u8), Just(128), Just(255), any::<u8>()];
    let submit = (cpu, memory, gpu_request(), priority, any::<bool>()).prop_map(
        |(cpu_milli, memory_mib, gpu, priority, through_handle)| Op::Submit {
            cpu_milli,
            memory_mib,
            gpu,
            priority,
            through_handle,
        },
    );
    let index = any::<Index>;
    prop_oneof![
        8 => submit,
        1 => (index(), any::<bool>()).prop_map(|(task, through_handle)| Op::Resubmit { task, through_handle }),
        5 => Just(Op::Schedule),
        3 => (index(), which_run()).prop_map(|(task, run)| Op::Complete { task, run }),
        2 => (index(), which_run(), prop_oneof![Just(Failure::Exit), Just(Failure::TimeOut), Just(Failure::Launch)])
            .prop_map(|(task, run, how)| Op::Fail { task, run, how }),
        2 => index().prop_map(Op::Cancel),
        1 => index().prop_map(Op::NodeDown),
        1 => index().prop_map(Op::NodeUp),
        1 => index().prop_map(Op::Cordon),
        1 => index().prop_map(Op::Uncordon),
        3 => (0..=12u64).prop_map(|secs| Op::AdvanceClock { secs }),
    ]
}

/// Whether `task` fits on `node` now, written independently of the cluster's
/// own check (the tests use no labels, taints or GPU models).
fn has_room(node: &ClusterNode, task: &TaskSpec) -> bool {
    let free = node.free();
    let gpus_with_room = node
        .gpu_free_milli()
        .iter()
        .filter(|&&free| free >= task.gpu.milli_per_gpu)
        .count();
    node.state() == NodeState::Ready
        && free.cpu_milli >= task.request.cpu_milli
        && free.memory_mib >= task.request.memory_mib
        && gpus_with_room >= task.gpu.count as usize
}

/// The request rules `submit` must enforce, written independently.
fn is_valid(request: &Resources, gpu: GpuRequest) -> bool {
    let consistent = (gpu.count == 0) == (gpu.milli_per_gpu == 0);
    let asks_something = !request.is_zero() || gpu.count > 0;
    consistent && gpu.milli_per_gpu <= GPU_MILLI_PER_GPU && asks_something
}

/// A task id no submission uses.
const UNKNOWN_TASK: TaskId = TaskId(u64::MAX);
/// A node id no node uses.
const UNKNOWN_NODE: NodeId = NodeId(u64::MAX);

struct Harness {
    scheduler: CoreScheduler,
    submitter: Submitter,
    clock: ManualClock,
    nodes: Vec<NodeId>,
    /// Accepted submissions, in order.
    submitted: Vec<TaskId>,
    next_id: u64,
    /// Consecutive cycles that found no node for each task since it last
    /// ran: what its backoff must be based on.
    misses: HashMap<TaskId, u32>,
    /// Failed attempts of each task so far: what its retries must follow.
    failures: HashMap<TaskId, u32>,
    /// The highest node generation seen so far.
    max_generation: u64,
    /// The policy's decisions in the current cycle.
    picks: Picks,
}

impl Harness {
    fn new(shapes: &[NodeShape], seed: u64) -> Self {
        let clock = ManualClock::new();
        let picks = Picks::default();
        let policy = random_policy(seed, Arc::clone(&picks));
        // Preemption has scenario tests of its own; this model has none.
        let mut config = SchedulerConfig::default();
        config.retry_batch = RETRY;
        config.preemption = false;
        let mut scheduler = CoreScheduler::builder(Box::new(policy))
            .clock(Arc::new(clock.clone()))
            .config(config)
            .build();
        let mut nodes = Vec::new();
        for (i, shape) in (1..).zip(shapes) {
            let mut spec =
                NodeSpec::new(NodeId(i), Resources::new(shape.cpu_milli, shape.memory_mib));
            if shape.gpus > 0 {
                spec = spec.with_gpus(Gpus::new("A100", shape.gpus));
            }
            scheduler.add_node(&spec).expect("valid node");
            nodes.push(spec.id);
        }
        let mut harness = Harness {
            submitter: scheduler.submitter(),
            scheduler,
            clock,
            nodes,
            submitted: Vec::new(),
            next_id: 0,
            misses: HashMap::new(),
            failures: HashMap::new(),
            max_generation: 0,
            picks,
        };
        harness.max_generation = harness.generations().into_iter().max().unwrap_or(0);
        harness
    }

    /// A submitted task, or (one time in `len + 1`, or when none exists) an unknown id.
    fn pick_task(&self, index: &Index) -> TaskId {
        let i = index.index(self.submitted.len() + 1);
        self.submitted.get(i).copied().unwrap_or(UNKNOWN_TASK)
    }

    /// A node, or (one time in `len + 1`) an unknown id.
    fn pick_node(&self, index: &Index) -> NodeId {
        let i = index.index(self.nodes.len() + 1);
        self.nodes.get(i).copied().unwrap_or(UNKNOWN_NODE)
    }

    /// The run an event names, and the task's current attempt.
    fn pick_run(&self, task: TaskId, which: WhichRun) -> (Run, u32) {
        let current = self
            .scheduler
            .current_run(task)
            .unwrap_or(Run { task, attempt: 0 });
        let attempt = match which {
            WhichRun::Current => current.attempt,
            WhichRun::Earlier => current.attempt.saturating_sub(1),
            WhichRun::Later => current.attempt + 1,
        };
        (Run { task, attempt }, current.attempt)
    }

    /// The state a task must reach after one more failed attempt.
    fn after_failure(&mut self, task: TaskId) -> TaskState {
        let failures = self.failures.entry(task).or_insert(0);
        *failures += 1;
        if RETRY.allows(*failures) {
            TaskState::BackingOff {
                until: self.scheduler.now().saturating_add(RETRY.delay),
                attempts: 0,
            }
        } else {
            let reasons = self.scheduler.failures(task).to_vec();
            assert_eq!(
                reasons.len(),
                *failures as usize,
                "{task}: reasons {reasons:?}"
            );
            TaskState::Failed { reasons }
        }
    }

    fn submit(&mut self, spec: &TaskSpec, through_handle: bool) -> Result<TaskId, Error> {
        if through_handle {
            self.submitter.submit(spec)
        } else {
            self.scheduler.submit(spec)
        }
    }

    fn snapshot(&self) -> Snapshot {
        let probe = self
            .submitted
            .iter()
            .copied()
            .chain([UNKNOWN_TASK, TaskId(self.next_id)]);
        Snapshot::of(&self.scheduler, probe)
    }

    fn states(&self) -> BTreeMap<TaskId, TaskState> {
        self.submitted
            .iter()
            .filter_map(|&id| Some((id, self.scheduler.task_state(id)?.clone())))
            .collect()
    }

    fn node_state(&self, node: NodeId) -> Option<NodeState> {
        self.scheduler.cluster().node(node).map(ClusterNode::state)
    }

    /// Applies `op` and checks that every node that changed got a new,
    /// never-used generation (policies cache per node on it).
    fn apply(&mut self, op: &Op) {
        let before = self.snapshot();
        let generations_before = self.generations();
        self.apply_op(op);
        let after = self.snapshot();
        let generations = self.generations();
        for (i, (was, is)) in before.nodes.iter().zip(&after.nodes).enumerate() {
            let (old, new) = (generations_before[i], generations[i]);
            if was != is {
                assert!(
                    new > self.max_generation,
                    "{} changed, generation {old} -> {new}",
                    is.id
                );
            }
            assert!(new >= old, "{}: generation went back {old} -> {new}", is.id);
        }
        self.max_generation = generations.into_iter().fold(self.max_generation, u64::max);
    }

    fn generations(&self) -> Vec<u64> {
        self.scheduler
            .cluster()
            .nodes()
            .iter()
            .map(ClusterNode::generation)
            .collect()
    }

    /// Applies `op`, checking its result and effect against what it must do.
    fn apply_op(&mut self, op: &Op) {
        let before = self.snapshot();
        let states = self.states();
        match *op {
            Op::Submit {
                cpu_milli,
                memory_mib,
                gpu,
                priority,
                through_handle,
            } => {
                let id = TaskId(self.next_id);
                self.next_id += 1;
                let request = Resources::new(cpu_milli, memory_mib);
                let valid = is_valid(&request, gpu);
                let spec = TaskSpec::new(id, request)
                    .with_gpu(gpu)
                    .with_priority(Priority(priority));
                let result = self.submit(&spec, through_handle);
                if valid {
                    assert_eq!(result, Ok(id));
                    assert_eq!(self.scheduler.task_state(id), Some(&TaskState::Queued));
                    assert_eq!(self.scheduler.queue_len(), before.queue_len + 1);
                    assert_eq!(
                        self.scheduler.task_counts().queued,
                        before.counts.queued + 1
                    );
                    self.submitted.push(id);
                } else {
                    let error = result.expect_err("invalid request accepted");
                    assert!(
                        matches!(
                            error,
                            Error::ZeroRequest { task }
                                | Error::GpuShareTooLarge { task, .. }
                                | Error::InconsistentGpuRequest { task, .. } if task == id
                        ),
                        "unexpected error {error:?}"
                    );
                    assert_eq!(
                        self.snapshot(),
                        before,
                        "a refused submission changed something"
                    );
                }
            }
            Op::Resubmit {
                ref task,
                through_handle,
            } => {
                if self.submitted.is_empty() {
                    return;
                }
                let id = self.submitted[task.index(self.submitted.len())];
                // A different, valid request: it must not replace the original.
                let spec = TaskSpec::new(id, Resources::new(1, 1));
                assert_eq!(
                    self.submit(&spec, through_handle),
                    Err(Error::DuplicateTask { task: id })
                );
                assert_eq!(
                    self.snapshot(),
                    before,
                    "a duplicate submission changed something"
                );
            }
            Op::Schedule => self.schedule(&states),
            Op::Complete { ref task, run } => {
                let id = self.pick_task(task);
                let (run, current) = self.pick_run(id, run);
                let result = self.scheduler.complete(run);
                if self.check_finish(run, current, &states, &before, result) {
                    assert_eq!(self.scheduler.task_state(id), Some(&TaskState::Completed));
                }
            }
            Op::Fail { ref task, run, how } => {
                let id = self.pick_task(task);
                let (run, current) = self.pick_run(id, run);
                let (result, reason) = match how {
                    Failure::Exit => (self.scheduler.fail(run, "exit code 1"), "exit code 1"),
                    Failure::TimeOut => {
                        (self.scheduler.handle(Event::TaskTimedOut(run)), "timed out")
                    }
                    Failure::Launch => (
                        self.scheduler.handle(Event::LaunchFailed {
                            run,
                            reason: "no such image".to_owned(),
                        }),
                        "launch failed: no such image",
                    ),
                };
                if self.check_finish(run, current, &states, &before, result) {
                    let expected = self.after_failure(id);
                    assert_eq!(self.scheduler.task_state(id), Some(&expected));
                    let reasons = self.scheduler.failures(id);
                    let last = reasons.last().map(String::as_str).unwrap_or_default();
                    assert!(last.ends_with(reason), "{id}: {reasons:?}");
                    assert!(
                        last.starts_with(&format!("attempt {}", run.attempt)),
                        "{last}"
                    );
                }
            }
            Op::Cancel(ref index) => {
                let id = self.pick_task(index);
                let result = self.scheduler.cancel(id);
                match states.get(&id) {
                    Some(state) if !state.is_terminal() => {
                        assert_eq!(result, Ok(()), "cancel {id} while {state:?}");
                        assert_eq!(self.scheduler.task_state(id), Some(&TaskState::Cancelled));
                        assert_eq!(self.scheduler.cluster().allocation(id), None);
                        // A queued task leaves a stale entry behind; nothing else does.
                        let stale = usize::from(*state == TaskState::Queued);
                        assert_eq!(
                            self.scheduler.stale_queue_entries(),
                            before.stale_queue_entries + stale
                        );
                        assert_eq!(self.scheduler.queue_len(), before.queue_len);
                        self.assert_only_changed(&states, &[id]);
                    }
                    state => {
                        assert!(result.is_err(), "cancel {id} while {state:?} succeeded");
                        assert_eq!(
                            self.snapshot(),
                            before,
                            "a refused cancel changed something"
                        );
                    }
                }
            }
            Op::NodeDown(ref index) => {
                let node = self.pick_node(index);
                let result = self.scheduler.handle(Event::NodeDown(node));
                if !self.check_node_event(node, result, &before, NodeState::Down) {
                    return;
                }
                // Its tasks failed an attempt each, nobody else moved.
                let evicted: Vec<TaskId> = states
                    .iter()
                    .filter(|(_, state)| **state == TaskState::Running { node })
                    .map(|(&id, _)| id)
                    .collect();
                for &id in &evicted {
                    let expected = self.after_failure(id);
                    assert_eq!(self.scheduler.task_state(id), Some(&expected), "{id}");
                }
                assert_eq!(self.scheduler.queue_len(), before.queue_len);
                self.assert_only_changed(&states, &evicted);
            }
            Op::NodeUp(ref index) => {
                let node = self.pick_node(index);
                let result = self.scheduler.handle(Event::NodeUp(node));
                if self.check_node_event(node, result, &before, NodeState::Ready) {
                    self.assert_only_changed(&states, &[]);
                }
            }
            Op::Cordon(ref index) => {
                let node = self.pick_node(index);
                let was_down = self.node_state(node) == Some(NodeState::Down);
                let result = self.scheduler.cordon(node);
                if was_down {
                    self.check_refused_on_down_node(node, result, &before, "cordon");
                } else if self.check_node_event(node, result, &before, NodeState::Cordoned) {
                    // Cordoning keeps the node's tasks running.
                    self.assert_only_changed(&states, &[]);
                }
            }
            Op::Uncordon(ref index) => {
                let node = self.pick_node(index);
                let was_down = self.node_state(node) == Some(NodeState::Down);
                let result = self.scheduler.uncordon(node);
                if was_down {
                    self.check_refused_on_down_node(node, result, &before, "uncordon");
                } else if self.check_node_event(node, result, &before, NodeState::Ready) {
                    self.assert_only_changed(&states, &[]);
                }
            }
            Op::AdvanceClock { secs } => {
                let then = self.scheduler.now();
                self.clock.advance(Duration::from_secs(secs));
                assert_eq!(
                    self.scheduler.now(),
                    then.saturating_add(Duration::from_secs(secs))
                );
                // Time passing alone changes no state: backoffs end at the next cycle.
                assert_eq!(self.snapshot(), before);
            }
        }
    }

    /// Checks one scheduling cycle against what it must do to each task.
    fn schedule(&mut self, states: &BTreeMap<TaskId, TaskState>) {
        let now = self.scheduler.now();
        let assignments = self.scheduler.schedule();
        let mut assigned: HashMap<TaskId, &Assignment> = HashMap::new();
        for assignment in &assignments {
            let id = assignment.task;
            assert!(
                assigned.insert(id, assignment).is_none(),
                "{id} assigned twice"
            );
            let allocation = self.scheduler.cluster().allocation(id);
            assert_eq!(
                allocation.map(|a| &a.gpus),
                Some(&assignment.gpus),
                "{id}: GPUs"
            );
            // A cycle changes no node's state: only ready nodes take tasks.
            let node = assignment.node;
            assert_eq!(
                self.node_state(node),
                Some(NodeState::Ready),
                "{id} placed on {node}"
            );
        }
        let picks = std::mem::take(&mut *self.picks.lock().unwrap_or_else(PoisonError::into_inner));
        // A retried task is offered first without the node it failed on,
        // then, if that finds nothing, anywhere: its last pick decides.
        let last_picks: HashMap<TaskId, Pick> = picks.into_iter().collect();
        for (id, pick) in last_picks {
            match pick {
                // What the cluster calls feasible, it accepts.
                Pick::Feasible => {
                    assert!(assigned.contains_key(&id), "{id} refused where feasible")
                }
                // What it calls infeasible, fits nowhere: the cycle only took
                // capacity, so a node with room now had room then.
                Pick::Nowhere => {
                    let task = self
                        .scheduler
                        .task(id)
                        .unwrap_or_else(|| panic!("{id} lost"));
                    let room = self
                        .scheduler
                        .cluster()
                        .nodes()
                        .iter()
                        .find(|n| has_room(n, task));
                    assert!(
                        room.is_none(),
                        "{id} was said to fit nowhere, but fits {room:?}"
                    );
                }
                Pick::Blind => {}
            }
        }
        // The queue hands out higher priorities first.
        let priority = |a: &Assignment| self.scheduler.task(a.task).map(|t| t.priority);
        for pair in assignments.windows(2) {
            assert!(
                priority(&pair[0]) >= priority(&pair[1]),
                "out of priority order: {pair:?}"
            );
        }
        for (&id, before) in states {
            let after = self
                .scheduler
                .task_state(id)
                .unwrap_or_else(|| panic!("{id} lost"));
            let eligible = match before {
                TaskState::Queued => true,
                TaskState::BackingOff { until, .. } => *until <= now,
                _ => false,
            };
            if !eligible {
                assert_eq!(after, before, "{id} was not due, yet changed");
                assert!(
                    !assigned.contains_key(&id),
                    "{id} was not due, yet assigned"
                );
                continue;
            }
            match after {
                TaskState::Running { node } => {
                    assert_eq!(
                        assigned.get(&id).map(|a| a.node),
                        Some(*node),
                        "{id} not reported"
                    );
                    self.misses.insert(id, 0);
                }
                TaskState::BackingOff { until, attempts } => {
                    let misses = self.misses.entry(id).or_insert(0);
                    *misses += 1;
                    assert_eq!(*attempts, *misses, "{id}: attempts");
                    let delay = expected_backoff(*attempts);
                    assert_eq!(
                        *until,
                        now.saturating_add(delay),
                        "{id}: backoff after {attempts} misses"
                    );
                }
                other => panic!("{id} went from {before:?} to {other:?} in a cycle"),
            }
        }
        // Every queued task was taken once and every stale entry dropped.
        assert_eq!(self.scheduler.queue_len(), 0);
        assert_eq!(self.scheduler.stale_queue_entries(), 0);
        assert!(
            self.scheduler
                .next_backoff_due()
                .is_none_or(|due| due > now),
            "a due backoff survived the cycle"
        );
    }

    /// Checks the result of an event about `run`; true when it applied.
    fn check_finish(
        &self,
        run: Run,
        current: u32,
        states: &BTreeMap<TaskId, TaskState>,
        before: &Snapshot,
        result: Result<(), Error>,
    ) -> bool {
        let id = run.task;
        match states.get(&id) {
            Some(TaskState::Running { .. }) if run.attempt == current => {
                assert_eq!(result, Ok(()), "finish running {run}");
                assert_eq!(self.scheduler.cluster().allocation(id), None);
                self.assert_only_changed(states, &[id]);
                return true;
            }
            Some(TaskState::Running { .. }) => {
                assert_eq!(result, Err(Error::StaleRun { run, current }));
            }
            None => assert_eq!(result, Err(Error::UnknownTask { task: id })),
            Some(state) => assert!(
                matches!(result, Err(Error::InvalidTransition { task, .. }) if task == id),
                "finish {run} while {state:?} gave {result:?}"
            ),
        }
        assert_eq!(
            &self.snapshot(),
            before,
            "a refused event changed something"
        );
        false
    }

    /// A down node is neither cordoned nor uncordoned: only NodeUp revives it.
    fn check_refused_on_down_node(
        &self,
        node: NodeId,
        result: Result<(), Error>,
        before: &Snapshot,
        action: &'static str,
    ) {
        assert_eq!(result, Err(Error::NodeDown { node, action }));
        assert_eq!(
            &self.snapshot(),
            before,
            "a refused {action} changed something"
        );
    }

    /// Checks a node event's result; true when it applied to a known node.
    fn check_node_event(
        &self,
        node: NodeId,
        result: Result<(), Error>,
        before: &Snapshot,
        state: NodeState,
    ) -> bool {
        if node == UNKNOWN_NODE {
            assert_eq!(result, Err(Error::UnknownNode { node }));
            assert_eq!(
                &self.snapshot(),
                before,
                "an event for an unknown node changed something"
            );
            return false;
        }
        assert_eq!(result, Ok(()));
        assert_eq!(self.node_state(node), Some(state));
        true
    }

    /// Asserts that no task other than `changed` changed state.
    fn assert_only_changed(&self, before: &BTreeMap<TaskId, TaskState>, changed: &[TaskId]) {
        for (id, state) in self.states() {
            if !changed.contains(&id) {
                assert_eq!(Some(&state), before.get(&id), "{id} changed state");
            }
        }
    }
}

proptest! {
    #[test]
    fn random_operations_keep_every_invariant(
        shapes in prop::collection::vec(node_shape(), 3..=6),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let mut harness = Harness::new(&shapes, seed);
        check_invariants(&harness.scheduler, &harness.submitted);
        for op in &ops {
            harness.apply(op);
            check_invariants(&harness.scheduler, &harness.submitted);
        }
    }
}
