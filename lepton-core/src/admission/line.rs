//! [`Line`]: a queue's waiting tasks, in admission order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};

use super::{WaitKey, Waiting};
use crate::task::Priority;

/// A queue's waiting tasks in admission order: higher priority first, then
/// submission order. Each priority's tasks wait in a ring in submission
/// order — a task submitted is the last of its priority — so that the
/// first leaves and a new one joins without a search.
#[derive(Debug, Default)]
pub(super) struct Line {
    /// The tasks of each priority seen, highest first, by submission
    /// number (a priority's ring stays when it empties: its room is
    /// there for the next).
    by_priority: BTreeMap<Reverse<Priority>, VecDeque<(u64, Waiting)>>,
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
        let same = self.by_priority.entry(priority).or_default();
        debug_assert!(same.back().is_none_or(|(last, _)| *last < seq));
        same.push_back((seq, task));
        self.len += 1;
    }

    /// The first task and its key.
    pub(super) fn first(&self) -> Option<(WaitKey, &Waiting)> {
        self.by_priority.iter().find_map(|(&priority, same)| {
            let (seq, task) = same.front()?;
            Some(((priority, *seq), task))
        })
    }

    /// The task at `key`.
    pub(super) fn get(&self, (priority, seq): WaitKey) -> Option<&Waiting> {
        let same = self.by_priority.get(&priority)?;
        let at = same.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        same.get(at).map(|(_, task)| task)
    }

    /// Takes out the task at `key`.
    pub(super) fn remove(&mut self, (priority, seq): WaitKey) -> Option<Waiting> {
        let same = self.by_priority.get_mut(&priority)?;
        // Mostly the first is taken.
        let at = match same.front() {
            Some((first, _)) if *first == seq => 0,
            _ => same.binary_search_by_key(&seq, |(s, _)| *s).ok()?,
        };
        let (_, task) = same.remove(at)?;
        self.len -= 1;
        Some(task)
    }

    /// The tasks and their keys, in admission order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (WaitKey, &Waiting)> {
        self.by_priority.iter().flat_map(|(&priority, same)| {
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
        for same in self.by_priority.values_mut() {
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
