//! The concurrency primitives of the queue. A normal build uses exactly the
//! real ones; `--cfg loom` (the model check only, `tests/loom_queue.rs`)
//! swaps in loom's, so loom explores the interleavings of Lepton's own
//! lock-free logic.

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::SegQueue as Level;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};

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
pub(crate) struct Level<T>(loom::sync::Mutex<std::collections::VecDeque<T>>);

#[cfg(loom)]
impl<T> Level<T> {
    pub(crate) fn new() -> Self {
        Level(loom::sync::Mutex::new(std::collections::VecDeque::new()))
    }

    fn lock(&self) -> loom::sync::MutexGuard<'_, std::collections::VecDeque<T>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn push(&self, item: T) {
        self.lock().push_back(item);
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.lock().pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
