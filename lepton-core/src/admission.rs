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
//! cannot be admitted yet admits nothing behind it (no queue jumping),
//! while other queues go on. A task that ends gives its share back
//! ([`Admission::ended`]).
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

    fn plus(self, other: Amounts) -> Amounts {
        Amounts {
            cpu_milli: self.cpu_milli.saturating_add(other.cpu_milli),
            memory_mib: self.memory_mib.saturating_add(other.memory_mib),
            gpu_milli: self.gpu_milli.saturating_add(other.gpu_milli),
        }
    }

    fn minus(self, other: Amounts) -> Amounts {
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

/// `name` and each path above it, `org/team/user`, `org/team`, `org`.
fn path(name: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(name), |n| n.rfind('/').map(|at| &n[..at]))
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

    /// The queue whose first waiting task fits now, of the lowest weighted
    /// dominant share (the first path on ties).
    fn fairest_ready(&self) -> Option<String> {
        self.order
            .iter()
            .map(|(_, name)| name)
            .find(|name| {
                self.queues
                    .get(*name)
                    .and_then(|q| q.waiting.values().next())
                    .is_some_and(|task| self.fits(name, Amounts::of(task), self.capacity))
            })
            .cloned()
    }

    /// Whether `amounts` more in `queue` keep every declared queue on its
    /// path within its maximum and the cluster within `capacity`.
    fn fits(&self, queue: &str, amounts: Amounts, capacity: Amounts) -> bool {
        let total = self.total.plus(amounts);
        let cluster_ok = total
            .named()
            .iter()
            .zip(capacity.named())
            .all(|((_, used), (_, cap))| *used <= cap);
        cluster_ok
            && path(queue).all(|name| {
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
mod tests {
    use super::*;
    use crate::resources::{GpuRequest, Resources};

    fn task(id: u64, cpu_milli: u64) -> TaskSpec {
        TaskSpec::new(TaskId(id), Resources::new(cpu_milli, 1))
    }

    fn cpus(cores: u64) -> Amounts {
        Amounts {
            cpu_milli: cores * 1_000,
            memory_mib: 1 << 30,
            gpu_milli: 0,
        }
    }

    #[test]
    fn paths_name_every_queue_above() {
        let above: Vec<&str> = path("org/team/user").collect();
        assert_eq!(above, ["org/team/user", "org/team", "org"]);
        assert_eq!(path("org").collect::<Vec<_>>(), ["org"]);
    }

    #[test]
    fn bad_queues_and_tasks_are_refused_by_name() {
        let mut admission = Admission::new();
        for bad in ["", "a//b", "/a", "a b", &"x/".repeat(16).to_string()] {
            let err = admission.add_queue(QueueSpec::new(bad)).unwrap_err();
            assert!(matches!(err, Error::InvalidQueue { .. }), "{bad:?}: {err}");
        }
        let err = admission
            .add_queue(QueueSpec::new("a").with_weight(0.0))
            .unwrap_err();
        assert!(err.to_string().contains("weight"), "{err}");
        admission
            .add_queue(QueueSpec::new("a").with_max(Limits::cpu_milli(2_000)))
            .unwrap();
        let err = admission.add_queue(QueueSpec::new("a")).unwrap_err();
        assert_eq!(err, Error::DuplicateQueue { queue: "a".into() });
        let err = admission.submit("b", task(1, 1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "task t-1 names queue \"b\", which is not declared"
        );
        admission.add_queue(QueueSpec::new("a/b")).unwrap();
        let err = admission.submit("a/b", task(2, 3_000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "task t-2 asks for cpu_milli 3000, more than queue a allows at most (2000)"
        );
        admission.submit("a/b", task(3, 1_000)).unwrap();
        let err = admission.submit("a", task(3, 1_000)).unwrap_err();
        assert_eq!(err, Error::DuplicateTask { task: TaskId(3) });
    }

    #[test]
    fn a_parent_maximum_bounds_its_children_together() {
        let mut admission = Admission::new();
        admission
            .add_queue(QueueSpec::new("org").with_max(Limits::cpu_milli(5_000)))
            .unwrap();
        admission.add_queue(QueueSpec::new("org/a")).unwrap();
        admission.add_queue(QueueSpec::new("org/b")).unwrap();
        for id in 0..6 {
            let queue = if id % 2 == 0 { "org/a" } else { "org/b" };
            admission.submit(queue, task(id, 1_000)).unwrap();
        }
        let admitted = admission.admit(cpus(100));
        assert_eq!(admitted.len(), 5);
        assert_eq!(admission.usage("org").unwrap().cpu_milli, 5_000);
        let waiting = admission.why_waiting(TaskId(5), cpus(100)).unwrap();
        assert_eq!(
            waiting,
            "queue org is at its maximum: cpu_milli 6000 with this task > 5000"
        );
        assert!(admission.ended(TaskId(0)));
        assert_eq!(admission.admit(cpus(100))[0].id, TaskId(5));
        assert!(!admission.ended(TaskId(99)));
    }

    /// Queue `a`'s tasks ask for <1 CPU, 4 GiB>, `b`'s for <3 CPUs,
    /// 1 GiB>; `n` of each wait.
    fn papers_queues(weight_b: f64, n: u64) -> Admission {
        let mut admission = Admission::new();
        admission.add_queue(QueueSpec::new("a")).unwrap();
        let b = QueueSpec::new("b").with_weight(weight_b);
        admission.add_queue(b).unwrap();
        for id in 0..n {
            let a = TaskSpec::new(TaskId(id), Resources::new(1_000, 4_096));
            admission.submit("a", a).unwrap();
            let b = TaskSpec::new(TaskId(1_000 + id), Resources::new(3_000, 1_024));
            admission.submit("b", b).unwrap();
        }
        admission
    }

    #[test]
    fn the_drf_papers_example_gives_its_allocation() {
        // Ghodsi et al.'s example: 9 CPUs and 18 GB; user A's tasks need
        // <1 CPU, 4 GB>, B's <3 CPUs, 1 GB>. DRF gives A three tasks and B
        // two, each a dominant share of 2/3.
        let mut admission = papers_queues(1.0, 10);
        let capacity = Amounts {
            cpu_milli: 9_000,
            memory_mib: 18 * 1_024,
            gpu_milli: 0,
        };
        let admitted = admission.admit(capacity);
        let from = |q: u64| admitted.iter().filter(|t| t.id.0 / 1_000 == q).count();
        assert_eq!((from(0), from(1)), (3, 2));
        for queue in ["a", "b"] {
            let share = admission.usage(queue).unwrap().dominant_share(capacity);
            assert!((share - 2.0 / 3.0).abs() < 1e-9, "{queue}: {share}");
        }
    }

    #[test]
    fn weights_scale_the_fair_share() {
        // B weighs twice A: B's dominant share settles at twice A's (to
        // within one task), and the binding resource is used up.
        let mut admission = papers_queues(2.0, 100);
        let capacity = Amounts {
            cpu_milli: 90_000,
            memory_mib: 180 * 1_024,
            gpu_milli: 0,
        };
        admission.admit(capacity);
        let share = |q: &str| admission.usage(q).unwrap().dominant_share(capacity);
        let (a, b) = (share("a"), share("b"));
        let one_task = 4.0 / 180.0;
        assert!((b / 2.0 - a).abs() <= one_task, "a {a} b {b}");
        let cpu = admission.usage("a").unwrap().cpu_milli + admission.usage("b").unwrap().cpu_milli;
        assert!(cpu > 87_000, "{cpu}");
    }

    #[test]
    fn inside_a_queue_priority_then_submission_order() {
        let mut admission = Admission::new();
        admission
            .add_queue(QueueSpec::new("q").with_max(Limits::cpu_milli(1_000)))
            .unwrap();
        admission.submit("q", task(1, 1_000)).unwrap();
        admission.submit("q", task(2, 1_000)).unwrap();
        let urgent = task(3, 1_000).with_priority(Priority::HIGHEST);
        admission.submit("q", urgent).unwrap();
        let mut order = Vec::new();
        for _ in 0..3 {
            let [next] = admission.admit(cpus(8)).try_into().unwrap();
            order.push(next.id.0);
            admission.ended(next.id);
        }
        assert_eq!(order, [3, 1, 2]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Submit {
            queue: usize,
            cpu: u64,
            memory: u64,
            gpu: u64,
            priority: u8,
        },
        Admit,
        End {
            pick: usize,
        },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..QUEUES.len(), 1..5u64, 1..5u64, 0..3u64, 0..3u8).prop_map(
                |(queue, cpu, memory, gpu, priority)| Op::Submit {
                    queue,
                    cpu: cpu * 500,
                    memory: memory * 512,
                    gpu: gpu * 450,
                    priority
                }
            ),
            Just(Op::Admit),
            any::<usize>().prop_map(|pick| Op::End { pick }),
        ]
    }

    /// A hierarchy with maxima at two levels and a queue without any.
    const QUEUES: [&str; 5] = ["org", "org/a", "org/b", "lab/x", "free"];

    fn hierarchy() -> Admission {
        let mut admission = Admission::new();
        let org = Limits::cpu_milli(6_000).with_gpu_milli(2_000);
        admission
            .add_queue(QueueSpec::new("org").with_max(org))
            .unwrap();
        admission
            .add_queue(QueueSpec::new("org/a").with_weight(2.0))
            .unwrap();
        let b = Limits::cpu_milli(3_000).with_memory_mib(4_096);
        admission
            .add_queue(QueueSpec::new("org/b").with_max(b))
            .unwrap();
        let x = Limits::NONE.with_memory_mib(3_072);
        admission
            .add_queue(QueueSpec::new("lab/x").with_max(x))
            .unwrap();
        admission.add_queue(QueueSpec::new("free")).unwrap();
        admission
    }

    /// What admission should admit, worked out the plain way: again and
    /// again, among the queues (in path order) whose first waiting task
    /// fits every maximum on its path and the cluster, the one of the
    /// least weighted dominant share of what its subtree holds.
    fn reference_admit(
        admission: &Admission,
        live: &[TaskId],
        waiting: &[TaskId],
        submitted: &BTreeMap<TaskId, (&str, TaskSpec)>,
        capacity: Amounts,
    ) -> Vec<TaskId> {
        let (mut live, mut waiting) = (live.to_vec(), waiting.to_vec());
        let amounts = |t: &TaskId| Amounts::of(&submitted[t].1);
        let held = |queue: &str, live: &[TaskId]| {
            live.iter()
                .filter(|t| path(submitted[*t].0).any(|p| p == queue))
                .fold(Amounts::default(), |sum, t| sum.plus(amounts(t)))
        };
        let mut names = QUEUES.to_vec();
        names.sort_unstable();
        let mut out = Vec::new();
        loop {
            let total = live
                .iter()
                .fold(Amounts::default(), |sum, t| sum.plus(amounts(t)));
            let mut best: Option<(f64, TaskId)> = None;
            for &queue in &names {
                let head = waiting
                    .iter()
                    .filter(|t| submitted[*t].0 == queue)
                    .min_by_key(|t| (Reverse(submitted[*t].1.priority), t.0));
                let Some(&head) = head else { continue };
                let more = amounts(&head);
                let within = path(queue).all(|p| {
                    admission
                        .queues
                        .get(p)
                        .is_none_or(|q| q.spec.max.exceeded(held(p, &live).plus(more)).is_none())
                });
                let after = total.plus(more);
                let room = after.cpu_milli <= capacity.cpu_milli
                    && after.memory_mib <= capacity.memory_mib
                    && after.gpu_milli <= capacity.gpu_milli;
                let weight = admission.queues[queue].spec.weight;
                let share = held(queue, &live).dominant_share(capacity) / weight;
                if within && room && best.is_none_or(|(kept, _)| share < kept) {
                    best = Some((share, head));
                }
            }
            let Some((_, chosen)) = best else {
                return out;
            };
            out.push(chosen);
            waiting.retain(|t| *t != chosen);
            live.push(chosen);
        }
    }

    proptest::proptest! {
        /// Whatever is submitted, admitted and ended: each round admits
        /// what the plain reference works out (fairest queue first,
        /// priority then submission order inside one), every queue's usage
        /// is the recount of the admitted tasks below it, no queue passes
        /// its maximum, the cluster is never over-admitted, and once
        /// everything admitted ends, every task waiting gets admitted.
        #[test]
        fn queues_stay_within_their_maxima(ops in proptest::collection::vec(op(), 1..120)) {
            let capacity = Amounts { cpu_milli: 10_000, memory_mib: 12_288, gpu_milli: 3_000 };
            let mut admission = hierarchy();
            let mut next = 0u64;
            let mut submitted: BTreeMap<TaskId, (&str, TaskSpec)> = BTreeMap::new();
            let mut admitted: Vec<TaskId> = Vec::new();
            let mut live: Vec<TaskId> = Vec::new();
            let mut waiting: Vec<TaskId> = Vec::new();
            let mut withdrawn = 0;
            let admit = |admission: &mut Admission, admitted: &mut Vec<TaskId>, live: &mut Vec<TaskId>,
                         waiting: &mut Vec<TaskId>, submitted: &BTreeMap<TaskId, (&str, TaskSpec)>| {
                let expected = reference_admit(admission, live, waiting, submitted, capacity);
                let batch: Vec<TaskId> = admission.admit(capacity).iter().map(|t| t.id).collect();
                proptest::prop_assert_eq!(&batch, &expected);
                waiting.retain(|t| !batch.contains(t));
                admitted.extend(&batch);
                live.extend(&batch);
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Submit { queue, cpu, memory, gpu, priority } => {
                        let mut spec = TaskSpec::new(TaskId(next), Resources::new(cpu, memory))
                            .with_priority(Priority(priority));
                        if gpu > 0 {
                            spec = spec.with_gpu(GpuRequest::shared(gpu as u32));
                        }
                        next += 1;
                        match admission.submit(QUEUES[queue], spec.clone()) {
                            Ok(()) => {
                                waiting.push(spec.id);
                                submitted.insert(spec.id, (QUEUES[queue], spec));
                            }
                            Err(Error::OverQuota { .. }) => {}
                            Err(other) => proptest::prop_assert!(false, "{}", other),
                        }
                    }
                    Op::Admit => admit(&mut admission, &mut admitted, &mut live, &mut waiting, &submitted)?,
                    Op::End { pick } => {
                        // An admitted task ends, or a waiting one is withdrawn.
                        let pick = pick % (live.len() + waiting.len()).max(1);
                        let task = if pick < live.len() {
                            Some(live.swap_remove(pick))
                        } else if pick - live.len() < waiting.len() {
                            withdrawn += 1;
                            Some(waiting.remove(pick - live.len()))
                        } else {
                            None
                        };
                        if let Some(task) = task {
                            proptest::prop_assert!(admission.ended(task));
                            proptest::prop_assert!(!admission.ended(task));
                        }
                    }
                }
                let mut total = Amounts::default();
                for queue in QUEUES {
                    let recount = live.iter()
                        .filter(|t| path(submitted[t].0).any(|p| p == queue))
                        .fold(Amounts::default(), |sum, t| sum.plus(Amounts::of(&submitted[t].1)));
                    proptest::prop_assert_eq!(admission.usage(queue), Some(recount));
                    let max = admission.queues[queue].spec.max;
                    proptest::prop_assert!(max.exceeded(recount).is_none(), "{} over: {:?}", queue, recount);
                }
                for t in &live {
                    total = total.plus(Amounts::of(&submitted[t].1));
                }
                proptest::prop_assert!(total.cpu_milli <= capacity.cpu_milli);
                proptest::prop_assert!(total.memory_mib <= capacity.memory_mib);
                proptest::prop_assert!(total.gpu_milli <= capacity.gpu_milli);
            }
            // Drain: everything admitted ends, and whatever waits comes in.
            for _ in 0..submitted.len() + 1 {
                for task in live.drain(..) {
                    proptest::prop_assert!(admission.ended(task));
                }
                admit(&mut admission, &mut admitted, &mut live, &mut waiting, &submitted)?;
            }
            proptest::prop_assert_eq!(admitted.len() + withdrawn, submitted.len());
            for queue in QUEUES {
                proptest::prop_assert_eq!(admission.waiting(queue), 0);
            }
        }
    }
}
