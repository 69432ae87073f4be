// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

//! `submit` and `submit_to_completion`: 4 submitter threads hand tasks to
//! a scheduler while 1 scheduling thread runs cycles on them. `handle`
//! submits through cloned `Submitter`s while the scheduling thread owns the
//! scheduler; `mutex` (the baseline) shares the scheduler as a
//! `parking_lot::Mutex<CoreScheduler>`, which every submission and every
//! cycle locks.
//!
//! One iteration is a fixed batch: a fresh scheduler (first fit, 100 nodes
//! of 64 cores that hold the whole batch, so no task ever waits for room),
//! then 4 × 10,000 tasks of 0.1 core across 8 priorities. The scheduling
//! thread runs cycles and completes every task it is handed at once, until
//! the batch has completed; it yields when a cycle finds nothing.
//! - `submit` times the submitters: from their start until the last one's
//!   last submission was accepted (tasks accepted per second, while the
//!   scheduling thread works).
//! - `submit_to_completion` times the whole batch: until the scheduling
//!   thread has placed and completed the last task.
//!
//! Each group runs each contender twice: with cycles that take every queued
//! task (the default; `handle`, `mutex`) and with cycles of at most
//! [`CYCLE_LIMIT`] tasks (`max_tasks_per_cycle`; `handle_cycles_of_128`,
//! `mutex_cycles_of_128`).
//!
//! Run: `cargo bench --bench submit`.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use lepton::model::Priority;
use lepton::policies::FirstFit;
use lepton::scheduler::SchedulerConfig;
use lepton::{CoreScheduler, NodeId, NodeSpec, Resources, Scheduler, TaskId, TaskSpec};
use parking_lot::Mutex;

const SUBMITTERS: u64 = 4;
const PER_SUBMITTER: u64 = 10_000;
const BATCH: usize = (SUBMITTERS * PER_SUBMITTER) as usize;
/// The limited contenders' `max_tasks_per_cycle`.
const CYCLE_LIMIT: usize = 128;

fn scheduler(max_tasks_per_cycle: Option<usize>) -> CoreScheduler {
    let mut config = SchedulerConfig::default();
    config.max_tasks_per_cycle = max_tasks_per_cycle.and_then(NonZeroUsize::new);
    let mut scheduler = CoreScheduler::builder(Box::new(FirstFit))
        .config(config)
        .build();
    for id in 0..100 {
        let node = NodeSpec::new(NodeId(id), Resources::new(64_000, 262_144));
        scheduler.add_node(&node).expect("valid node");
    }
    scheduler
}

/// The `i`-th task of submitter `submitter`.
fn task(submitter: u64, i: u64) -> TaskSpec {
    TaskSpec::new(
        TaskId(submitter * PER_SUBMITTER + i),
        Resources::new(100, 256),
    )
    .with_priority(Priority((i % 8) as u8))
}

/// Runs cycles with `cycle` (which returns how many tasks it completed)
/// until the batch has completed.
///
/// # Panics
/// After a minute without the whole batch: a submitter failed.
fn schedule_batch(cycle: &mut impl FnMut() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut completed = 0;
    while completed < BATCH {
        assert!(
            Instant::now() < deadline,
            "{completed} of {BATCH} tasks completed"
        );
        match cycle() {
            0 => std::thread::yield_now(),
            n => completed += n,
        }
    }
}

/// One cycle: places what is queued and completes it at once.
fn cycle(scheduler: &mut CoreScheduler) -> usize {
    let assignments = scheduler.schedule();
    for assignment in &assignments {
        scheduler
            .complete(assignment.run())
            .expect("a run just placed completes");
    }
    assignments.len()
}

/// When a batch started, when its last submission was accepted, and when
/// its last task completed.
struct Timings {
    started: Instant,
    accepted: Instant,
    completed: Instant,
}

/// Runs one batch: `submit(s, task)` in each submitter thread `s`, `cycle`
/// in this thread.
fn run_batch(submit: impl Fn(u64, &TaskSpec) + Sync, mut cycle: impl FnMut() -> usize) -> Timings {
    let started = Instant::now();
    std::thread::scope(|scope| {
        let submitters: Vec<_> = (0..SUBMITTERS)
            .map(|s| {
                let submit = &submit;
                scope.spawn(move || {
                    for i in 0..PER_SUBMITTER {
                        submit(s, &task(s, i));
                    }
                    Instant::now()
                })
            })
            .collect();
        schedule_batch(&mut cycle);
        let completed = Instant::now();
        let accepted = submitters
            .into_iter()
            .map(|submitter| submitter.join().expect("a submitter panicked"))
            .max()
            .unwrap_or(started);
        Timings {
            started,
            accepted,
            completed,
        }
    })
}

fn through_handle(max_tasks_per_cycle: Option<usize>) -> Timings {
    let mut scheduler = scheduler(max_tasks_per_cycle);
    let submitter = scheduler.submitter();
    run_batch(
        |_, task| {
            submitter.submit(task).expect("valid, unique task");
        },
        || cycle(&mut scheduler),
    )
}

fn through_mutex(max_tasks_per_cycle: Option<usize>) -> Timings {
    let scheduler = Mutex::new(scheduler(max_tasks_per_cycle));
    run_batch(
        |_, task| {
            scheduler.lock().submit(task).expect("valid, unique task");
        },
        || cycle(&mut scheduler.lock()),
    )
}

/// One group: both contenders, timed by `span` of each batch.
fn bench_group(c: &mut Criterion, name: &str, span: fn(&Timings) -> Duration) {
    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20);
    let contenders = [
        ("handle", through_handle as fn(Option<usize>) -> Timings),
        ("mutex", through_mutex),
    ];
    for limit in [None, Some(CYCLE_LIMIT)] {
        for (contender, run) in contenders {
            let name = match limit {
                None => contender.to_string(),
                Some(limit) => format!("{contender}_cycles_of_{limit}"),
            };
            group.bench_function(BenchmarkId::new(name, SUBMITTERS), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| span(&run(limit))).sum())
            });
        }
    }
    group.finish();
}

/// `submit`: tasks accepted per second.
fn submit(c: &mut Criterion) {
    bench_group(c, "submit", |t| t.accepted - t.started);
}

/// `submit_to_completion`: tasks placed and completed per second.
fn submit_to_completion(c: &mut Criterion) {
    bench_group(c, "submit_to_completion", |t| t.completed - t.started);
}

criterion_group!(benches, submit, submit_to_completion);
criterion_main!(benches);
