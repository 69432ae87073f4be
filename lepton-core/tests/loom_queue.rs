//! Model check of [`TaskQueue`]'s own lock-free logic — the bitmap of
//! non-empty levels, the clear-then-recheck in `pop`, and the aging cursor —
//! and of what the [`Submitter`] handle builds on it: the claim of an id,
//! the count of accepted submissions and their take-in by a cycle.
//!
//! Built only with `--cfg loom`, which makes the queue use loom's atomics
//! and a loom-visible stand-in for each level's `SegQueue`, and the claimed
//! ids loom's mutex (see `src/sync.rs`). Every scenario runs its threads
//! under every interleaving loom distinguishes. The queue's scenarios then
//! check at quiescence that no item was lost or duplicated and that no item
//! is left behind a cleared bit: `pop` finds it and `len`/`is_empty` count
//! it. The handle's check that an id is accepted once, counted once (and
//! as soon as a thread has seen it accepted) and placed once, or never if
//! it was cancelled first.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p lepton-core --release --test loom_queue
//! ```
//!
//! The search is exhaustive (no preemption bound): a few seconds in release.
//! A bigger scenario may need `LOOM_MAX_PREEMPTIONS=3` to stay fast.
#![cfg(loom)]

use std::num::NonZeroU32;

use lepton_core::clock::ManualClock;
use lepton_core::model::Priority;
use lepton_core::queue::TaskQueue;
use lepton_core::scheduler::{Submitter, TaskState};
use lepton_core::{
    policy_fn, CoreScheduler, Error, FeasibleNodes, NodeId, NodeSpec, Placement, Resources,
    Scheduler, TaskId, TaskSpec,
};
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

fn spawn_push(queue: &Arc<TaskQueue<u32>>, priority: u8, item: u32) -> thread::JoinHandle<()> {
    let queue = Arc::clone(queue);
    thread::spawn(move || queue.push(Priority(priority), item))
}

fn spawn_pop(queue: &Arc<TaskQueue<u32>>) -> thread::JoinHandle<Option<(Priority, u32)>> {
    let queue = Arc::clone(queue);
    thread::spawn(move || queue.pop())
}

fn join<T>(handle: thread::JoinHandle<T>) -> T {
    handle.join().expect("a model thread panicked")
}

/// Checks the quiescent queue: it holds exactly `expected_left` items, and
/// draining it returns them and leaves it empty. Returns what was drained.
fn drain_quiescent(queue: &TaskQueue<u32>, expected_left: usize) -> Vec<(Priority, u32)> {
    assert_eq!(queue.len(), expected_left, "len() at quiescence");
    assert_eq!(
        queue.is_empty(),
        expected_left == 0,
        "is_empty() at quiescence"
    );
    let left = queue.drain();
    assert_eq!(
        left.len(),
        expected_left,
        "pop() skipped an item left in the queue"
    );
    assert_eq!(queue.len(), 0);
    assert!(queue.is_empty());
    assert_eq!(queue.pop(), None);
    left
}

/// Leaves `priority`'s bit set over an empty level, as a successful pop of
/// the level's last item does: the next pop there finds it empty and clears
/// the bit, which is the race the re-check in `pop` exists for.
fn stale_bit(queue: &TaskQueue<u32>, priority: u8) {
    queue.push(Priority(priority), u32::MAX);
    assert_eq!(queue.pop(), Some((Priority(priority), u32::MAX)));
}

fn sorted_items(popped: impl IntoIterator<Item = (Priority, u32)>) -> Vec<u32> {
    let mut items: Vec<u32> = popped.into_iter().map(|(_, item)| item).collect();
    items.sort_unstable();
    items
}

/// Scenario 1: two pushers on one level and a popper, then a drain: every
/// item comes out exactly once, with its own priority.
#[test]
fn two_pushers_one_popper_lose_and_duplicate_nothing() {
    loom::model(|| {
        let queue = Arc::new(TaskQueue::new());
        let pushers = [spawn_push(&queue, 3, 1), spawn_push(&queue, 3, 2)];
        let popped = queue.pop();
        pushers.into_iter().for_each(join);

        let left = drain_quiescent(&queue, 2 - usize::from(popped.is_some()));
        let all: Vec<_> = popped.into_iter().chain(left).collect();
        assert!(all.iter().all(|&(priority, _)| priority == Priority(3)));
        assert_eq!(sorted_items(all), vec![1, 2]);
    });
}

/// Scenario 2a, the missed wake-up on one level: a popper finds the level
/// empty behind a stale bit and clears the bit while a push lands there.
#[test]
fn push_racing_a_clear_on_its_level_is_not_missed() {
    loom::model(|| {
        let queue = Arc::new(TaskQueue::new());
        stale_bit(&queue, 7);
        let pusher = spawn_push(&queue, 7, 1);
        let popped = queue.pop();
        join(pusher);

        let left = drain_quiescent(&queue, usize::from(popped.is_none()));
        assert_eq!(
            popped.into_iter().chain(left).collect::<Vec<_>>(),
            vec![(Priority(7), 1)]
        );
    });
}

/// Scenario 2b: the popper clears a stale bit on level B while a push on
/// level A sets A's bit in the same bitmap word; neither update may undo
/// the other.
#[test]
fn clearing_one_level_keeps_a_concurrent_push_on_another() {
    loom::model(|| {
        let queue = Arc::new(TaskQueue::new());
        stale_bit(&queue, 9);
        let pusher = spawn_push(&queue, 2, 1);
        let popped = queue.pop();
        join(pusher);

        let left = drain_quiescent(&queue, usize::from(popped.is_none()));
        assert_eq!(
            popped.into_iter().chain(left).collect::<Vec<_>>(),
            vec![(Priority(2), 1)]
        );
    });
}

/// Scenario 3: two poppers race for one item: exactly one gets it.
#[test]
fn two_poppers_one_item_exactly_one_wins() {
    loom::model(|| {
        let queue = Arc::new(TaskQueue::new());
        queue.push(Priority(4), 1);
        let other = spawn_pop(&queue);
        let mine = queue.pop();
        let theirs = join(other);

        assert_eq!(
            mine.into_iter().chain(theirs).collect::<Vec<_>>(),
            vec![(Priority(4), 1)]
        );
        drain_quiescent(&queue, 0);
    });
}

/// Scenario 4: aging on (every second pop is a round-robin turn). Two
/// poppers race on the pop counter and the cursor while a push lands on a
/// level whose bit is stale; nothing is lost, duplicated or left behind.
#[test]
fn aging_pops_race_a_push_without_loss() {
    loom::model(|| {
        let queue = Arc::new(TaskQueue::with_aging(
            NonZeroU32::new(2).expect("2 is not zero"),
        ));
        stale_bit(&queue, 1);
        queue.push(Priority(200), 1);
        let pusher = spawn_push(&queue, 1, 2);
        let other = spawn_pop(&queue);
        let mine = queue.pop();
        let theirs = join(other);
        join(pusher);

        let popped: Vec<_> = mine.into_iter().chain(theirs).collect();
        let left = drain_quiescent(&queue, 2 - popped.len());
        assert_eq!(sorted_items(popped.into_iter().chain(left)), vec![1, 2]);
    });
}

// ---------------------------------------------------------------------------
// The submission handle: claims, counts and take-in around the queue.

/// A scheduler with one node. Its clock is manual: loom replays every
/// execution, so nothing may hang on the system time.
fn handle_scheduler() -> CoreScheduler {
    let first_fit = policy_fn("first-fit", |nodes: &FeasibleNodes<'_>| {
        nodes.first_fit().map(|node| Placement::on(node.id()))
    });
    let mut scheduler = CoreScheduler::builder(Box::new(first_fit))
        .clock(std::sync::Arc::new(ManualClock::new()))
        .build();
    let node = NodeSpec::new(NodeId(1), Resources::new(8_000, 8_192));
    scheduler.add_node(&node).expect("a valid node");
    scheduler
}

/// Runs `body` as the model, on a loom thread of a large stack: the
/// model's own body runs on a coroutine stack of 32 KiB, which a
/// scheduler (5.6 KiB) and its cycle's frames came to overflow.
fn model_with_stack(body: impl Fn() + Send + Sync + 'static) {
    let body = std::sync::Arc::new(body);
    loom::model(move || {
        let body = std::sync::Arc::clone(&body);
        let runner = thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || body())
            .expect("a loom thread");
        runner.join().expect("the model body");
    });
}

fn small_task(id: u64) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(1_000, 1_024))
}

/// Submits `id` through a clone of `submitter`, then raises `acknowledged`
/// if it was accepted.
fn spawn_submit(
    submitter: &Submitter,
    id: u64,
    acknowledged: &Arc<AtomicBool>,
) -> thread::JoinHandle<Result<TaskId, Error>> {
    let (submitter, acknowledged) = (submitter.clone(), Arc::clone(acknowledged));
    thread::spawn(move || {
        let result = submitter.submit(&small_task(id));
        if result.is_ok() {
            acknowledged.store(true, Ordering::Release);
        }
        result
    })
}

/// Scenario 5: two handles submit the same id while the scheduler runs a
/// cycle. Exactly one is accepted; once a thread has seen it accepted, the
/// counts include it; the task is placed exactly once.
#[test]
fn a_duplicate_submitted_during_a_cycle_is_accepted_and_placed_once() {
    model_with_stack(|| {
        let mut scheduler = handle_scheduler();
        let submitter = scheduler.submitter();
        let acknowledged = Arc::new(AtomicBool::new(false));
        let first = spawn_submit(&submitter, 1, &acknowledged);
        let second = spawn_submit(&submitter, 1, &acknowledged);

        let mut placed = scheduler.schedule();
        // Counted once (never twice, never below zero) whenever it is
        // counted, and surely once a thread has seen it accepted.
        let seen_accepted = acknowledged.load(Ordering::Acquire);
        let counts = scheduler.task_counts();
        assert!(counts.queued <= 1 && counts.running <= 1, "{counts:?}");
        if seen_accepted {
            assert_eq!(counts.total(), 1, "an accepted task uncounted: {counts:?}");
        }
        let results = [join(first), join(second)];
        placed.extend(scheduler.schedule());

        let accepted = results.iter().filter(|r| **r == Ok(TaskId(1))).count();
        assert_eq!(accepted, 1, "{results:?}");
        assert!(results.contains(&Err(Error::DuplicateTask { task: TaskId(1) })));
        let tasks: Vec<TaskId> = placed.iter().map(|a| a.task).collect();
        assert_eq!(tasks, vec![TaskId(1)]);
        let counts = scheduler.task_counts();
        assert_eq!((counts.running, counts.total()), (1, 1));
        assert_eq!(scheduler.queue_len(), 0);
    });
}

/// Scenario 6: the scheduler cancels a handle submission it sees as queued
/// — possibly claimed but not pushed yet — and runs a cycle while the push
/// lands. The task is never placed, it is counted as cancelled exactly
/// once, and its queue entry is dropped when reached.
#[test]
fn a_submission_cancelled_before_it_is_taken_in_never_runs() {
    model_with_stack(|| {
        let mut scheduler = handle_scheduler();
        let submitter = scheduler.submitter();
        let submit = thread::spawn(move || submitter.submit(&small_task(1)));

        let cancelled = scheduler.task_state(TaskId(1)) == Some(&TaskState::Queued)
            && scheduler.cancel(TaskId(1)).is_ok();
        let mut placed = scheduler.schedule();
        assert_eq!(join(submit), Ok(TaskId(1)));
        placed.extend(scheduler.schedule());

        let counts = scheduler.task_counts();
        assert_eq!(counts.total(), 1);
        assert_eq!(scheduler.queue_len(), 0);
        assert_eq!(scheduler.stale_queue_entries(), 0);
        if cancelled {
            assert!(placed.is_empty(), "a cancelled task ran: {placed:?}");
            assert_eq!(counts.cancelled, 1);
            assert_eq!(scheduler.task_state(TaskId(1)), Some(&TaskState::Cancelled));
        } else {
            assert_eq!(placed.len(), 1);
            assert_eq!(counts.running, 1);
        }
    });
}
