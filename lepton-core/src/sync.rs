//! The concurrency primitives of the queue and the submission handle. A
//! normal build uses exactly the real ones; `--cfg loom` (the model check
//! only, `tests/loom_queue.rs`) swaps in loom's, so loom explores the
//! interleavings of Lepton's own lock-free logic.

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::SegQueue as Level;
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`. A panic while it was held cannot have left its data
/// half-changed (every critical section is one insert or one counter
/// update), so poisoning is ignored.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// loom's atomics, except that `load` is a read-modify-write. loom 0.7's
/// DPOR remembers only the last access to an atomic, so a pusher's own
/// load in `set_bit` hides a popper's earlier load from the `fetch_or`
/// that follows, and loom never tries the push first (tokio-rs/loom#166,
/// #392); RMWs it tracks in full. Reading the latest value is what a
/// `SeqCst` load reads when, as in the bitmap, every access is `SeqCst`;
/// the aging cursor's `Relaxed` loads only steer fairness.
#[cfg(loom)]
macro_rules! loads_as_rmw {
    ($($atomic:ident: $int:ty),*) => {$(
        #[derive(Debug, Default)]
        pub(crate) struct $atomic(loom::sync::atomic::$atomic);

        impl $atomic {
            pub(crate) fn new(value: $int) -> Self {
                $atomic(loom::sync::atomic::$atomic::new(value))
            }

            pub(crate) fn load(&self, order: std::sync::atomic::Ordering) -> $int {
                self.0.fetch_or(0, order)
            }
        }

        impl std::ops::Deref for $atomic {
            type Target = loom::sync::atomic::$atomic;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
    )*};
}
#[cfg(loom)]
loads_as_rmw!(AtomicU64: u64, AtomicUsize: usize);

/// Stand-in for one level's `SegQueue`, with the same API. A locked deque
/// is linearizable like `SegQueue`, and loom sees (and interleaves around)
/// each lock.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Level<T>(Mutex<std::collections::VecDeque<T>>);

#[cfg(loom)]
impl<T> Level<T> {
    pub(crate) fn new() -> Self {
        Level(Mutex::new(std::collections::VecDeque::new()))
    }

    pub(crate) fn push(&self, item: T) {
        lock(&self.0).push_back(item);
    }

    pub(crate) fn pop(&self) -> Option<T> {
        lock(&self.0).pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.0).len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.0).is_empty()
    }
}
