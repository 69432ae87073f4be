// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

//! `queue`, `queue_mixed` and `queue_intake`: push+pop throughput of
//! Lepton's lock-free `TaskQueue` against a `parking_lot::Mutex<BinaryHeap>`
//! (the usual priority queue behind a lock) and a `crossbeam_channel`
//! (lock-free but FIFO only, no priorities), 100,000 items over 8 priority
//! levels. `queue` splits 1, 2 or 4 threads into producers and consumers
//! (one thread: all pushes, then all pops); `queue_mixed` has each of 1, 2
//! or 4 threads push and pop four at a time; `queue_intake` has 1, 2 or 4
//! threads push while one more pops, the shape of a scheduler fed through
//! `Submitter` handles.
//!
//! Run: `cargo bench --bench queue`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lepton::model::Priority;
use lepton::queue::TaskQueue;
use parking_lot::Mutex;

/// Push+pop pairs per iteration, split over the threads.
const ITEMS: u64 = 100_000;
/// Priorities cycle over this many levels.
const LEVELS: u64 = 8;

/// What every contender offers: push with a priority, pop the best.
trait Queue: Sync {
    fn push(&self, priority: u8, item: u64);
    fn pop(&self) -> Option<u64>;
}

impl Queue for TaskQueue<u64> {
    fn push(&self, priority: u8, item: u64) {
        TaskQueue::push(self, Priority(priority), item);
    }
    fn pop(&self) -> Option<u64> {
        TaskQueue::pop(self).map(|(_, item)| item)
    }
}

/// Priority first, then FIFO by sequence number, like `TaskQueue`.
#[derive(Default)]
struct MutexHeap {
    heap: Mutex<BinaryHeap<(u8, Reverse<u64>, u64)>>,
    sequence: AtomicU64,
}

impl Queue for MutexHeap {
    fn push(&self, priority: u8, item: u64) {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.heap.lock().push((priority, Reverse(sequence), item));
    }
    fn pop(&self) -> Option<u64> {
        self.heap.lock().pop().map(|(_, _, item)| item)
    }
}

struct Channel(
    crossbeam_channel::Sender<u64>,
    crossbeam_channel::Receiver<u64>,
);

impl Queue for Channel {
    fn push(&self, _priority: u8, item: u64) {
        // The receiver lives as long as the sender: sending cannot fail.
        let _ = self.0.send(item);
    }
    fn pop(&self) -> Option<u64> {
        self.1.try_recv().ok()
    }
}

/// How the threads use the queue.
#[derive(Clone, Copy)]
enum Shape {
    /// Submitters and schedulers: half the threads push, the others pop
    /// (one thread pushes everything, then pops everything).
    Split,
    /// Every thread pushes and pops, four at a time.
    Mixed,
    /// All threads but one push; that one pops everything.
    Intake,
}

/// Moves `ITEMS` items through `queue` with `threads` threads; the wall time.
fn run(queue: &impl Queue, threads: u64, shape: Shape) -> Duration {
    let started = Instant::now();
    match (shape, threads) {
        (Shape::Split, 1) => {
            for i in 0..ITEMS {
                queue.push((i % LEVELS) as u8, i);
            }
            while queue.pop().is_some() {}
        }
        (Shape::Split | Shape::Intake, _) => {
            let producers = match shape {
                Shape::Intake => threads - 1,
                _ => threads / 2,
            };
            let popped = AtomicU64::new(0);
            std::thread::scope(|scope| {
                for p in 0..producers {
                    scope.spawn(move || {
                        for item in p * ITEMS / producers..(p + 1) * ITEMS / producers {
                            queue.push((item % LEVELS) as u8, item);
                        }
                    });
                }
                for _ in producers..threads {
                    scope.spawn(|| {
                        while popped.load(Ordering::Relaxed) < ITEMS {
                            if queue.pop().is_some() {
                                popped.fetch_add(1, Ordering::Relaxed);
                            } else {
                                std::hint::spin_loop();
                            }
                        }
                    });
                }
            });
        }
        (Shape::Mixed, _) => {
            let share = ITEMS / threads;
            std::thread::scope(|scope| {
                for t in 0..threads {
                    scope.spawn(move || {
                        let mut popped = 0;
                        for i in 0..share {
                            queue.push(((i + t) % LEVELS) as u8, t * share + i);
                            if i % 4 == 3 {
                                for _ in 0..4 {
                                    popped += u64::from(queue.pop().is_some());
                                }
                            }
                        }
                        while popped < share {
                            popped += u64::from(queue.pop().is_some());
                        }
                    });
                }
            });
        }
    }
    started.elapsed()
}

/// One group: every contender, with each of `thread_counts` threads (named
/// by `label`).
fn bench_shape(
    c: &mut Criterion,
    group_name: &str,
    shape: Shape,
    thread_counts: [u64; 3],
    label: fn(u64) -> String,
) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(ITEMS));
    for threads in thread_counts {
        let id = |name: &str| BenchmarkId::new(name, label(threads));
        group.bench_function(id("lepton"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| run(&TaskQueue::<u64>::new(), threads, shape))
                    .sum()
            })
        });
        group.bench_function(id("mutex_binaryheap"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| run(&MutexHeap::default(), threads, shape))
                    .sum()
            })
        });
        group.bench_function(id("crossbeam_channel"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (sender, receiver) = crossbeam_channel::unbounded();
                        run(&Channel(sender, receiver), threads, shape)
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

/// `queue`: submitters and schedulers on separate threads, the way an
/// orchestrator uses the queue.
fn queue(c: &mut Criterion) {
    bench_shape(c, "queue", Shape::Split, [1, 2, 4], |t| format!("{t}t"));
}

/// `queue_mixed`: every thread both pushes and pops.
fn queue_mixed(c: &mut Criterion) {
    bench_shape(c, "queue_mixed", Shape::Mixed, [1, 2, 4], |t| {
        format!("{t}t")
    });
}

/// `queue_intake`: pushers and one popper, named `<pushers>+1t`.
fn queue_intake(c: &mut Criterion) {
    bench_shape(c, "queue_intake", Shape::Intake, [2, 3, 5], |t| {
        format!("{}+1t", t - 1)
    });
}

criterion_group!(benches, queue, queue_mixed, queue_intake);
criterion_main!(benches);
