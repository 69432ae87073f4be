//! [`Line`]: a queue's waiting tasks, in admission order.

use std::cmp::Reverse;
use std::collections::VecDeque;

use super::{WaitKey, Waiting};
use crate::task::Priority;

/// The tasks of one priority, by submission number.
type Ring = VecDeque<(u64, Waiting)>;

/// The most room an empty ring keeps for the next tasks.
const KEPT_ROOM: usize = 64;

/// A queue's waiting tasks in admission order: higher priority first, then
/// submission order. Each priority's tasks wait in a ring in submission
/// order — a task submitted is the last of its priority — so that the
/// first leaves and a new one joins without a search.
#[derive(Debug, Default)]
pub(super) struct Line {
    /// The tasks of each priority seen, highest first, by submission
    /// number: a short list (a queue sees a few priorities), whose rings
    /// stay when they empty, their room (up to [`KEPT_ROOM`]) there for
    /// the next tasks.
    by_priority: Vec<(Reverse<Priority>, Ring)>,
    len: usize,
}

impl Line {
    /// How many tasks wait.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether no task waits.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `task` last among those of its priority: its key's submission
    /// number is above every other's in the line.
    pub(super) fn push(&mut self, (priority, seq): WaitKey, task: Waiting) {
        let ring = self
            .by_priority
            .binary_search_by_key(&priority, |(p, _)| *p);
        let at = match ring {
            Ok(at) => at,
            Err(at) => {
                self.by_priority.insert(at, (priority, VecDeque::new()));
                at
            }
        };
        let same = &mut self.by_priority[at].1;
        debug_assert!(same.back().is_none_or(|(last, _)| *last < seq));
        same.push_back((seq, task));
        self.len += 1;
    }

    /// The first task and its key.
    pub(super) fn first(&self) -> Option<(WaitKey, &Waiting)> {
        self.by_priority.iter().find_map(|(priority, same)| {
            let (seq, task) = same.front()?;
            Some(((*priority, *seq), task))
        })
    }

    /// Where the ring of tasks of `priority` is in `by_priority`.
    fn ring(&self, priority: Reverse<Priority>) -> Option<usize> {
        let found = self
            .by_priority
            .binary_search_by_key(&priority, |(p, _)| *p);
        found.ok()
    }

    /// The task at `key`.
    pub(super) fn get(&self, (priority, seq): WaitKey) -> Option<&Waiting> {
        let same = &self.by_priority[self.ring(priority)?].1;
        let at = same.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        same.get(at).map(|(_, task)| task)
    }

    /// Takes out the task at `key`.
    pub(super) fn remove(&mut self, (priority, seq): WaitKey) -> Option<Waiting> {
        let ring = self.ring(priority)?;
        let same = &mut self.by_priority[ring].1;
        // Mostly the first is taken.
        let at = match same.front() {
            Some((first, _)) if *first == seq => 0,
            _ => same.binary_search_by_key(&seq, |(s, _)| *s).ok()?,
        };
        let (_, task) = same.remove(at)?;
        if same.is_empty() && same.capacity() > KEPT_ROOM {
            // A burst's room goes back once it has drained.
            *same = Ring::new();
        }
        self.len -= 1;
        Some(task)
    }

    /// The tasks and their keys, in admission order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (WaitKey, &Waiting)> {
        self.by_priority.iter().flat_map(|(priority, same)| {
            let priority = *priority;
            same.iter().map(move |(seq, task)| ((priority, *seq), task))
        })
    }

    /// How many tasks are ahead of the one at `key`.
    pub(super) fn ahead(&self, key: WaitKey) -> usize {
        self.iter().take_while(|(k, _)| *k < key).count()
    }

    /// Takes out the members of gang `name`, in admission order.
    pub(super) fn take_gang(&mut self, name: &str) -> Vec<Waiting> {
        let mut members = Vec::new();
        for (_, same) in &mut self.by_priority {
            let (gang, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(same)
                .into_iter()
                .partition(|(_, t)| t.in_gang(name));
            *same = rest;
            members.extend(gang.into_iter().map(|(_, task)| task));
        }
        self.len -= members.len();
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Amounts;
    use crate::task::TaskId;

    fn waiting(id: u64) -> Waiting {
        Waiting {
            task: TaskId(id),
            amounts: Amounts::default(),
            gang: None,
        }
    }

    #[test]
    fn a_drained_burst_gives_its_room_back_and_order_holds() {
        let mut line = Line::default();
        for seq in 0..1_000 {
            line.push((Reverse(Priority((seq % 2) as u8)), seq), waiting(seq));
        }
        // Priority 1 first, then 0; each in submission order.
        let first: Vec<u64> = line.iter().take(3).map(|((_, s), _)| s).collect();
        assert_eq!(first, [1, 3, 5]);
        for seq in 0..1_000 {
            let key = (Reverse(Priority((seq % 2) as u8)), seq);
            assert_eq!(line.remove(key).map(|t| t.task), Some(TaskId(seq)));
        }
        assert!(line.is_empty());
        assert!(line
            .by_priority
            .iter()
            .all(|(_, ring)| ring.capacity() <= KEPT_ROOM));
        assert_eq!(line.remove((Reverse(Priority(0)), 5)).map(|t| t.task), None);
    }
}
