//! Tasks that found no node, waiting for a change that could let them fit
//! ([`SchedulerConfig::retry_waiting_on_release`](super::SchedulerConfig::retry_waiting_on_release)):
//! kube-scheduler's unschedulable queue, moved by what happens in the
//! cluster rather than by each task's timer, so that a scheduler with a
//! long queue and nothing happening does no work, and a change costs what
//! it touches rather than the queue's length.
//!
//! Tasks alike in everything that decides where they fit and what they may
//! preempt — request, GPUs, constraints, priority, QoS class — form a
//! class. Only a class's first task (highest priority, then oldest) is
//! ever tried: if it finds no node, none of its class would; once it is
//! placed, the next is tried at once, in the same cycle. A class's first
//! task is tried again when a node gains room (a run ended or was
//! cancelled, the node joined, came back or was uncordoned) that it fits
//! on, or may preempt on (a task of a lower priority runs there), when
//! the policy changed, and at the
//! latest `waiting_recheck` after it last found nothing — for what no event
//! announces (a policy whose filter reads measured usage, a preemption
//! search that looked at part of a large cluster).

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use foldhash::HashMap;

use crate::clock::Timestamp;
use crate::cluster::{check_feasible, ClusterState, NodeFilter};
use crate::model::QosClass;
use crate::node::NodeId;
use crate::resources::Resources;
use crate::task::{Priority, TaskId, TaskSpec};

/// A waiting task's place in its class: highest priority first, then
/// first come.
type Member = (Reverse<Priority>, u64, TaskId);

#[derive(Debug)]
struct Class {
    /// Its first member's spec: what every member is alike in.
    shape: Box<TaskSpec>,
    fingerprint: u64,
    members: BTreeSet<Member>,
    /// How many of its tasks are out being tried.
    tried: usize,
    /// When its first task is tried again at the latest.
    due: Timestamp,
}

/// The waiting tasks, by class; see the module docs.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    classes: HashMap<u64, Class>,
    by_fingerprint: HashMap<u64, Vec<u64>>,
    /// Classes by when their first task is due.
    dues: BTreeSet<(Timestamp, u64)>,
    /// Where each waiting task is: its class and its place in it.
    places: HashMap<TaskId, (u64, Member)>,
    /// Tasks taken out to be tried, not yet placed nor back.
    trying: HashMap<TaskId, (u64, Member)>,
    next_class: u64,
    next_member: u64,
    /// Since the last cycle: nodes that may take more than before.
    changed_nodes: Vec<NodeId>,
    /// Since the last cycle: the policy changed; every class is tried.
    everything: bool,
}

impl Waiting {
    /// When the first class is due, if any waits.
    pub(super) fn next_due(&self) -> Option<Timestamp> {
        self.dues.first().map(|&(due, _)| due)
    }
}

/// Whether `a` and `b` fit the same nodes and may preempt the same tasks.
fn alike(a: &TaskSpec, b: &TaskSpec) -> bool {
    a.request == b.request
        && a.gpu == b.gpu
        && a.priority == b.priority
        && a.qos == b.qos
        && a.constraints == b.constraints
}

/// A hash of what [`alike`] compares.
fn fingerprint(spec: &TaskSpec) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let request = &spec.request;
    (
        request.cpu_milli,
        request.memory_mib,
        request.network_mbps,
        request.storage_gib,
    )
        .hash(&mut hasher);
    for (name, amount) in request.extended_iter() {
        (name, amount).hash(&mut hasher);
    }
    (spec.gpu, spec.priority, spec.qos).hash(&mut hasher);
    let constraints = &spec.constraints;
    (
        &constraints.gpu_models,
        &constraints.node_selector,
        &constraints.tolerations,
        &constraints.anti_affinity,
        constraints.max_per_node,
        &constraints.avoid_nodes,
    )
        .hash(&mut hasher);
    hasher.finish()
}

impl Waiting {
    /// Puts `task` (tried, or found no node for the first time) in its
    /// class; its class's first task is tried again by `due` at the latest.
    pub(super) fn park(&mut self, spec: &TaskSpec, due: Timestamp) {
        let task = spec.id;
        if let Some((class, member)) = self.untry(task) {
            if let Some(found) = self.classes.get_mut(&class) {
                found.members.insert(member);
                self.places.insert(task, (class, member));
                self.dues.remove(&(found.due, class));
                found.due = due;
                self.dues.insert((due, class));
                return;
            }
        }
        let print = fingerprint(spec);
        let known = self.by_fingerprint.get(&print).and_then(|ids| {
            ids.iter()
                .copied()
                .find(|id| self.classes.get(id).is_some_and(|c| alike(&c.shape, spec)))
        });
        let class = match known {
            Some(class) => class,
            None => {
                let class = self.next_class;
                self.next_class += 1;
                self.classes.insert(
                    class,
                    Class {
                        shape: Box::new(spec.clone()),
                        fingerprint: print,
                        members: BTreeSet::new(),
                        tried: 0,
                        due,
                    },
                );
                self.by_fingerprint.entry(print).or_default().push(class);
                self.dues.insert((due, class));
                class
            }
        };
        let member = (Reverse(spec.priority), self.next_member, task);
        self.next_member += 1;
        if let Some(found) = self.classes.get_mut(&class) {
            found.members.insert(member);
        }
        self.places.insert(task, (class, member));
    }

    /// Forgets `task` (it was cancelled), waiting or being tried.
    pub(super) fn remove(&mut self, task: TaskId) {
        if let Some((class, _)) = self.untry(task) {
            // The rest of its class is due when it was (at once, if its
            // first task was woken for being due).
            if let Some(found) = self.classes.get(&class) {
                self.dues.insert((found.due, class));
            }
            self.drop_if_empty(class);
        }
        let Some((class, member)) = self.places.remove(&task) else {
            return;
        };
        if let Some(found) = self.classes.get_mut(&class) {
            found.members.remove(&member);
        }
        self.drop_if_empty(class);
    }

    /// `task` was placed: the next of its class is taken out to be tried.
    pub(super) fn placed(&mut self, task: TaskId) -> Option<TaskId> {
        let (class, _) = self.untry(task)?;
        let next = self.take_first(class);
        self.drop_if_empty(class);
        next
    }

    /// `node` may take more than before.
    pub(super) fn node_changed(&mut self, node: NodeId) {
        if !self.places.is_empty() {
            self.changed_nodes.push(node);
        }
    }

    /// Every class is tried at the next cycle (the policy changed).
    pub(super) fn everything_changed(&mut self) {
        self.everything = true;
    }

    /// The tasks to try this cycle, one per class: classes that fit one of
    /// the changed nodes or may preempt there (`room(node, priority)`: what
    /// a task of `priority` could have there by preempting, `None` with
    /// preemption off), and classes that are due.
    pub(super) fn wake(
        &mut self,
        now: Timestamp,
        cluster: &ClusterState,
        filter: Option<&dyn NodeFilter>,
        room: impl Fn(NodeId, Priority) -> Option<Resources>,
    ) -> Vec<TaskId> {
        let mut nodes = std::mem::take(&mut self.changed_nodes);
        nodes.sort_unstable();
        nodes.dedup();
        let everything = std::mem::take(&mut self.everything);
        let mut classes: Vec<u64> = Vec::new();
        while let Some(&(due, class)) = self.dues.first() {
            if due > now {
                break;
            }
            self.dues.pop_first();
            classes.push(class);
        }
        let may_preempt = |shape: &TaskSpec| {
            shape.qos != QosClass::BestEffort
                && nodes.iter().any(|&node| {
                    room(node, shape.priority).is_some_and(|room| room.fits(&shape.request))
                })
        };
        if everything || !nodes.is_empty() {
            for (&id, class) in &self.classes {
                let fits = || {
                    nodes.iter().any(|&node| {
                        cluster
                            .node(node)
                            .is_some_and(|n| check_feasible(&class.shape, filter, n).is_ok())
                    })
                };
                if everything || may_preempt(&class.shape) || fits() {
                    classes.push(id);
                }
            }
        }
        classes.sort_unstable();
        classes.dedup();
        // Oldest first, whatever their classes: the queue keeps that order
        // within a priority.
        let mut woken: Vec<(u64, TaskId)> = Vec::with_capacity(classes.len());
        for class in classes {
            if let Some(task) = self.take_first(class) {
                let arrival = self.trying.get(&task).map_or(0, |(_, member)| member.1);
                woken.push((arrival, task));
            }
        }
        woken.sort_unstable();
        woken.into_iter().map(|(_, task)| task).collect()
    }

    /// Takes the first task of `class` out to be tried.
    fn take_first(&mut self, class: u64) -> Option<TaskId> {
        let found = self.classes.get_mut(&class)?;
        let member = found.members.pop_first()?;
        found.tried += 1;
        let task = member.2;
        self.places.remove(&task);
        self.trying.insert(task, (class, member));
        Some(task)
    }

    /// Takes `task` back from being tried: its class and its place.
    fn untry(&mut self, task: TaskId) -> Option<(u64, Member)> {
        let (class, member) = self.trying.remove(&task)?;
        if let Some(found) = self.classes.get_mut(&class) {
            found.tried -= 1;
        }
        Some((class, member))
    }

    fn drop_if_empty(&mut self, class: u64) {
        let Some(found) = self.classes.get(&class) else {
            return;
        };
        if !found.members.is_empty() || found.tried > 0 {
            return;
        }
        self.dues.remove(&(found.due, class));
        if let Some(ids) = self.by_fingerprint.get_mut(&found.fingerprint) {
            ids.retain(|&id| id != class);
            if ids.is_empty() {
                self.by_fingerprint.remove(&found.fingerprint);
            }
        }
        self.classes.remove(&class);
    }
}
