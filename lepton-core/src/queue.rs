//! [`TaskQueue`]: a lock-free, multi-producer multi-consumer priority queue.
//!
//! Design: one lock-free FIFO ([`crossbeam_queue::SegQueue`]) per priority
//! level, plus a 256-bit bitmap of levels that may hold items. A push appends
//! to its level, then sets the level's bit. A pop takes the highest set bit
//! and pops that level; when the level turns out to be empty it clears the bit
//! and then looks again, re-setting the bit if a push slipped in meanwhile.
//! That re-check (all bitmap operations are `SeqCst`) is what guarantees no
//! item is ever left behind a cleared bit. Nothing takes a lock.
//!
//! Strict priority can starve low levels. With aging switched on
//! ([`TaskQueue::with_aging`]), one pop in every `k` is served instead from
//! the next non-empty level after the last one served that way, in
//! round-robin order, so every non-empty level is served at least once in
//! every `k × levels` pops.
//!
//! `tests/loom_queue.rs` model-checks this protocol with loom: built with
//! `--cfg loom`, the crate's private `sync` shim swaps the atomics for loom's
//! and each level's `SegQueue` for a loom-visible locked deque, so loom
//! explores the interleavings of the bitmap logic (`SegQueue` itself is
//! crossbeam's to verify).

use std::num::NonZeroU32;
use std::sync::atomic::Ordering;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, AtomicUsize, Level};
use crate::task::Priority;

const LEVELS: usize = 256;
const WORDS: usize = LEVELS / 64;

/// A lock-free MPMC priority queue: strict priority between levels, FIFO
/// inside a level, optional aging.
///
/// ```
/// use lepton_core::model::Priority;
/// use lepton_core::queue::TaskQueue;
///
/// let queue = TaskQueue::new();
/// queue.push(Priority(1), "batch");
/// queue.push(Priority(9), "urgent");
/// queue.push(Priority(1), "batch-2");
/// assert_eq!(queue.pop(), Some((Priority(9), "urgent")));
/// assert_eq!(queue.pop(), Some((Priority(1), "batch")));
/// assert_eq!(queue.len(), 1);
/// ```
pub struct TaskQueue<T> {
    levels: Box<[Level<T>]>,
    /// Bit `l` set when level `l` may hold items.
    nonempty: [CachePadded<AtomicU64>; WORDS],
    aging_every: Option<NonZeroU32>,
    pops: CachePadded<AtomicU64>,
    aging_cursor: AtomicUsize,
}

impl<T> std::fmt::Debug for TaskQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskQueue")
            .field("len", &self.len())
            .field("aging_every", &self.aging_every)
            .finish_non_exhaustive()
    }
}

impl<T> Default for TaskQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TaskQueue<T> {
    /// An empty queue with strict priorities (no aging).
    pub fn new() -> Self {
        TaskQueue {
            levels: (0..LEVELS).map(|_| Level::new()).collect(),
            nonempty: Default::default(),
            aging_every: None,
            pops: CachePadded::new(AtomicU64::new(0)),
            aging_cursor: AtomicUsize::new(0),
        }
    }

    /// An empty queue where one pop in every `every` is served round-robin
    /// from the non-empty levels, so that low priorities cannot starve.
    pub fn with_aging(every: NonZeroU32) -> Self {
        TaskQueue {
            aging_every: Some(every),
            ..Self::new()
        }
    }

    /// Appends `item` at the back of its priority level.
    pub fn push(&self, priority: Priority, item: T) {
        let level = usize::from(priority.0);
        self.levels[level].push(item);
        self.set_bit(level);
    }

    /// Removes the front item of the highest non-empty level (or, on an
    /// aging turn, of the next level in round-robin order).
    ///
    /// Returns `None` when the queue holds no item whose push has completed,
    /// and may also while another pop is in flight (it can briefly clear a
    /// level's bit that a concurrent push just relied on); the item is never
    /// lost: the next pop finds it.
    pub fn pop(&self) -> Option<(Priority, T)> {
        let aging_turn = self.aging_every.is_some_and(|every| {
            let n = self.pops.fetch_add(1, Ordering::Relaxed);
            n % u64::from(every.get()) == u64::from(every.get()) - 1
        });
        loop {
            let level = if aging_turn {
                let start = self.aging_cursor.load(Ordering::Relaxed) % LEVELS;
                let level = self.next_set_bit_from(start)?;
                self.aging_cursor.store(level + 1, Ordering::Relaxed);
                level
            } else {
                self.highest_set_bit()?
            };
            if let Some(item) = self.levels[level].pop() {
                return Some((priority_of(level), item));
            }
            self.clear_bit(level);
            // A push may have landed between our failed pop and the clear.
            if !self.levels[level].is_empty() {
                self.set_bit(level);
            }
        }
    }

    /// The number of items in the queue (exact when no push or pop is in
    /// flight). It sums the levels that may hold items: O(levels in use).
    pub fn len(&self) -> usize {
        self.marked_levels()
            .map(|level| self.levels[level].len())
            .sum()
    }

    /// True when the queue holds no item.
    pub fn is_empty(&self) -> bool {
        self.marked_levels()
            .all(|level| self.levels[level].is_empty())
    }

    /// The levels whose bit is set, lowest first.
    fn marked_levels(&self) -> impl Iterator<Item = usize> + '_ {
        (0..WORDS).flat_map(move |word| {
            let bits = self.nonempty[word].load(Ordering::SeqCst);
            (0..64)
                .filter(move |bit| bits & (1 << bit) != 0)
                .map(move |bit| word * 64 + bit)
        })
    }

    /// Pops every item, in the order [`pop`](Self::pop) would give them.
    pub fn drain(&self) -> Vec<(Priority, T)> {
        std::iter::from_fn(|| self.pop()).collect()
    }

    fn set_bit(&self, level: usize) {
        let word = &self.nonempty[level / 64];
        let mask = 1 << (level % 64);
        // Skip the write when the bit is already set: the word's cache line
        // then stays shared between cores. Safe because a popper that clears
        // the bit looks at the level again afterwards (see `pop`).
        if word.load(Ordering::SeqCst) & mask == 0 {
            word.fetch_or(mask, Ordering::SeqCst);
        }
    }

    fn clear_bit(&self, level: usize) {
        self.nonempty[level / 64].fetch_and(!(1 << (level % 64)), Ordering::SeqCst);
    }

    fn highest_set_bit(&self) -> Option<usize> {
        (0..WORDS).rev().find_map(|word| {
            let bits = self.nonempty[word].load(Ordering::SeqCst);
            (bits != 0).then(|| word * 64 + 63 - bits.leading_zeros() as usize)
        })
    }

    /// The first set bit at or after `start`, wrapping around.
    fn next_set_bit_from(&self, start: usize) -> Option<usize> {
        (0..=WORDS).find_map(|step| {
            let word = (start / 64 + step) % WORDS;
            let mut bits = self.nonempty[word].load(Ordering::SeqCst);
            if step == 0 {
                bits &= u64::MAX << (start % 64);
            }
            (bits != 0).then(|| word * 64 + bits.trailing_zeros() as usize)
        })
    }
}

fn priority_of(level: usize) -> Priority {
    // `level` comes from a bit index below LEVELS == 256.
    Priority(u8::try_from(level).unwrap_or(u8::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_priority_then_fifo() {
        let queue = TaskQueue::new();
        for (p, item) in [(3, 'a'), (200, 'b'), (3, 'c'), (0, 'd'), (200, 'e')] {
            queue.push(Priority(p), item);
        }
        let order: Vec<char> = queue.drain().into_iter().map(|(_, item)| item).collect();
        assert_eq!(order, vec!['b', 'e', 'a', 'c', 'd']);
        assert!(queue.is_empty());
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn every_level_is_reachable() {
        let queue = TaskQueue::new();
        for p in 0..=255u8 {
            queue.push(Priority(p), p);
        }
        let order: Vec<u8> = queue.drain().into_iter().map(|(_, item)| item).collect();
        assert_eq!(order, (0..=255u8).rev().collect::<Vec<_>>());
    }

    #[test]
    fn aging_serves_low_levels_while_high_ones_keep_coming() {
        let queue = TaskQueue::with_aging(NonZeroU32::new(4).unwrap());
        queue.push(Priority(0), "starving");
        let mut served_low_at = None;
        for i in 0..16 {
            queue.push(Priority(255), "hot");
            if let Some((Priority(0), _)) = queue.pop() {
                served_low_at = Some(i);
                break;
            }
        }
        // The fourth pop is an aging turn; the cursor starts at level 0.
        assert_eq!(served_low_at, Some(3));
    }

    #[test]
    fn without_aging_low_levels_wait() {
        let queue = TaskQueue::new();
        queue.push(Priority(0), "low");
        for _ in 0..100 {
            queue.push(Priority(255), "hot");
            assert_eq!(queue.pop(), Some((Priority(255), "hot")));
        }
        assert_eq!(queue.len(), 1);
    }
}
