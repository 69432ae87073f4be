//! Tenant queues: which work may start, and in which order, on a shared
//! cluster.
//!
//! Tenants submit into queues named as paths (`org/team/user`).
//! [`Admission`] holds each task until the cluster and its queue — and
//! every declared queue above it — have room under their maxima, then hands
//! it on to the scheduler, which decides where it runs. Among queues with
//! work waiting, the queue with the lowest weighted dominant share goes
//! first: dominant resource fairness (DRF; Ghodsi et al., "Dominant
//! Resource Fairness: Fair Allocation of Multiple Resource Types", NSDI
//! 2011), a queue's dominant share being the largest of its shares of the
//! cluster's CPU, memory and GPUs, divided by its weight. Inside a queue,
//! higher priority first, then submission order; a queue whose first task
//! cannot be admitted yet admits nothing behind it (no queue jumping). A
//! queue held back by its own maxima lets the others go on; the fairest
//! queue's first task waiting for room in the cluster holds back the less
//! fair queues until it fits, so floods of small tasks cannot starve large
//! ones. A task that ends gives its share back ([`Admission::ended`]).
//!
//! This is the division of work of Kueue in front of kube-scheduler:
//! admission decides *whether and when*, the scheduler *where*.
//!
//! ```
//! use lepton_core::admission::{Admission, Amounts, Limits, QueueSpec};
//! use lepton_core::{Resources, TaskId, TaskSpec};
//!
//! let mut admission = Admission::new();
//! let team = QueueSpec::new("org/ml").with_max(Limits::cpu_milli(4_000));
//! admission.add_queue(team).unwrap();
//! for id in 1..=3 {
//!     let task = TaskSpec::new(TaskId(id), Resources::new(2_000, 1_024));
//!     admission.submit("org/ml", task).unwrap();
//! }
//! let cluster = Amounts { cpu_milli: 64_000, memory_mib: 262_144, gpu_milli: 0 };
//! // Two fit under the queue's 4 CPUs; the third waits for one to end.
//! assert_eq!(admission.admit(cluster).len(), 2);
//! admission.ended(TaskId(1));
//! assert_eq!(admission.admit(cluster)[0].id, TaskId(3));
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::task::{Priority, TaskId, TaskSpec};

/// Amounts of the resources queues count: CPU, memory and GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amounts {
    /// CPU, milli-cores.
    pub cpu_milli: u64,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// GPUs, milli-GPUs (a whole GPU is 1000).
    pub gpu_milli: u64,
}

impl Amounts {
    /// What `task` asks for.
    pub fn of(task: &TaskSpec) -> Amounts {
        Amounts {
            cpu_milli: task.request.cpu_milli,
            memory_mib: task.request.memory_mib,
            gpu_milli: task.gpu.total_milli(),
        }
    }

    /// Both amounts together (saturating).
    pub fn plus(self, other: Amounts) -> Amounts {
        Amounts {
            cpu_milli: self.cpu_milli.saturating_add(other.cpu_milli),
            memory_mib: self.memory_mib.saturating_add(other.memory_mib),
            gpu_milli: self.gpu_milli.saturating_add(other.gpu_milli),
        }
    }

    /// These amounts less `other` (saturating at 0).
    pub fn minus(self, other: Amounts) -> Amounts {
        Amounts {
            cpu_milli: self.cpu_milli.saturating_sub(other.cpu_milli),
            memory_mib: self.memory_mib.saturating_sub(other.memory_mib),
            gpu_milli: self.gpu_milli.saturating_sub(other.gpu_milli),
        }
    }

    /// Each resource with its name, in order.
    fn named(self) -> [(&'static str, u64); 3] {
        [
            ("cpu_milli", self.cpu_milli),
            ("memory_mib", self.memory_mib),
            ("gpu_milli", self.gpu_milli),
        ]
    }

    /// The largest share of `capacity` these amounts are (resources the
    /// cluster has none of count 0).
    pub fn dominant_share(self, capacity: Amounts) -> f64 {
        self.named()
            .iter()
            .zip(capacity.named())
            .filter(|(_, (_, total))| *total > 0)
            .map(|((_, used), (_, total))| *used as f64 / total as f64)
            .fold(0.0, f64::max)
    }
}

/// A queue's maxima; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// CPU, milli-cores.
    #[serde(default)]
    pub cpu_milli: Option<u64>,
    /// Memory, MiB.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// GPUs, milli-GPUs.
    #[serde(default)]
    pub gpu_milli: Option<u64>,
}

impl Limits {
    /// No limit.
    pub const NONE: Limits = Limits {
        cpu_milli: None,
        memory_mib: None,
        gpu_milli: None,
    };

    /// At most `cpu_milli` of CPU, nothing else limited.
    pub fn cpu_milli(cpu_milli: u64) -> Limits {
        Limits {
            cpu_milli: Some(cpu_milli),
            ..Limits::NONE
        }
    }

    /// At most `memory_mib` of memory besides.
    pub fn with_memory_mib(mut self, memory_mib: u64) -> Limits {
        self.memory_mib = Some(memory_mib);
        self
    }

    /// At most `gpu_milli` of GPUs besides.
    pub fn with_gpu_milli(mut self, gpu_milli: u64) -> Limits {
        self.gpu_milli = Some(gpu_milli);
        self
    }

    /// The first resource `amounts` exceed: its name, the amount and the
    /// limit.
    fn exceeded(&self, amounts: Amounts) -> Option<(&'static str, u64, u64)> {
        let limits = [self.cpu_milli, self.memory_mib, self.gpu_milli];
        amounts
            .named()
            .into_iter()
            .zip(limits)
            .find_map(|((name, amount), limit)| {
                limit
                    .filter(|&limit| amount > limit)
                    .map(|limit| (name, amount, limit))
            })
    }
}

/// A queue: its path, its maxima and its weight in the fair share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QueueSpec {
    /// The path, `/`-separated (`org/team/user`): segments of letters,
    /// digits, `.`, `_` and `-`.
    pub name: String,
    /// What the queue and every queue below it may hold at once.
    #[serde(default)]
    pub max: Limits,
    /// Its weight in the fair share (positive; 1 by default): a queue of
    /// weight 2 is entitled to twice the dominant share.
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

impl QueueSpec {
    /// The queue `name`, without limits, of weight 1.
    pub fn new(name: impl Into<String>) -> QueueSpec {
        QueueSpec {
            name: name.into(),
            max: Limits::NONE,
            weight: 1.0,
        }
    }

    /// Sets its maxima.
    pub fn with_max(mut self, max: Limits) -> QueueSpec {
        self.max = max;
        self
    }

    /// Sets its weight.
    pub fn with_weight(mut self, weight: f64) -> QueueSpec {
        self.weight = weight;
        self
    }
}

/// The longest queue path.
pub const MAX_QUEUE_NAME: usize = 253;

/// The deepest queue path.
pub const MAX_QUEUE_DEPTH: usize = 16;

/// Why `name` is no queue path, if it is not.
fn invalid_name(name: &str) -> Option<&'static str> {
    if name.len() > MAX_QUEUE_NAME {
        return Some("longer than 253 characters");
    }
    if name.split('/').count() > MAX_QUEUE_DEPTH {
        return Some("deeper than 16 levels");
    }
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    (!name.split('/').all(segment_ok))
        .then_some("segments must be non-empty letters, digits, '.', '_' or '-', separated by '/'")
}

/// Whether `amounts` fit in `capacity`, resource by resource.
fn within(amounts: Amounts, capacity: Amounts) -> bool {
    amounts
        .named()
        .iter()
        .zip(capacity.named())
        .all(|((_, used), (_, cap))| *used <= cap)
}

/// `name` and each path above it, `org/team/user`, `org/team`, `org`.
fn path(name: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(name), |n| n.rfind('/').map(|at| &n[..at]))
}

/// What an [`Admission`] holds, as serde data, to save and restore it
/// (across a restart, or to another server).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AdmissionState {
    /// The queues declared, by path.
    pub queues: Vec<QueueSpec>,
    /// The tasks waiting and their queues, in submission order.
    pub waiting: Vec<(String, TaskSpec)>,
    /// The tasks admitted and not ended, with their queues and amounts.
    pub admitted: Vec<(TaskId, String, Amounts)>,
}

#[derive(Debug)]
struct Queue {
    spec: QueueSpec,
    /// What the tasks admitted from it and from the queues below it hold.
    usage: Amounts,
    /// Its own tasks waiting, in admission order: higher priority first,
    /// then submission order.
    waiting: BTreeMap<(Reverse<Priority>, u64), TaskSpec>,
    /// Its key in [`Admission::order`] while tasks wait in it.
    ordered: Option<u64>,
}

/// The queues, their waiting tasks and what the admitted ones hold (see
/// the [module docs](self)).
#[derive(Debug, Default)]
pub struct Admission {
    queues: BTreeMap<String, Queue>,
    /// Each admitted task's queue and amounts, until it ends.
    admitted: HashMap<TaskId, (String, Amounts)>,
    /// Each waiting task's queue and key there.
    holding: HashMap<TaskId, (String, (Reverse<Priority>, u64))>,
    /// What all admitted tasks hold.
    total: Amounts,
    submitted: u64,
    /// The queues with tasks waiting, fairest first: (weighted dominant
    /// share as the bits of a non-negative float, which order as it
    /// does; path).
    order: BTreeSet<(u64, String)>,
    /// The capacity the shares in `order` are of.
    capacity: Amounts,
}

impl Admission {
    /// No queues.
    pub fn new() -> Admission {
        Admission::default()
    }

    /// Declares a queue.
    ///
    /// # Errors
    /// [`Error::InvalidQueue`] for a malformed path or a weight that is not
    /// a positive number; [`Error::DuplicateQueue`] for a path already
    /// declared.
    pub fn add_queue(&mut self, spec: QueueSpec) -> Result<(), Error> {
        let invalid = |reason: &'static str| Error::InvalidQueue {
            queue: spec.name.clone(),
            reason,
        };
        if let Some(reason) = invalid_name(&spec.name) {
            return Err(invalid(reason));
        }
        if !(spec.weight.is_finite() && spec.weight > 0.0) {
            return Err(invalid("its weight must be a positive number"));
        }
        if self.queues.contains_key(&spec.name) {
            return Err(Error::DuplicateQueue { queue: spec.name });
        }
        // Admitted tasks of queues below it already count against it.
        let usage = self
            .admitted
            .values()
            .filter(|(queue, _)| path(queue).any(|p| p == spec.name))
            .fold(Amounts::default(), |sum, (_, amounts)| sum.plus(*amounts));
        self.queues.insert(
            spec.name.clone(),
            Queue {
                spec,
                usage,
                waiting: BTreeMap::new(),
                ordered: None,
            },
        );
        Ok(())
    }

    /// Puts `name` in its place in [`order`](Self::order): by its share
    /// now while tasks wait in it, nowhere otherwise.
    fn reorder(&mut self, name: &str) {
        let Some(queue) = self.queues.get_mut(name) else {
            return;
        };
        if let Some(old) = queue.ordered.take() {
            self.order.remove(&(old, name.to_owned()));
        }
        if !queue.waiting.is_empty() {
            let share = queue.usage.dominant_share(self.capacity) / queue.spec.weight;
            let key = share.to_bits();
            queue.ordered = Some(key);
            self.order.insert((key, name.to_owned()));
        }
    }

    /// The declared queues, by path.
    pub fn queues(&self) -> impl Iterator<Item = &QueueSpec> {
        self.queues.values().map(|q| &q.spec)
    }

    /// Holds `task` in `queue` until it is admitted.
    ///
    /// # Errors
    /// [`Error::UnknownQueue`] for a queue not declared;
    /// [`Error::DuplicateTask`] for a task waiting or admitted already;
    /// [`Error::OverQuota`] for a task larger than the maximum of its
    /// queue or of a queue above it (it could never be admitted).
    pub fn submit(&mut self, queue: &str, task: TaskSpec) -> Result<(), Error> {
        if !self.queues.contains_key(queue) {
            return Err(Error::UnknownQueue {
                task: task.id,
                queue: queue.to_owned(),
            });
        }
        if self.admitted.contains_key(&task.id) || self.holding.contains_key(&task.id) {
            return Err(Error::DuplicateTask { task: task.id });
        }
        let amounts = Amounts::of(&task);
        for name in path(queue) {
            let Some(above) = self.queues.get(name) else {
                continue;
            };
            if let Some((resource, asked, max)) = above.spec.max.exceeded(amounts) {
                return Err(Error::OverQuota {
                    task: task.id,
                    queue: name.to_owned(),
                    resource,
                    asked,
                    max,
                });
            }
        }
        let key = (Reverse(task.priority), self.submitted);
        self.submitted += 1;
        self.holding.insert(task.id, (queue.to_owned(), key));
        if let Some(own) = self.queues.get_mut(queue) {
            own.waiting.insert(key, task);
        }
        self.reorder(queue);
        Ok(())
    }

    /// Admits waiting tasks while they fit, fairest queue first, on a
    /// cluster of `capacity`: each admitted task keeps every declared
    /// queue on its path within its maximum and all admitted tasks within
    /// `capacity`. Returns them in admission order, for the scheduler.
    pub fn admit(&mut self, capacity: Amounts) -> Vec<TaskSpec> {
        if capacity != self.capacity {
            // Every share is of the capacity: all places change.
            self.capacity = capacity;
            let names: Vec<String> = self.queues.keys().cloned().collect();
            for name in names {
                self.reorder(&name);
            }
        }
        let mut admitted = Vec::new();
        while let Some(name) = self.fairest_ready() {
            let Some(queue) = self.queues.get_mut(&name) else {
                break;
            };
            let Some((_, task)) = queue.waiting.pop_first() else {
                break;
            };
            let amounts = Amounts::of(&task);
            self.holding.remove(&task.id);
            self.charge(&name, amounts, Amounts::plus);
            self.total = self.total.plus(amounts);
            self.admitted.insert(task.id, (name, amounts));
            admitted.push(task);
        }
        admitted
    }

    /// The queue to admit from: the fairest (lowest weighted dominant
    /// share, the first path on ties) whose first task is within the
    /// maxima of its path — when the cluster has room for that task. When
    /// it has not, `None`: the task waits for room and no less fair queue
    /// goes ahead of it, or a stream of small tasks could take every bit
    /// freed and starve a large one for ever (a task larger than the
    /// whole cluster holds nobody back).
    fn fairest_ready(&self) -> Option<String> {
        for (_, name) in &self.order {
            let Some(task) = self
                .queues
                .get(name)
                .and_then(|q| q.waiting.values().next())
            else {
                continue;
            };
            let amounts = Amounts::of(task);
            if !self.within_maxima(name, amounts) {
                continue;
            }
            if within(self.total.plus(amounts), self.capacity) {
                return Some(name.clone());
            }
            if within(amounts, self.capacity) {
                return None;
            }
        }
        None
    }

    /// Whether `amounts` more in `queue` keep every declared queue on its
    /// path within its maximum.
    fn within_maxima(&self, queue: &str, amounts: Amounts) -> bool {
        path(queue).all(|name| {
            self.queues
                .get(name)
                .is_none_or(|q| q.spec.max.exceeded(q.usage.plus(amounts)).is_none())
        })
    }

    /// Adds (or takes back) `amounts` on every declared queue of the
    /// path, each moving to its new place in the order.
    fn charge(&mut self, queue: &str, amounts: Amounts, apply: fn(Amounts, Amounts) -> Amounts) {
        for name in path(queue) {
            if let Some(q) = self.queues.get_mut(name) {
                q.usage = apply(q.usage, amounts);
                self.reorder(name);
            }
        }
    }

    /// An admitted task ended (completed, failed for good, cancelled): its
    /// share goes back to its queues. A task still waiting is withdrawn.
    /// `false` for a task admission does not know.
    pub fn ended(&mut self, task: TaskId) -> bool {
        if let Some((queue, amounts)) = self.admitted.remove(&task) {
            self.charge(&queue, amounts, Amounts::minus);
            self.total = self.total.minus(amounts);
            return true;
        }
        if let Some((queue, key)) = self.holding.remove(&task) {
            if let Some(q) = self.queues.get_mut(&queue) {
                q.waiting.remove(&key);
            }
            self.reorder(&queue);
            return true;
        }
        false
    }

    /// Everything it holds, to save ([`restore`](Self::restore) reads it
    /// back).
    pub fn snapshot(&self) -> AdmissionState {
        let mut waiting: Vec<(u64, String, TaskSpec)> = self
            .queues
            .iter()
            .flat_map(|(name, q)| {
                q.waiting
                    .iter()
                    .map(move |((_, seq), task)| (*seq, name.clone(), task.clone()))
            })
            .collect();
        waiting.sort_unstable_by_key(|(seq, _, _)| *seq);
        let mut admitted: Vec<(TaskId, String, Amounts)> = self
            .admitted
            .iter()
            .map(|(id, (queue, amounts))| (*id, queue.clone(), *amounts))
            .collect();
        admitted.sort_unstable_by_key(|(id, _, _)| *id);
        AdmissionState {
            queues: self.queues().cloned().collect(),
            waiting: waiting.into_iter().map(|(_, q, t)| (q, t)).collect(),
            admitted,
        }
    }

    /// An admission holding what `state` describes: the same queues, the
    /// same tasks waiting in the same order, the same shares held.
    ///
    /// # Errors
    /// As [`add_queue`](Self::add_queue) and [`submit`](Self::submit) for
    /// the queues and waiting tasks; [`Error::UnknownQueue`] or
    /// [`Error::DuplicateTask`] for an admitted task naming a queue not
    /// declared or an id already seen.
    pub fn restore(state: AdmissionState) -> Result<Admission, Error> {
        let mut admission = Admission::new();
        for queue in state.queues {
            admission.add_queue(queue)?;
        }
        for (task, queue, amounts) in state.admitted {
            if !admission.queues.contains_key(&queue) {
                return Err(Error::UnknownQueue { task, queue });
            }
            if admission.admitted.contains_key(&task) {
                return Err(Error::DuplicateTask { task });
            }
            admission.charge(&queue, amounts, Amounts::plus);
            admission.total = admission.total.plus(amounts);
            admission.admitted.insert(task, (queue, amounts));
        }
        for (queue, task) in state.waiting {
            admission.submit(&queue, task)?;
        }
        Ok(admission)
    }

    /// What the admitted tasks of `queue` and of the queues below it hold;
    /// `None` for a queue not declared.
    pub fn usage(&self, queue: &str) -> Option<Amounts> {
        self.queues.get(queue).map(|q| q.usage)
    }

    /// How many tasks wait in `queue` itself.
    pub fn waiting(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, |q| q.waiting.len())
    }

    /// Why `task` waits: the first declared queue on its path whose
    /// maximum it would exceed now, or the cluster being fully admitted,
    /// or the tasks ahead of it in its queue. `None` when it is not
    /// waiting.
    pub fn why_waiting(&self, task: TaskId, capacity: Amounts) -> Option<String> {
        let (queue, key) = self.holding.get(&task)?;
        let own = self.queues.get(queue)?;
        let spec = own.waiting.get(key)?;
        let amounts = Amounts::of(spec);
        for name in path(queue) {
            let Some(q) = self.queues.get(name) else {
                continue;
            };
            if let Some((resource, used, max)) = q.spec.max.exceeded(q.usage.plus(amounts)) {
                return Some(format!(
                    "queue {name} is at its maximum: {resource} {used} with this task > {max}"
                ));
            }
        }
        let total = self.total.plus(amounts);
        if let Some(((resource, used), (_, cap))) = total
            .named()
            .iter()
            .zip(capacity.named())
            .find(|((_, used), (_, cap))| used > cap)
        {
            return Some(format!(
                "the cluster is fully admitted: {resource} {used} with this task > {cap}"
            ));
        }
        Some(match own.waiting.range(..*key).count() {
            0 => format!("first in queue {queue}: admitted at the next round"),
            ahead => format!("{ahead} tasks ahead of it in queue {queue}"),
        })
    }
}

#[cfg(test)]
mod tests;
