//! Submission from many threads: the [`Submitter`] handle, and the
//! scheduler's end of it ([`Intake`]).
//!
//! Why: [`CoreScheduler`] is a state machine one thread drives through
//! `&mut self`, but its queue is a lock-free multi-producer queue. A
//! `Submitter` is a cloneable, `Send + Sync` handle to that queue: any number
//! of threads submit through it, without waiting for the thread that runs
//! scheduling cycles, and still learn at once whether the task was accepted.
//!
//! Design:
//! - **The task travels through the queue itself.** A queue [`Entry`] is
//!   either a task the scheduler already holds a record of (its id), or a
//!   new submission (its boxed spec). The cycle that pops a new submission
//!   takes it in — the box becomes the task's record, no copy — and places
//!   it at once like any queued task. There is no second queue, and the
//!   queue's priority order holds for handle submissions too.
//! - **An id is claimed once, for good**, in a set both the handles and
//!   [`CoreScheduler::submit`](crate::Scheduler::submit) check: 16 shards,
//!   each a mutex around a hash set, chosen by the id's hash. A submission
//!   holds one shard for one insert, so two threads rarely meet on a shard;
//!   a duplicate id is refused at once, whichever path submitted it first.
//!   The set is filled from the first handle on (with the ids submitted
//!   before it): a scheduler that never hands one out checks its own
//!   records only, and its submissions cost no second insert.
//! - **Counts include what is still in the queue.** Each shard also counts
//!   the handle submissions it accepted (under its lock, before the push);
//!   the scheduler counts those it took in or cancelled before. The
//!   difference is what [`report`](crate::Scheduler::report) adds to
//!   `queued`, so a task is counted from the moment its submission is
//!   accepted.
//! - **A cycle is bounded**: it takes at most the entries queued when it
//!   began, plus those it queues itself, so a steady stream of submissions
//!   cannot keep one cycle from ending.
//!
//! Until a cycle takes it in, a handle submission is known by its id only:
//! [`task_state`](CoreScheduler::task_state) says it is queued and
//! [`cancel`](crate::Scheduler::cancel) works, but
//! [`task`](CoreScheduler::task) has no spec to show yet.

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use foldhash::HashSet;

use super::{CoreScheduler, TaskRecord, TaskState};
use crate::error::Error;
use crate::queue::TaskQueue;
use crate::sync::{lock, AtomicU64, Mutex};
use crate::task::{Priority, Task, TaskId, TaskSpec};

/// Shards of the claimed-id set: enough that four to eight submitting
/// threads seldom wait for each other.
const SHARDS: usize = 16;

/// What the queue holds.
#[derive(Debug)]
pub(super) enum Entry {
    /// A task the scheduler holds a record of.
    Known(TaskId),
    /// A submission through a [`Submitter`], not taken in yet.
    Submitted(Box<TaskSpec>),
}

/// One shard of the claimed ids.
#[derive(Debug, Default)]
struct Shard {
    ids: Mutex<HashSet<TaskId>>,
    /// Handle submissions this shard accepted; written under `ids`' lock.
    submitted: AtomicU64,
}

/// What the scheduler and its handles share.
struct Shared {
    queue: TaskQueue<Entry>,
    shards: [CachePadded<Shard>; SHARDS],
    /// Set (to 1) when the scheduler is dropped: no cycle will take in
    /// another submission, so handles refuse them.
    scheduler_dropped: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The shard of `task`, from the top bits of a Fibonacci hash of the
    /// id, so consecutive ids spread over every shard. Ids made to collide
    /// only contend on one shard's lock. (A fixed hash also keeps the loom
    /// model check deterministic.)
    fn shard(&self, task: TaskId) -> &Shard {
        let top = task.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        &self.shards[((top * SHARDS as u64) >> 32) as usize]
    }

    /// Claims `task`'s id for good. A handle submission (`from_handle`) is
    /// also counted as waiting to be taken in, before its entry is pushed.
    ///
    /// # Errors
    /// [`Error::DuplicateTask`] when the id was claimed before.
    fn claim(&self, task: TaskId, from_handle: bool) -> Result<(), Error> {
        let shard = self.shard(task);
        let mut ids = lock(&shard.ids);
        if !ids.insert(task) {
            return Err(Error::DuplicateTask { task });
        }
        if from_handle {
            shard.submitted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn is_claimed(&self, task: TaskId) -> bool {
        lock(&self.shard(task).ids).contains(&task)
    }

    /// Handle submissions accepted so far. Every one whose entry the caller
    /// popped is included: its count was written before its push.
    fn submitted(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.submitted.load(Ordering::Relaxed))
            .sum()
    }
}

/// A handle through which any thread submits tasks to a [`CoreScheduler`]
/// while another thread runs its cycles. Cheap to clone; `Send + Sync`.
///
/// A task it accepts is validated and its id claimed in the submitting
/// thread, so errors come back at once; it then waits in the scheduler's
/// queue, in priority order, and the next cycle places it. Once the
/// scheduler is dropped, a handle refuses every task
/// ([`Error::SchedulerDropped`]) instead of accepting work nobody will take
/// in; tasks accepted before go with the rest of its queue, like those
/// submitted to it directly.
///
/// ```
/// use lepton_core::{
///     policy_fn, CoreScheduler, Error, FeasibleNodes, NodeId, NodeSpec, Placement, Resources,
///     Scheduler, TaskId, TaskSpec,
/// };
///
/// let first_fit = policy_fn("first-fit", |nodes: &FeasibleNodes<'_>| {
///     nodes.first_fit().map(|node| Placement::on(node.id()))
/// });
/// let mut scheduler = CoreScheduler::new(Box::new(first_fit));
/// scheduler.add_node(&NodeSpec::new(NodeId(1), Resources::new(64_000, 65_536)))?;
///
/// let submitter = scheduler.submitter();
/// std::thread::scope(|scope| {
///     for thread in 0..4 {
///         let submitter = submitter.clone();
///         scope.spawn(move || {
///             let task = TaskSpec::new(TaskId(thread), Resources::new(1_000, 1_024));
///             submitter.submit(&task)
///         });
///     }
/// });
/// // A duplicate is refused at once, in the submitting thread.
/// let again = TaskSpec::new(TaskId(0), Resources::new(1_000, 1_024));
/// assert_eq!(submitter.submit(&again), Err(Error::DuplicateTask { task: TaskId(0) }));
///
/// assert_eq!(scheduler.report().tasks.queued, 4);
/// assert_eq!(scheduler.schedule().len(), 4);
/// # Ok::<(), lepton_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Submitter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Submitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter")
            .field("queue_len", &self.shared.queue.len())
            .finish()
    }
}

impl Submitter {
    /// Validates a task, claims its id and queues it for the scheduler's
    /// next cycle. Takes no lock but one of 16 shards of the id set, for one
    /// insert.
    ///
    /// # Errors
    /// What [`TaskSpec::validate`] finds, or [`Error::DuplicateTask`] when
    /// the id was submitted before, through any handle or
    /// [`CoreScheduler::submit`](crate::Scheduler::submit). Nothing is
    /// queued then.
    pub fn submit(&self, task: &dyn Task) -> Result<TaskId, Error> {
        let spec = task.to_spec();
        spec.validate()?;
        let id = spec.id;
        if self.shared.scheduler_dropped.load(Ordering::SeqCst) != 0 {
            return Err(Error::SchedulerDropped { task: id });
        }
        self.shared.claim(id, true)?;
        self.shared
            .queue
            .push(spec.priority, Entry::Submitted(Box::new(spec)));
        Ok(id)
    }
}

/// The scheduler's end: its queue, the claimed ids, and what it took in.
#[derive(Debug)]
pub(super) struct Intake {
    shared: Arc<Shared>,
    /// Whether ids are claimed in `shared`'s set: from the first handle on.
    ids_shared: Cell<bool>,
    /// Handle submissions taken in so far.
    taken_in: u64,
    /// Handle submissions cancelled before they were taken in.
    cancelled: HashSet<TaskId>,
    /// Entries the scheduler itself pushed so far.
    pushed: u64,
}

/// How many more entries one cycle may take from the queue.
#[derive(Debug)]
pub(super) struct Cycle {
    left: usize,
    /// [`Intake::pushed`] when `left` was last brought up to date.
    pushed: u64,
    /// Whether the limit left entries queued when the cycle began for the
    /// next cycle.
    pub(super) cut_short: bool,
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.shared.scheduler_dropped.store(1, Ordering::SeqCst);
    }
}

impl Intake {
    pub(super) fn new(queue: TaskQueue<Entry>) -> Self {
        Intake {
            shared: Arc::new(Shared {
                queue,
                shards: Default::default(),
                scheduler_dropped: AtomicU64::new(0),
            }),
            ids_shared: Cell::new(false),
            taken_in: 0,
            cancelled: HashSet::default(),
            pushed: 0,
        }
    }

    /// Queues a task the scheduler holds a record of.
    pub(super) fn push(&mut self, priority: Priority, task: TaskId) {
        self.shared.queue.push(priority, Entry::Known(task));
        self.pushed += 1;
    }

    /// Entries in the queue, taken in or not.
    pub(super) fn len(&self) -> usize {
        self.shared.queue.len()
    }

    /// Handle submissions accepted and not taken in nor cancelled yet.
    pub(super) fn pending(&self) -> usize {
        let pending = self.shared.submitted() - self.taken_in - self.cancelled.len() as u64;
        usize::try_from(pending).unwrap_or(usize::MAX)
    }

    /// The bound of a cycle starting now: the entries queued now, at most
    /// `limit` of them, plus those the scheduler queues itself during the
    /// cycle (tasks its preemptions evict). Submissions that keep arriving
    /// meanwhile therefore cannot keep one cycle going for ever; those it
    /// leaves wait for the next.
    pub(super) fn cycle(&self, limit: Option<NonZeroUsize>) -> Cycle {
        let queued = self.len();
        let left = limit.map_or(queued, |limit| queued.min(limit.get()));
        Cycle {
            left,
            pushed: self.pushed,
            cut_short: left < queued,
        }
    }

    /// The next entry of the cycle, highest priority first.
    pub(super) fn pop(&mut self, cycle: &mut Cycle) -> Option<Entry> {
        let pushed_since = usize::try_from(self.pushed - cycle.pushed).unwrap_or(usize::MAX);
        cycle.left = cycle.left.saturating_add(pushed_since);
        cycle.pushed = self.pushed;
        cycle.left = cycle.left.checked_sub(1)?;
        self.shared.queue.pop().map(|(_, entry)| entry)
    }
}

impl CoreScheduler {
    /// A handle through which other threads submit tasks while this
    /// scheduler's owner runs its cycles; see [`Submitter`].
    ///
    /// The first call copies the ids of the tasks submitted so far into the
    /// set of claimed ids that handles check: O(tasks), once.
    pub fn submitter(&self) -> Submitter {
        if !self.intake.ids_shared.replace(true) {
            for &task in self.tasks.keys() {
                // The ids of distinct records: none is claimed twice.
                let _ = self.intake.shared.claim(task, false);
            }
        }
        Submitter {
            shared: Arc::clone(&self.intake.shared),
        }
    }

    /// Claims `task`'s id for a submission through the scheduler itself:
    /// in the set the handles share once there are any, else against the
    /// scheduler's own records.
    ///
    /// # Errors
    /// [`Error::DuplicateTask`].
    pub(super) fn claim(&self, task: TaskId) -> Result<(), Error> {
        if self.intake.ids_shared.get() {
            self.intake.shared.claim(task, false)
        } else if self.tasks.contains_key(&task) {
            Err(Error::DuplicateTask { task })
        } else {
            Ok(())
        }
    }

    /// The task a queue entry names, taking a handle submission in: the
    /// scheduler records it as queued (or as cancelled, if it was cancelled
    /// before).
    pub(super) fn take_in(&mut self, entry: Entry) -> TaskId {
        let spec = match entry {
            Entry::Known(task) => return task,
            Entry::Submitted(spec) => spec,
        };
        let task = spec.id;
        self.intake.taken_in += 1;
        let state = if self.intake.cancelled.remove(&task) {
            // Counted as cancelled since then; a change to whoever tracks.
            if let Some(changes) = &mut self.changes {
                changes.insert(task);
            }
            TaskState::Cancelled
        } else if let Err(error) = self
            .check_gang(&spec)
            .and_then(|()| self.hold_in_queue(&spec))
        {
            // Its queue refuses it: it fails, and its entry is skipped as
            // a cancelled one's is.
            if let Some(changes) = &mut self.changes {
                changes.insert(task);
            }
            self.counts.failed += 1;
            self.stale_queue_entries += 1;
            TaskState::Failed {
                reasons: vec![error.to_string()],
            }
        } else {
            self.counts.queued += 1;
            TaskState::Queued
        };
        self.tasks.insert(task, TaskRecord::new(spec, state));
        task
    }

    /// The state of a handle submission not taken in yet, if `task` (an id
    /// the scheduler holds no record of) is one.
    pub(super) fn pending_state(&self, task: TaskId) -> Option<&'static TaskState> {
        if self.intake.cancelled.contains(&task) {
            Some(&TaskState::Cancelled)
        } else if self.intake.ids_shared.get() && self.intake.shared.is_claimed(task) {
            Some(&TaskState::Queued)
        } else {
            None
        }
    }

    /// Cancels a handle submission not taken in yet: it is counted as
    /// cancelled now, and its entry is skipped when a cycle reaches it.
    ///
    /// # Errors
    /// As [`no_record`](Self::no_record) says.
    pub(super) fn cancel_pending(&mut self, task: TaskId) -> Result<(), Error> {
        if self.pending_state(task) != Some(&TaskState::Queued) {
            return Err(self.no_record(task, "cancel"));
        }
        self.intake.cancelled.insert(task);
        self.counts.cancelled += 1;
        self.stale_queue_entries += 1;
        Ok(())
    }

    /// Why `action` cannot apply to a task the scheduler holds no record
    /// of: [`Error::InvalidTransition`] for a handle submission not taken in
    /// yet (it is queued or cancelled), [`Error::UnknownTask`] otherwise.
    pub(super) fn no_record(&self, task: TaskId, action: &'static str) -> Error {
        match self.pending_state(task) {
            Some(state) => Error::InvalidTransition {
                task,
                action,
                state: state.name(),
            },
            None => Error::UnknownTask { task },
        }
    }
}
