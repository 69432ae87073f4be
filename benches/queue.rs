// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

//! `queue`: push+pop throughput of Lepton's lock-free `TaskQueue` against a
//! `parking_lot::Mutex<BinaryHeap>` (the usual priority queue behind a lock)
//! and a `crossbeam_channel` (lock-free but FIFO only, no priorities), with
//! 1, 2 and 4 threads each pushing and popping its share of the items.
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

/// `threads` threads each push and pop `ITEMS / threads` items, alternating
/// bursts of pushes and pops; returns the wall time.
fn run(queue: &impl Queue, threads: u64) -> Duration {
    let per_thread = ITEMS / threads;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                let mut popped = 0;
                for i in 0..per_thread {
                    queue.push(((i + t) % LEVELS) as u8, t * per_thread + i);
                    if i % 4 == 3 {
                        for _ in 0..4 {
                            popped += u64::from(queue.pop().is_some());
                        }
                    }
                }
                // Drain what this thread still owes.
                while popped < per_thread {
                    popped += u64::from(queue.pop().is_some());
                    if popped < per_thread {
                        std::hint::spin_loop();
                    }
                }
            });
        }
    });
    started.elapsed()
}

fn queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(ITEMS));
    for threads in [1u64, 2, 4] {
        let id = |name: &str| BenchmarkId::new(name, format!("{threads}t"));
        group.bench_function(id("lepton"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| run(&TaskQueue::<u64>::new(), threads))
                    .sum()
            })
        });
        group.bench_function(id("mutex_binaryheap"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| run(&MutexHeap::default(), threads))
                    .sum()
            })
        });
        group.bench_function(id("crossbeam_channel"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (sender, receiver) = crossbeam_channel::unbounded();
                        run(&Channel(sender, receiver), threads)
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, queue);
criterion_main!(benches);
