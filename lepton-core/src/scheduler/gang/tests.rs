//! Gangs: all or nothing in one cycle, members that arrive late, a
//! failure that restarts the gang, the timeout, never a victim, drains,
//! and a property test that no gang ever runs partly started.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use crate::clock::{ManualClock, Timestamp};
use crate::scheduler::testing::{first_fit, placed, scheduler_on};
use crate::scheduler::{Event, RetryPolicy, SchedulerConfig, TaskState};
use crate::task::{Gang, Priority};
use crate::{CoreScheduler, Error, NodeId, Resources, Run, Scheduler, TaskId, TaskSpec};

/// Nodes of these many cores, on a manual clock.
fn scheduler(cores: &[u64], config: SchedulerConfig) -> (CoreScheduler, Arc<ManualClock>) {
    scheduler_on(cores, config, None)
}

fn member(id: u64, cores: u64, gang: &Gang) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(cores * 1_000, 64)).with_gang(gang.clone())
}

fn running(scheduler: &CoreScheduler, ids: impl IntoIterator<Item = u64>) -> Vec<u64> {
    ids.into_iter()
        .filter(|&id| {
            matches!(
                scheduler.task_state(TaskId(id)),
                Some(TaskState::Running { .. })
            )
        })
        .collect()
}

#[test]
fn a_gang_starts_whole_or_books_nothing() {
    let (mut scheduler, clock) = scheduler(&[4, 4], SchedulerConfig::default());
    let g = Gang::new("g", 3);
    for id in 1..=3 {
        scheduler.submit(&member(id, 2, &g)).unwrap();
    }
    // Taken in and held by one cycle, placed together by the next.
    assert!(placed(&mut scheduler).is_empty());
    assert_eq!(placed(&mut scheduler), [1, 2, 3]);
    // Two cores are left: one of gang h's two members would fit, not both.
    let h = Gang::new("h", 2);
    for id in 4..=5 {
        scheduler.submit(&member(id, 2, &h)).unwrap();
    }
    let free = |s: &CoreScheduler| s.cluster().node(NodeId(2)).unwrap().free().cpu_milli;
    assert_eq!(free(&scheduler), 2_000);
    assert!(placed(&mut scheduler).is_empty());
    assert!(placed(&mut scheduler).is_empty());
    assert_eq!(free(&scheduler), 2_000, "a failed try books nothing");
    let why = scheduler.explain(TaskId(4)).unwrap();
    assert_eq!(why.refusals, None);
    assert!(
        why.to_string().starts_with(
            "task 4 waits for its gang: gang h: its last try found room for 1 of the 2 \
             members it needs together; next try at"
        ),
        "{why}"
    );
    // Gang g ends: h starts whole.
    for id in 1..=3 {
        let run = scheduler.current_run(TaskId(id)).unwrap();
        scheduler.complete(run).unwrap();
    }
    // Its next try comes after its backoff.
    assert!(placed(&mut scheduler).is_empty());
    clock.set(Timestamp(10_000_000));
    assert_eq!(placed(&mut scheduler), [4, 5]);
}

#[test]
fn a_gang_waits_for_its_members_and_its_timeout_fails_them() {
    let (mut scheduler, clock) = scheduler(&[8], SchedulerConfig::default());
    let g = Gang::new("g", 3);
    for id in 1..=2 {
        scheduler.submit(&member(id, 1, &g)).unwrap();
    }
    assert!(placed(&mut scheduler).is_empty());
    assert!(placed(&mut scheduler).is_empty());
    let why = scheduler.explain(TaskId(1)).unwrap().to_string();
    assert_eq!(
        why,
        "task 1 waits for its gang: gang g needs 3 members placed together; 2 are waiting"
    );
    scheduler.submit(&member(3, 1, &g)).unwrap();
    assert!(placed(&mut scheduler).is_empty());
    assert_eq!(placed(&mut scheduler), [1, 2, 3]);

    let late = Gang::new("late", 2).with_timeout_ms(1_000);
    scheduler.submit(&member(4, 1, &late)).unwrap();
    assert!(placed(&mut scheduler).is_empty());
    clock.set(Timestamp(999_000));
    assert!(placed(&mut scheduler).is_empty());
    assert_eq!(scheduler.task_state(TaskId(4)), Some(&TaskState::Queued));
    clock.set(Timestamp(1_000_000));
    assert!(placed(&mut scheduler).is_empty());
    match scheduler.task_state(TaskId(4)) {
        Some(TaskState::Failed { reasons }) => assert_eq!(
            reasons,
            &["gang late did not start within 1000 ms (1 of the 2 members it needs waited)"]
        ),
        other => panic!("{other:?}"),
    }
    // A member of the same name later starts a new gang.
    scheduler.submit(&member(5, 1, &late)).unwrap();
    assert_eq!(scheduler.stale_queue_entries(), 0);
}

#[test]
fn bad_or_disagreeing_gangs_are_refused() {
    let (mut scheduler, _) = scheduler(&[8], SchedulerConfig::default());
    let err = scheduler
        .submit(&member(1, 1, &Gang::new("g", 0)))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "task t-1: gang \"g\": min_available must be at least 1"
    );
    let err = scheduler
        .submit(&member(1, 1, &Gang::new("", 1)))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidGang { .. }), "{err}");
    scheduler.submit(&member(1, 1, &Gang::new("g", 2))).unwrap();
    drop(scheduler.schedule());
    let err = scheduler
        .submit(&member(2, 1, &Gang::new("g", 3)))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("its members declare min_available 2"),
        "{err}"
    );
}

/// Runs gang `g` (three members of two cores) on two nodes of four.
fn running_gang(config: SchedulerConfig) -> (CoreScheduler, Arc<ManualClock>) {
    let (mut scheduler, clock) = scheduler(&[4, 4], config);
    let g = Gang::new("g", 3);
    for id in 1..=3 {
        scheduler.submit(&member(id, 2, &g)).unwrap();
    }
    drop(scheduler.schedule());
    assert_eq!(placed(&mut scheduler), [1, 2, 3]);
    (scheduler, clock)
}

#[test]
fn a_member_failure_stops_the_others_and_the_gang_starts_again_whole() {
    let config = SchedulerConfig {
        retry_batch: RetryPolicy::IMMEDIATE,
        ..SchedulerConfig::default()
    };
    let (mut scheduler, _) = running_gang(config);
    let first = scheduler.current_run(TaskId(1)).unwrap();
    scheduler.fail(first, "exit 1").unwrap();
    let mut stopped = scheduler.expire_timeouts();
    stopped.sort_unstable_by_key(|run| run.task);
    assert_eq!(
        stopped,
        [
            Run {
                task: TaskId(2),
                attempt: 1
            },
            Run {
                task: TaskId(3),
                attempt: 1
            }
        ]
    );
    assert!(running(&scheduler, 1..=3).is_empty());
    // Taken in again, then placed together; only the failed one is charged.
    drop(scheduler.schedule());
    assert_eq!(placed(&mut scheduler), [1, 2, 3]);
    assert!(
        scheduler.expire_timeouts().is_empty(),
        "whole again: not stopped"
    );
    assert_eq!(scheduler.failures(TaskId(1)).len(), 1);
    assert!(scheduler.failures(TaskId(2)).is_empty());
    assert_eq!(scheduler.current_run(TaskId(2)).unwrap().attempt, 2);
}

#[test]
fn completed_members_count_and_a_final_failure_fails_the_gang() {
    let config = SchedulerConfig {
        retry_batch: RetryPolicy {
            max_retries: Some(0),
            ..RetryPolicy::IMMEDIATE
        },
        ..SchedulerConfig::default()
    };
    let (mut scheduler, _) = running_gang(config);
    // Member 3 completes; member 1 fails for good: 2 and 3 cannot make
    // three any more, so member 2 fails too and its run is stopped.
    scheduler
        .complete(scheduler.current_run(TaskId(3)).unwrap())
        .unwrap();
    scheduler
        .fail(scheduler.current_run(TaskId(1)).unwrap(), "exit 1")
        .unwrap();
    let stopped = scheduler.expire_timeouts();
    assert_eq!(
        stopped,
        [Run {
            task: TaskId(2),
            attempt: 1
        }]
    );
    match scheduler.task_state(TaskId(2)) {
        Some(TaskState::Failed { reasons }) => assert_eq!(
            reasons,
            &["gang g cannot reach its 3 members: member t-1 failed"]
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(scheduler.stale_queue_entries(), 0);
}

#[test]
fn a_member_that_completed_counts_when_the_gang_restarts() {
    let config = SchedulerConfig {
        retry_batch: RetryPolicy::IMMEDIATE,
        ..SchedulerConfig::default()
    };
    let (mut scheduler, _) = running_gang(config);
    scheduler
        .complete(scheduler.current_run(TaskId(3)).unwrap())
        .unwrap();
    scheduler
        .fail(scheduler.current_run(TaskId(1)).unwrap(), "exit 1")
        .unwrap();
    // One completed, one failed, one running: the running one is stopped
    // and the two left start again together with the completed one's count.
    assert_eq!(
        scheduler.expire_timeouts(),
        [Run {
            task: TaskId(2),
            attempt: 1
        }]
    );
    drop(scheduler.schedule());
    assert_eq!(placed(&mut scheduler), [1, 2]);
}

#[test]
fn gang_members_are_never_preempted_and_a_drain_requeues_the_gang() {
    let (mut scheduler, _) = running_gang(SchedulerConfig::default());
    // Six of eight cores are the gang's (priority 128): a task of higher
    // priority that needs four finds no victim.
    let urgent = TaskSpec::new(TaskId(10), Resources::new(4_000, 64)).with_priority(Priority(200));
    scheduler.submit(&urgent).unwrap();
    assert!(placed(&mut scheduler).is_empty());
    assert_eq!(running(&scheduler, 1..=3), [1, 2, 3]);
    scheduler.cancel(TaskId(10)).unwrap();

    let drained = scheduler.drain(NodeId(1)).unwrap();
    assert!(drained.moved.is_empty(), "{drained:?}");
    assert_eq!(drained.requeued.len(), 2);
    let stopped = scheduler.expire_timeouts();
    assert_eq!(
        stopped,
        [Run {
            task: TaskId(3),
            attempt: 1
        }]
    );
    assert!(running(&scheduler, 1..=3).is_empty());
    // Node 2 alone (4 cores) cannot hold the gang (6): it waits whole.
    drop(scheduler.schedule());
    assert!(placed(&mut scheduler).is_empty());
    assert!(running(&scheduler, 1..=3).is_empty());
    scheduler.uncordon(NodeId(1)).unwrap();
}

#[test]
fn a_plan_places_a_gang_whole_or_says_why_it_waits() {
    let (scheduler, _) = scheduler(&[4, 4], SchedulerConfig::default());
    let fits = Gang::new("fits", 2);
    let plan = scheduler
        .plan(first_fit(), &[member(1, 3, &fits), member(2, 3, &fits)])
        .unwrap();
    let placed: Vec<u64> = plan.placed.iter().map(|p| p.task.0).collect();
    assert_eq!(placed, [1, 2]);
    let big = Gang::new("big", 3);
    let tasks = [member(1, 3, &big), member(2, 3, &big), member(3, 3, &big)];
    let plan = scheduler.plan(first_fit(), &tasks).unwrap();
    assert!(plan.placed.is_empty());
    assert_eq!(plan.waiting.len(), 3);
    assert!(
        plan.waiting[0]
            .gang
            .as_ref()
            .unwrap()
            .contains("found room for 2 of the 3 members"),
        "{:?}",
        plan.waiting[0]
    );
    assert_eq!(scheduler.task_counts().total(), 0);
}

#[derive(Debug, Clone)]
enum Op {
    Submit { gang: usize, cores: u64 },
    Schedule,
    Complete(usize),
    Fail(usize),
    NodeDown(u64),
    NodeUp(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 1..=3u64).prop_map(|(gang, cores)| Op::Submit { gang, cores }),
        3 => Just(Op::Schedule),
        1 => any::<usize>().prop_map(Op::Complete),
        1 => any::<usize>().prop_map(Op::Fail),
        1 => (1..=3u64).prop_map(Op::NodeDown),
        1 => (1..=3u64).prop_map(Op::NodeUp),
    ]
}

proptest! {
    /// Through submissions, cycles, completions, failures and nodes going
    /// down and up, once the runs `expire_timeouts` returns are stopped, a
    /// gang none of whose members completed runs none or at least
    /// `min_available` of its members — never part of the gang.
    #[test]
    fn a_gang_never_runs_partly_started(ops in proptest::collection::vec(op(), 1..80)) {
        let config = SchedulerConfig {
            retry_batch: RetryPolicy::IMMEDIATE,
            ..SchedulerConfig::default()
        };
        let (mut scheduler, clock) = scheduler(&[4, 4, 4], config);
        let gangs = [Gang::new("a", 2), Gang::new("b", 3), Gang::new("c", 1)];
        let mut members: Vec<(u64, usize)> = Vec::new();
        let mut completed = [false; 3];
        let mut now = 0;
        for op in ops {
            let live: Vec<u64> = running(&scheduler, members.iter().map(|m| m.0));
            match op {
                Op::Submit { gang, cores } => {
                    let id = members.len() as u64 + 1;
                    scheduler.submit(&member(id, cores, &gangs[gang])).unwrap();
                    members.push((id, gang));
                }
                Op::Schedule => {
                    now += 11_000_000;
                    clock.set(Timestamp(now));
                    drop(scheduler.expire_timeouts());
                    drop(scheduler.schedule());
                }
                Op::Complete(i) if !live.is_empty() => {
                    let id = live[i % live.len()];
                    let gang = members[id as usize - 1].1;
                    completed[gang] = true;
                    scheduler.complete(scheduler.current_run(TaskId(id)).unwrap()).unwrap();
                }
                Op::Fail(i) if !live.is_empty() => {
                    let id = live[i % live.len()];
                    scheduler.fail(scheduler.current_run(TaskId(id)).unwrap(), "exit 1").unwrap();
                }
                Op::NodeDown(node) => drop(scheduler.handle(Event::NodeDown(NodeId(node)))),
                Op::NodeUp(node) => drop(scheduler.handle(Event::NodeUp(NodeId(node)))),
                _ => {}
            }
            drop(scheduler.expire_timeouts());
            let mut per_gang: BTreeMap<usize, usize> = BTreeMap::new();
            for id in running(&scheduler, members.iter().map(|m| m.0)) {
                *per_gang.entry(members[id as usize - 1].1).or_default() += 1;
            }
            for (gang, count) in per_gang {
                let min = gangs[gang].min_available as usize;
                prop_assert!(
                    completed[gang] || count >= min,
                    "gang {} runs {} of its {} needed", gangs[gang].name, count, min
                );
            }
            prop_assert_eq!(scheduler.stale_queue_entries(), 0);
            let counts = scheduler.task_counts();
            prop_assert_eq!(counts.total(), members.len());
        }
    }
}
