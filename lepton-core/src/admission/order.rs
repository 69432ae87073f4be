//! [`Order`]: the queues with tasks waiting, fairest first.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The place of a queue not in the order.
const NOWHERE: usize = usize::MAX;

/// Queues by key, lowest first (the lower queue index first on equal
/// keys): a binary min-heap that knows each queue's place in it, so that a
/// queue whose key changes moves in O(log n) without a search, and the
/// fairest is at hand. [`Order::iter`] walks the queues in order without
/// sorting them.
#[derive(Debug, Default, Clone)]
pub(super) struct Order {
    /// The heap: each entry (its key and queue, see [`entry`]) no greater
    /// than its children's.
    heap: Vec<u128>,
    /// Each queue's place in `heap`, by queue index; [`NOWHERE`] when
    /// absent.
    place: Vec<usize>,
}

/// A queue at `key`, as one number that orders as (key, queue) does.
fn entry(key: u64, queue: usize) -> u128 {
    (u128::from(key) << 64) | queue as u128
}

/// The queue of `entry`.
fn queue_of(entry: u128) -> usize {
    entry as u64 as usize
}

impl Order {
    /// Whether no queue has a place.
    pub(super) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Puts `queue` at `key`, in place of where it was.
    pub(super) fn set(&mut self, queue: usize, key: u64) {
        if self.place.len() <= queue {
            self.place.resize(queue + 1, NOWHERE);
        }
        let at = match self.place[queue] {
            NOWHERE => {
                self.heap.push(entry(key, queue));
                self.heap.len() - 1
            }
            at => {
                self.heap[at] = entry(key, queue);
                at
            }
        };
        self.sift(at);
    }

    /// Takes `queue` out of the order (nothing if it had no place).
    pub(super) fn remove(&mut self, queue: usize) {
        let Some(place) = self.place.get_mut(queue) else {
            return;
        };
        let at = std::mem::replace(place, NOWHERE);
        if at == NOWHERE {
            return;
        }
        let last = self.heap.len() - 1;
        self.heap.swap(at, last);
        self.heap.pop();
        if at < last {
            self.sift(at);
        }
    }

    /// The queues, lowest key first, lazily: a best-first walk of the
    /// heap, which costs nothing beyond the first queue until asked.
    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let mut frontier: BinaryHeap<Reverse<(u128, usize)>> = BinaryHeap::new();
        let mut next = (!self.heap.is_empty()).then_some(0);
        // The place last walked: its children join the frontier only when
        // the walk goes on.
        let mut last: Option<usize> = None;
        std::iter::from_fn(move || {
            if let Some(at) = last.take() {
                for child in [2 * at + 1, 2 * at + 2] {
                    if let Some(&entry) = self.heap.get(child) {
                        frontier.push(Reverse((entry, child)));
                    }
                }
                next = frontier.pop().map(|Reverse((_, at))| at);
            }
            let at = next.take()?;
            last = Some(at);
            Some(queue_of(self.heap[at]))
        })
    }

    /// Moves the entry at `at` up while it is lower than its parent, or
    /// down while a child is lower, shifting the others into the hole.
    fn sift(&mut self, mut at: usize) {
        let entry = self.heap[at];
        while at > 0 {
            let parent = (at - 1) / 2;
            if self.heap[parent] <= entry {
                break;
            }
            self.shift(parent, at);
            at = parent;
        }
        loop {
            let left = 2 * at + 1;
            let Some(&low) = self.heap.get(left) else {
                break;
            };
            let (child, low) = match self.heap.get(left + 1) {
                Some(&right) if right < low => (left + 1, right),
                _ => (left, low),
            };
            if low >= entry {
                break;
            }
            self.shift(child, at);
            at = child;
        }
        self.heap[at] = entry;
        self.place[queue_of(entry)] = at;
    }

    /// Moves the entry at `from` to `to`.
    fn shift(&mut self, from: usize, to: usize) {
        let entry = self.heap[from];
        self.heap[to] = entry;
        self.place[queue_of(entry)] = to;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// After any sequence of keys set and queues removed, the walk
        /// gives the queues sorted by (key, queue), as a sorted map does.
        #[test]
        fn walks_the_queues_as_a_sorted_map(
            ops in prop::collection::vec((0usize..40, prop::option::of(0u64..8)), 0..300),
        ) {
            let (mut order, mut reference) = (Order::default(), BTreeMap::new());
            for (queue, key) in ops {
                match key {
                    Some(key) => {
                        order.set(queue, key);
                        reference.insert(queue, key);
                    }
                    None => {
                        order.remove(queue);
                        reference.remove(&queue);
                    }
                }
                let mut sorted: Vec<(u64, usize)> =
                    reference.iter().map(|(&q, &k)| (k, q)).collect();
                sorted.sort_unstable();
                let expected: Vec<usize> = sorted.into_iter().map(|(_, q)| q).collect();
                prop_assert_eq!(order.iter().collect::<Vec<_>>(), expected);
                prop_assert_eq!(order.is_empty(), reference.is_empty());
            }
        }
    }
}
