//! Runs an arbitrary sequence of operations on a `TaskQueue<u32>` and on a
//! reference model (one FIFO per priority level, highest level first) and
//! checks that every result agrees.
//!
//! Items are unique sequence numbers, so a lost or duplicated item shows up.
//! A strict queue must pop exactly what the model pops. An aging queue may
//! serve a lower level early, so there a popped item need only be the front
//! of its own level. In both modes `len` must match, `pop` may return `None`
//! only when the model is empty, and a final drain must empty both.

#![no_main]

use std::collections::{BTreeMap, VecDeque};
use std::num::{NonZeroU32, NonZeroU8};

use arbitrary::Arbitrary;
use lepton_core::model::Priority;
use lepton_core::queue::TaskQueue;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    /// `Some(k)`: an aging queue, one pop in every `k` served round-robin.
    aging_every: Option<NonZeroU8>,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Push { priority: u8 },
    Pop,
    Len,
    Drain,
}

/// The reference queue. Empty levels are removed from `levels`.
#[derive(Debug, Default)]
struct Model {
    levels: BTreeMap<u8, VecDeque<u32>>,
    len: usize,
    aging: bool,
}

impl Model {
    fn push(&mut self, level: u8, item: u32) {
        self.levels.entry(level).or_default().push_back(item);
        self.len += 1;
    }

    fn pop_from(&mut self, level: u8) -> Option<(Priority, u32)> {
        let fifo = self.levels.get_mut(&level)?;
        let item = fifo.pop_front()?;
        if fifo.is_empty() {
            self.levels.remove(&level);
        }
        self.len -= 1;
        Some((Priority(level), item))
    }

    /// Asserts that the queue's `pop` could have returned `popped`, and
    /// removes that item from the model.
    fn check_pop(&mut self, popped: Option<(Priority, u32)>) {
        let expected = match popped {
            // Aging may serve any level, but only from its front.
            Some((Priority(level), _)) if self.aging => self.pop_from(level),
            _ => match self.levels.last_key_value() {
                Some((&highest, _)) => self.pop_from(highest),
                None => None,
            },
        };
        assert_eq!(popped, expected, "model: {self:?}");
    }

    /// Asserts that `drained` is everything the model holds, in pop order.
    fn check_drain(&mut self, drained: Vec<(Priority, u32)>) {
        for popped in drained {
            self.check_pop(Some(popped));
        }
        self.check_pop(None);
    }
}

fuzz_target!(|input: Input| {
    let queue = match input.aging_every {
        Some(every) => TaskQueue::with_aging(NonZeroU32::from(every)),
        None => TaskQueue::new(),
    };
    let mut model = Model {
        aging: input.aging_every.is_some(),
        ..Model::default()
    };
    // The op's index is the pushed item, so every item is unique.
    for (item, op) in (0u32..).zip(input.ops) {
        match op {
            Op::Push { priority } => {
                queue.push(Priority(priority), item);
                model.push(priority, item);
            }
            Op::Pop => model.check_pop(queue.pop()),
            Op::Len => {
                assert_eq!(queue.len(), model.len);
                assert_eq!(queue.is_empty(), model.len == 0);
            }
            Op::Drain => model.check_drain(queue.drain()),
        }
    }
    model.check_drain(queue.drain());
    assert_eq!(queue.len(), 0);
});
