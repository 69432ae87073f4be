//! Failure detection: nodes that stop sending heartbeats are declared down.
//!
//! Each heartbeat pushes the node's deadline (`now + timeout`) onto a FIFO;
//! the clock only moves forward and the timeout is fixed, so the FIFO stays
//! in deadline order and a check pops only what is due, O(1) per heartbeat.
//! A popped deadline is stale when the node was heard from again since.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use super::CoreScheduler;
use crate::clock::Timestamp;
use crate::error::Error;
use crate::node::{NodeId, NodeState};

#[derive(Debug)]
pub(super) struct Heartbeats {
    timeout: Duration,
    last_heard: HashMap<NodeId, Timestamp>,
    deadlines: VecDeque<(Timestamp, NodeId)>,
    /// Nodes declared down for silence: their next heartbeat brings them back.
    silent: HashSet<NodeId>,
}

impl Heartbeats {
    pub(super) fn new(timeout: Duration) -> Self {
        Heartbeats {
            timeout,
            last_heard: HashMap::new(),
            deadlines: VecDeque::new(),
            silent: HashSet::new(),
        }
    }

    fn heard(&mut self, node: NodeId, now: Timestamp) {
        self.last_heard.insert(node, now);
        self.deadlines
            .push_back((now.saturating_add(self.timeout), node));
    }

    /// The next node whose deadline passed without a heartbeat since.
    fn next_silent(&mut self, now: Timestamp) -> Option<NodeId> {
        while let Some(&(deadline, node)) = self.deadlines.front() {
            if deadline > now {
                return None;
            }
            self.deadlines.pop_front();
            let expired = self
                .last_heard
                .get(&node)
                .is_some_and(|&heard| heard.saturating_add(self.timeout) <= now);
            if expired && self.silent.insert(node) {
                return Some(node);
            }
        }
        None
    }
}

impl CoreScheduler {
    /// Starts (or restarts) the node's heartbeat clock.
    pub(super) fn heard_from(&mut self, node: NodeId) {
        let now = self.clock.now();
        if let Some(heartbeats) = &mut self.heartbeats {
            heartbeats.silent.remove(&node);
            heartbeats.heard(node, now);
        }
    }

    /// An event declared the node down: only [`Event::NodeUp`](super::Event::NodeUp)
    /// brings it back, not a heartbeat.
    pub(super) fn declared_down(&mut self, node: NodeId) {
        if let Some(heartbeats) = &mut self.heartbeats {
            heartbeats.silent.remove(&node);
        }
    }

    pub(super) fn forget_heartbeats(&mut self, node: NodeId) {
        if let Some(heartbeats) = &mut self.heartbeats {
            heartbeats.last_heard.remove(&node);
            heartbeats.silent.remove(&node);
        }
    }

    /// A heartbeat: restarts the node's clock. A node declared down for
    /// silence comes back ready (its tasks were already retried elsewhere,
    /// and reports from their old runs are refused as stale); a node that an
    /// event declared down stays down until [`Event::NodeUp`](super::Event::NodeUp).
    pub(super) fn heartbeat(&mut self, node: NodeId) -> Result<(), Error> {
        let state = self
            .cluster
            .node(node)
            .ok_or(Error::UnknownNode { node })?
            .state();
        let Some(heartbeats) = &mut self.heartbeats else {
            return Ok(());
        };
        let was_silent = heartbeats.silent.contains(&node);
        if state == NodeState::Down && !was_silent {
            heartbeats.heard(node, self.clock.now());
            return Ok(());
        }
        if was_silent {
            self.cluster.set_state(node, NodeState::Ready)?;
            self.waiting.node_changed(node);
        }
        self.heard_from(node);
        Ok(())
    }

    /// Declares down every node silent for longer than the timeout.
    pub(super) fn declare_silent_nodes_down(&mut self, now: Timestamp) {
        loop {
            let Some(heartbeats) = &mut self.heartbeats else {
                return;
            };
            let Some(node) = heartbeats.next_silent(now) else {
                return;
            };
            let timeout = heartbeats.timeout;
            let up = self
                .cluster
                .node(node)
                .is_some_and(|n| n.state() != NodeState::Down);
            if up {
                self.stats.silent_nodes += 1;
                let reason = format!("node silent for more than {timeout:?}");
                // The node exists: checked just above.
                let _ = self.fail_node(node, &reason);
            } else if let Some(heartbeats) = &mut self.heartbeats {
                // Already down by an event: not silent in the sense that a
                // heartbeat alone may bring it back.
                heartbeats.silent.remove(&node);
            }
        }
    }
}
