// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

//! `queue` and `queue_mixed`: push+pop throughput of Lepton's lock-free
//! `TaskQueue` against a `parking_lot::Mutex<BinaryHeap>` (the usual
//! priority queue behind a lock) and a `crossbeam_channel` (lock-free but
//! FIFO only, no priorities), with 1, 2 and 4 threads, 100,000 items over 8
//! priority levels. `queue` splits the threads into producers and consumers
//! (one thread: all pushes, then all pops); `queue_mixed` has every thread
//! push and pop four at a time.
//!
//! Run: `cargo bench --bench queue`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lepton::{Priority, TaskQueue};
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
        (Shape::Split, _) => {
            let producers = threads / 2;
            let popped = AtomicU64::new(0);
            std::thread::scope(|scope| {
                for p in 0..producers {
                    scope.spawn(move || {
                        let share = ITEMS / producers;
                        for i in 0..share {
                            queue.push((i % LEVELS) as u8, p * share + i);
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

fn bench_shape(c: &mut Criterion, group_name: &str, shape: Shape) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(ITEMS));
    for threads in [1u64, 2, 4] {
        let id = |name: &str| BenchmarkId::new(name, format!("{threads}t"));
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
    bench_shape(c, "queue", Shape::Split);
}

/// `queue_mixed`: every thread both pushes and pops.
fn queue_mixed(c: &mut Criterion) {
    bench_shape(c, "queue_mixed", Shape::Mixed);
}

criterion_group!(benches, queue, queue_mixed);
criterion_main!(benches);
