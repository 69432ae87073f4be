//! Locks that survive a panicking holder.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, also when a holder panicked: what the backends keep
/// behind locks (connections, readings, sets of ids) stays valid then.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
