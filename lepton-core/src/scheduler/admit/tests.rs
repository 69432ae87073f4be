//! The scheduler with tenant queues: tasks wait in their queue until
//! admitted, refusals are typed, shares come back when tasks end (not
//! when they are retried), and the queues survive a snapshot and a plan.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use crate::admission::{Admission, Limits, QueueSpec};
use crate::clock::{ManualClock, Timestamp};
use crate::scheduler::testing::{first_fit, placed, scheduler_on};
use crate::scheduler::{RetryPolicy, SchedulerConfig, TaskState};
use crate::{CoreScheduler, Error, NodeId, NodeSpec, Resources, Scheduler, TaskId, TaskSpec};

/// `org` (at most 12 cores) above `org/ml` (at most 4) and `org/web`
/// (promised 6 cores and 1 GiB).
fn queues() -> Admission {
    let mut queues = Admission::new();
    let org = QueueSpec::new("org").with_max(Limits::cpu_milli(12_000));
    queues.add_queue(org).unwrap();
    let ml = QueueSpec::new("org/ml").with_max(Limits::cpu_milli(4_000));
    queues.add_queue(ml).unwrap();
    let promised = Limits::cpu_milli(6_000).with_memory_mib(1_024);
    let web = QueueSpec::new("org/web").with_guarantee(promised);
    queues.add_queue(web).unwrap();
    queues
}

/// Nodes of these many cores (16 GiB each), the queues above, on a
/// manual clock.
fn scheduler(cores: &[u64], config: SchedulerConfig) -> (CoreScheduler, Arc<ManualClock>) {
    scheduler_on(cores, config, Some(&queues()))
}

fn task(id: u64, cores: u64, queue: &str) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(cores * 1_000, 64)).with_queue(queue)
}

fn cpu_held(scheduler: &CoreScheduler, queue: &str) -> u64 {
    scheduler
        .admission()
        .and_then(|a| a.usage(queue))
        .unwrap()
        .cpu_milli
}

#[test]
fn a_queue_at_its_maximum_holds_its_tasks_until_one_ends() {
    let (mut scheduler, _) = scheduler(&[64], SchedulerConfig::default());
    for id in 1..=3 {
        scheduler.submit(&task(id, 2, "org/ml")).unwrap();
    }
    assert_eq!(placed(&mut scheduler), [1, 2]);
    assert_eq!(scheduler.task_state(TaskId(3)), Some(&TaskState::Queued));
    assert_eq!(cpu_held(&scheduler, "org/ml"), 4_000);
    assert_eq!(cpu_held(&scheduler, "org"), 4_000);
    let why = scheduler.explain(TaskId(3)).unwrap();
    assert_eq!(why.refusals, None);
    assert_eq!(
        why.to_string(),
        "task 3 waits for admission: queue org/ml is at its maximum: \
         cpu_milli 6000 with this task > 4000"
    );
    // Another queue's task is not held back by it.
    scheduler.submit(&task(4, 2, "org/web")).unwrap();
    assert_eq!(placed(&mut scheduler), [4]);
    let run = scheduler.current_run(TaskId(1)).unwrap();
    scheduler.complete(run).unwrap();
    assert_eq!(cpu_held(&scheduler, "org/ml"), 2_000);
    assert_eq!(placed(&mut scheduler), [3]);
    assert_eq!(scheduler.stale_queue_entries(), 0);
}

#[test]
fn tasks_naming_no_declared_queue_or_too_large_for_one_are_refused() {
    let mut plain = CoreScheduler::new(first_fit());
    let err = plain.submit(&task(1, 1, "org")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "task t-1 names queue \"org\", which is not declared"
    );
    assert!(plain.task(TaskId(1)).is_none());

    let (mut scheduler, _) = scheduler(&[64], SchedulerConfig::default());
    let err = scheduler.submit(&task(1, 1, "nope")).unwrap_err();
    assert!(matches!(err, Error::UnknownQueue { .. }), "{err}");
    let err = scheduler.submit(&task(2, 5, "org/ml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "task t-2 asks for cpu_milli 5000, more than queue org/ml allows at most (4000)"
    );
    let err = scheduler.submit(&task(3, 13, "org/web")).unwrap_err();
    assert!(
        matches!(&err, Error::OverQuota { queue, .. } if queue == "org"),
        "{err}"
    );
    assert_eq!(scheduler.task_counts().total(), 0);
    // The same id is free again after a refusal.
    scheduler.submit(&task(2, 1, "org/ml")).unwrap();

    // Through a handle the refusal comes when a cycle takes the task in.
    scheduler.submitter().submit(&task(5, 1, "nope")).unwrap();
    assert_eq!(placed(&mut scheduler), [2]);
    match scheduler.task_state(TaskId(5)) {
        Some(TaskState::Failed { reasons }) => {
            assert!(
                reasons[0].contains("\"nope\", which is not declared"),
                "{reasons:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(scheduler.task_counts().failed, 1);
    assert_eq!(scheduler.task_counts().queued, 0);
    assert_eq!(scheduler.stale_queue_entries(), 0);
}

#[test]
fn a_cancelled_task_leaves_its_queue() {
    let (mut scheduler, _) = scheduler(&[64], SchedulerConfig::default());
    for id in 1..=3 {
        scheduler.submit(&task(id, 2, "org/ml")).unwrap();
    }
    assert_eq!(placed(&mut scheduler), [1, 2]);
    scheduler.cancel(TaskId(3)).unwrap();
    assert_eq!(scheduler.stale_queue_entries(), 0);
    assert_eq!(scheduler.admission().unwrap().waiting("org/ml"), 0);
    // A running task cancelled gives its share back.
    scheduler.cancel(TaskId(1)).unwrap();
    assert_eq!(cpu_held(&scheduler, "org/ml"), 2_000);
    assert!(placed(&mut scheduler).is_empty());
    assert_eq!(scheduler.task_state(TaskId(3)), Some(&TaskState::Cancelled));
}

#[test]
fn a_handle_submission_waits_in_its_queue_then_runs() {
    let (mut scheduler, _) = scheduler(&[64], SchedulerConfig::default());
    let handle = scheduler.submitter();
    for id in 1..=3 {
        handle.submit(&task(id, 2, "org/ml")).unwrap();
    }
    // The cycle that takes them in hands them to their queue; the next
    // one admits what the queue allows.
    assert!(placed(&mut scheduler).is_empty());
    assert_eq!(placed(&mut scheduler), [1, 2]);
    let why = scheduler.explain(TaskId(3)).unwrap();
    assert!(why.queue.unwrap().contains("org/ml is at its maximum"));
    assert_eq!(scheduler.task_counts().queued, 1);
}

#[test]
fn a_retried_task_keeps_its_share_until_it_ends_for_good() {
    let config = SchedulerConfig {
        retry_batch: RetryPolicy {
            max_retries: Some(1),
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(1),
        },
        ..SchedulerConfig::default()
    };
    let (mut scheduler, clock) = scheduler(&[64], config);
    for id in 1..=3 {
        scheduler.submit(&task(id, 2, "org/ml")).unwrap();
    }
    assert_eq!(placed(&mut scheduler), [1, 2]);
    let run = scheduler.current_run(TaskId(1)).unwrap();
    scheduler.fail(run, "exit 1").unwrap();
    assert_eq!(cpu_held(&scheduler, "org/ml"), 4_000);
    assert!(placed(&mut scheduler).is_empty(), "task 3 must still wait");
    clock.set(Timestamp(2_000_000));
    assert_eq!(placed(&mut scheduler), [1]);
    let run = scheduler.current_run(TaskId(1)).unwrap();
    scheduler.fail(run, "exit 1").unwrap();
    assert!(matches!(
        scheduler.task_state(TaskId(1)),
        Some(TaskState::Failed { .. })
    ));
    assert_eq!(cpu_held(&scheduler, "org/ml"), 2_000);
    assert_eq!(placed(&mut scheduler), [3]);
}

#[test]
fn a_restored_scheduler_counts_running_tasks_in_their_queues() {
    let (mut scheduler, _) = scheduler(&[64], SchedulerConfig::default());
    for id in 1..=3 {
        scheduler.submit(&task(id, 2, "org/ml")).unwrap();
    }
    assert_eq!(placed(&mut scheduler), [1, 2]);
    let saved = scheduler.snapshot();

    let mut restored = CoreScheduler::builder(first_fit())
        .queues(&queues())
        .build();
    restored.restore(&saved).unwrap();
    assert_eq!(cpu_held(&restored, "org/ml"), 4_000);
    assert_eq!(restored.admission().unwrap().waiting("org/ml"), 1);
    assert!(placed(&mut restored).is_empty());

    let mut without = CoreScheduler::new(first_fit());
    let err = without.restore(&saved).unwrap_err();
    assert!(matches!(err, Error::UnknownQueue { .. }), "{err}");
}

#[test]
fn a_plan_keeps_the_queues_maxima() {
    let (mut scheduler, _) = scheduler(&[64], SchedulerConfig::default());
    for id in 1..=2 {
        scheduler.submit(&task(id, 2, "org/ml")).unwrap();
    }
    assert_eq!(placed(&mut scheduler), [1, 2]);
    let tasks = [task(10, 1, "org/ml"), task(11, 1, "org/web")];
    let plan = scheduler.plan(first_fit(), &tasks).unwrap();
    let placed: Vec<u64> = plan.placed.iter().map(|p| p.task.0).collect();
    assert_eq!(placed, [11]);
    assert_eq!(plan.waiting.len(), 1);
    assert!(plan.waiting[0].queue.as_ref().unwrap().contains("org/ml"));
    assert!(scheduler.task(TaskId(10)).is_none());
    assert_eq!(cpu_held(&scheduler, "org/ml"), 4_000);
}

/// Queues `a` and `b`, each promised 8 cores and 8 GiB, on two nodes of
/// 8 cores and 16 GiB.
fn guaranteed() -> CoreScheduler {
    let mut queues = Admission::new();
    for name in ["a", "b"] {
        let promised = Limits::cpu_milli(8_000).with_memory_mib(8_192);
        queues
            .add_queue(QueueSpec::new(name).with_guarantee(promised))
            .unwrap();
    }
    let mut scheduler = CoreScheduler::builder(first_fit())
        .clock(Arc::new(ManualClock::new()))
        .queues(&queues)
        .build();
    for id in 1..=2 {
        let node = NodeSpec::new(NodeId(id), Resources::new(8_000, 16_384));
        scheduler.add_node(&node).unwrap();
    }
    scheduler
}

#[test]
fn a_queue_within_its_guarantee_takes_back_what_another_borrowed() {
    let mut scheduler = guaranteed();
    // `a` is idle: `b` borrows the whole cluster.
    for id in 1..=16 {
        scheduler.submit(&task(id, 1, "b")).unwrap();
    }
    assert_eq!(placed(&mut scheduler).len(), 16);
    assert_eq!(cpu_held(&scheduler, "b"), 16_000);
    // `a` asks for its 8 cores: they are reclaimed from `b`'s borrowed
    // tasks in the same cycle, and no further.
    for id in 101..=104 {
        scheduler.submit(&task(id, 2, "a")).unwrap();
    }
    let assignments = scheduler.schedule();
    let started: Vec<u64> = assignments.iter().map(|a| a.task.0).collect();
    assert_eq!(started, [101, 102, 103, 104]);
    let evicted: Vec<u64> = assignments
        .iter()
        .flat_map(|a| a.evicts.iter().map(|run| run.task.0))
        .collect();
    assert_eq!(evicted.len(), 8, "{evicted:?}");
    assert!(evicted.iter().all(|&id| id <= 16), "{evicted:?}");
    assert_eq!(cpu_held(&scheduler, "a"), 8_000);
    assert_eq!(cpu_held(&scheduler, "b"), 8_000, "b keeps its guarantee");
    assert_eq!(scheduler.admission().unwrap().waiting("b"), 8);
    let why = scheduler.explain(TaskId(evicted[0])).unwrap().to_string();
    assert!(
        why.contains("waits for admission: the cluster is fully admitted"),
        "{why}"
    );
    // Beyond its guarantee `a` borrows only what is free: nothing now.
    scheduler.submit(&task(105, 2, "a")).unwrap();
    assert!(placed(&mut scheduler).is_empty());
    assert_eq!(cpu_held(&scheduler, "b"), 8_000);
    assert_eq!(scheduler.stale_queue_entries(), 0);
}

#[test]
fn reclaim_weighs_what_a_queue_runs_not_what_it_was_admitted() {
    let mut queues = Admission::new();
    let promised = Limits::cpu_milli(4_000).with_memory_mib(1_024);
    queues
        .add_queue(QueueSpec::new("a").with_guarantee(promised))
        .unwrap();
    queues.add_queue(QueueSpec::new("b")).unwrap();
    let (mut scheduler, _) = scheduler_on(&[4, 4, 4, 4], SchedulerConfig::default(), Some(&queues));
    // `b` runs 10 cores spread 3, 3, 2, 2: no node has 3 free.
    for (id, node) in (1..).zip([1, 1, 1, 2, 2, 2, 3, 3, 4, 4]) {
        let run = crate::Run {
            task: TaskId(id),
            attempt: 1,
        };
        let placement = crate::cluster::Placement::on(NodeId(node));
        scheduler.adopt(&task(id, 1, "b"), run, &placement).unwrap();
    }
    // The pool has room for `a`'s two tasks of 3 cores: both are admitted
    // (6 cores, above `a`'s guarantee of 4), and neither fits a node.
    scheduler.submit(&task(101, 3, "a")).unwrap();
    scheduler.submit(&task(102, 3, "a")).unwrap();
    let assignments = scheduler.schedule();
    assert_eq!(cpu_held(&scheduler, "a"), 6_000);
    // `a` runs nothing: its first task, within the guarantee, takes room
    // back from `b`; the second, beyond it, waits.
    let started: Vec<u64> = assignments.iter().map(|a| a.task.0).collect();
    assert_eq!(started, [101]);
    let evicted = assignments[0].evicts.len();
    assert!((1..=2).contains(&evicted), "{assignments:?}");
    assert!(!scheduler.task_state(TaskId(102)).unwrap().is_terminal());
}

#[test]
fn a_guarantee_above_the_maximum_is_refused() {
    let mut queues = Admission::new();
    let spec = QueueSpec::new("a")
        .with_max(Limits::cpu_milli(4_000))
        .with_guarantee(Limits::cpu_milli(8_000));
    let err = queues.add_queue(spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        "queue \"a\" is invalid: its guarantee exceeds its maximum"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Submit { cores: u64, queue: usize },
    Schedule,
    Complete(usize),
    Fail(usize),
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1..=5u64, 0..3usize).prop_map(|(cores, queue)| Op::Submit { cores, queue }),
        2 => Just(Op::Schedule),
        1 => any::<usize>().prop_map(Op::Complete),
        1 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Cancel),
    ]
}

const QUEUES: [&str; 3] = ["org", "org/ml", "org/web"];

/// What the tasks of `queue` and the queues below it hold now, counted
/// from the tasks' states: running, or admitted and waiting to be retried
/// or placed (in the scheduler but not in its queue's waiting line).
fn recount(scheduler: &CoreScheduler, ids: &[TaskId], queue: &str) -> u64 {
    let admission = scheduler.admission().unwrap();
    ids.iter()
        .filter_map(|&id| scheduler.task(id))
        .filter(|spec| {
            let q = spec.queue.as_deref().unwrap_or_default();
            q == queue || q.starts_with(&format!("{queue}/"))
        })
        .filter(|spec| {
            let ended = matches!(
                scheduler.task_state(spec.id),
                Some(TaskState::Completed | TaskState::Failed { .. } | TaskState::Cancelled)
            );
            !ended && !admission.is_waiting(spec.id)
        })
        .map(|spec| spec.request.cpu_milli)
        .sum()
}

fn running_cpu(scheduler: &CoreScheduler, ids: &[TaskId], queue: &str) -> u64 {
    ids.iter()
        .filter(|&&id| matches!(scheduler.task_state(id), Some(TaskState::Running { .. })))
        .filter_map(|&id| scheduler.task(id))
        .filter(|spec| spec.queue.as_deref().is_some_and(|q| q.starts_with(queue)))
        .map(|spec| spec.request.cpu_milli)
        .sum()
}

proptest! {
    /// Through any submissions, cycles, completions, failures and
    /// cancellations: what each queue holds, and what its running tasks
    /// hold, equal a recount from the tasks' states, no queue's running tasks pass its maximum, and once
    /// everything that runs completes, every task has run.
    #[test]
    fn queues_hold_what_their_tasks_hold_and_never_pass_a_maximum(
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let config = SchedulerConfig {
            retry_batch: RetryPolicy::IMMEDIATE,
            ..SchedulerConfig::default()
        };
        let (mut scheduler, clock) = scheduler(&[6, 6], config);
        let mut ids = Vec::new();
        for op in ops {
            let running: Vec<TaskId> = ids
                .iter()
                .copied()
                .filter(|&id| matches!(scheduler.task_state(id), Some(TaskState::Running { .. })))
                .collect();
            match op {
                Op::Submit { cores, queue } => {
                    let id = TaskId(ids.len() as u64 + 1);
                    let spec = task(id.0, cores, QUEUES[queue]);
                    if let Err(error) = scheduler.submit(&spec) {
                        prop_assert!(matches!(error, Error::OverQuota { .. }), "{}", error);
                    }
                    ids.push(id);
                }
                Op::Schedule => drop(scheduler.schedule()),
                Op::Complete(i) if !running.is_empty() => {
                    let run = scheduler.current_run(running[i % running.len()]).unwrap();
                    scheduler.complete(run).unwrap();
                }
                Op::Fail(i) if !running.is_empty() => {
                    let run = scheduler.current_run(running[i % running.len()]).unwrap();
                    scheduler.fail(run, "exit 1").unwrap();
                }
                Op::Cancel(i) if !ids.is_empty() => {
                    let _ = scheduler.cancel(ids[i % ids.len()]);
                }
                _ => {}
            }
            let admission = scheduler.admission().unwrap();
            for queue in QUEUES {
                prop_assert_eq!(cpu_held(&scheduler, queue), recount(&scheduler, &ids, queue));
                let runs = admission.runs(queue).unwrap().cpu_milli;
                prop_assert_eq!(runs, running_cpu(&scheduler, &ids, queue));
            }
            prop_assert!(running_cpu(&scheduler, &ids, "org/ml") <= 4_000);
            prop_assert!(running_cpu(&scheduler, &ids, "org") <= 12_000);
            prop_assert_eq!(scheduler.stale_queue_entries(), 0);
        }
        for round in 0..ids.len() as u64 + 2 {
            // Past every backoff.
            clock.set(Timestamp((round + 1) * 20_000_000));
            drop(scheduler.schedule());
            for &id in &ids {
                if matches!(scheduler.task_state(id), Some(TaskState::Running { .. })) {
                    scheduler.complete(scheduler.current_run(id).unwrap()).unwrap();
                }
            }
        }
        for id in &ids {
            let state = scheduler.task_state(*id);
            prop_assert!(
                state.is_none()
                    || matches!(
                        state,
                        Some(TaskState::Completed | TaskState::Failed { .. } | TaskState::Cancelled)
                    ),
                "task {} still {:?}", id, state
            );
        }
        for queue in QUEUES {
            prop_assert_eq!(cpu_held(&scheduler, queue), 0);
        }
    }
}

proptest! {
    /// Three queues with random guarantees adding up to at most the
    /// cluster, tasks of one core: after every cycle (past every
    /// backoff), each queue runs its guarantee or all its work, however
    /// much the others borrowed before.
    #[test]
    fn reclaim_restores_every_guarantee_in_one_cycle(
        promised in proptest::collection::vec(0..=4u64, 3),
        ops in proptest::collection::vec((0..4usize, any::<usize>()), 1..120),
    ) {
        let mut queues = Admission::new();
        for (name, &cores) in ["a", "b", "c"].iter().zip(&promised) {
            let guarantee = Limits::cpu_milli(cores * 1_000).with_memory_mib(1_024);
            queues.add_queue(QueueSpec::new(*name).with_guarantee(guarantee)).unwrap();
        }
        let (mut scheduler, clock) = scheduler_on(&[4, 4, 4], SchedulerConfig::default(), Some(&queues));
        let mut ids: Vec<(TaskId, usize)> = Vec::new();
        for (step, (what, pick)) in (1..).zip(ops) {
            let running = |scheduler: &CoreScheduler, id: TaskId| {
                matches!(scheduler.task_state(id), Some(TaskState::Running { .. }))
            };
            match what {
                // Submit to queue `what`.
                0..=2 => {
                    let id = TaskId(ids.len() as u64 + 1);
                    scheduler.submit(&task(id.0, 1, ["a", "b", "c"][what])).unwrap();
                    ids.push((id, what));
                }
                _ => {
                    let live: Vec<TaskId> =
                        ids.iter().map(|&(id, _)| id).filter(|&id| running(&scheduler, id)).collect();
                    if pick % 2 == 0 && !live.is_empty() {
                        let run = scheduler.current_run(live[pick / 2 % live.len()]).unwrap();
                        scheduler.complete(run).unwrap();
                    }
                    clock.set(Timestamp(step * 600_000_000));
                    drop(scheduler.schedule());
                    for (q, &cores) in promised.iter().enumerate() {
                        let mine = ids.iter().filter(|&&(_, of)| of == q);
                        let runs = mine.clone().filter(|&&(id, _)| running(&scheduler, id)).count() as u64;
                        let unfinished = mine
                            .filter(|&&(id, _)| !scheduler.task_state(id).is_some_and(TaskState::is_terminal))
                            .count() as u64;
                        prop_assert!(
                            runs >= cores.min(unfinished),
                            "queue {} runs {} of {} unfinished, promised {}", q, runs, unfinished, cores
                        );
                    }
                }
            }
        }
    }
}
