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
//! cannot be admitted yet admits nothing behind it (no queue jumping) but
//! tasks within its guarantee. A
//! queue held back by its own maxima lets the others go on; the fairest
//! queue's first task waiting for room in the cluster holds back the less
//! fair queues until it fits, so floods of small tasks cannot starve large
//! ones — but not a queue whose first task is within its
//! [guarantee](QueueSpec::guarantee), which goes first (the scheduler
//! reclaims the room from queues running more than theirs). The members of a [gang](crate::model::Gang) waiting in one queue
//! are admitted together or not at all, so that members admitted alone
//! never hold a queue's share while waiting for the rest. A task that ends
//! gives its share back ([`Admission::ended`]).
//!
//! Admission keeps of a task only what it decides by — its id, priority,
//! amounts and gang — and hands back ids: the caller keeps the tasks.
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
//!     admission.submit("org/ml", &task).unwrap();
//! }
//! let cluster = Amounts { cpu_milli: 64_000, memory_mib: 262_144, gpu_milli: 0 };
//! // Two fit under the queue's 4 CPUs; the third waits for one to end.
//! assert_eq!(admission.admit(cluster), [TaskId(1), TaskId(2)]);
//! admission.ended(TaskId(1));
//! assert_eq!(admission.admit(cluster), [TaskId(3)]);
//! ```

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::BTreeMap;

use foldhash::HashMap;

use crate::error::Error;
use crate::task::{Priority, TaskId, TaskSpec};

mod line;
mod order;
mod spec;
mod state;

use line::Line;
use order::Order;
use spec::{invalid_name, within};
pub use spec::{ready_capacity, Amounts, Limits, QueueSpec, MAX_QUEUE_DEPTH, MAX_QUEUE_NAME};
pub use state::{AdmissionState, WaitingTask};

/// `name` and each path above it, `org/team/user`, `org/team`, `org`.
fn path(name: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(name), |n| n.rfind('/').map(|at| &n[..at]))
}

#[derive(Debug)]
struct Queue {
    spec: QueueSpec,
    /// The declared queues on its path, itself first: whose usage its
    /// tasks count in, and whose maxima they must keep.
    above: Vec<usize>,
    /// What the tasks admitted from it and from the queues below it hold.
    usage: Amounts,
    /// What those of them that run hold: what reclaim weighs against the
    /// guarantee (a task admitted but not yet placed holds no room).
    runs: Amounts,
    /// Its own tasks waiting, in admission order: higher priority first,
    /// then submission order.
    waiting: Line,
    /// Its key in [`Admission::order`] while tasks wait in it.
    ordered: Option<u64>,
}

/// A waiting task's place in its queue: higher priority first, then
/// submission order.
type WaitKey = (Reverse<Priority>, u64);

/// How many of a guaranteed queue's waiting tasks admission looks through
/// for one within the guarantee when the first one cannot go.
const OWED_SCAN: usize = 64;

/// A task waiting in a queue: what admission decides by.
#[derive(Debug)]
struct Waiting {
    task: TaskId,
    amounts: Amounts,
    gang: Option<Box<str>>,
}

impl Waiting {
    /// Whether it belongs to gang `name`.
    fn in_gang(&self, name: &str) -> bool {
        self.gang.as_deref() == Some(name)
    }
}

/// An admitted task: its queue, what it asks for, whether it runs.
#[derive(Debug, Clone, Copy)]
struct Admitted {
    queue: usize,
    amounts: Amounts,
    runs: bool,
}

/// A task admission knows: waiting in queue `.0` under key `.1`, or
/// admitted.
#[derive(Debug, Clone, Copy)]
enum Held {
    Waiting(usize, WaitKey),
    Admitted(Admitted),
}

/// The queues, their waiting tasks and what the admitted ones hold (see
/// the [module docs](self)).
#[derive(Debug, Default)]
pub struct Admission {
    /// The queues, in the order declared.
    queues: Vec<Queue>,
    /// Each queue's place in `queues`, by path.
    index: HashMap<String, usize>,
    /// Each task until it ends: its queue and key there while it waits;
    /// once admitted, its queue, amounts and whether it runs.
    tasks: HashMap<TaskId, Held>,
    /// The queues with a guarantee, in the order declared.
    guaranteed: Vec<usize>,
    /// What all admitted tasks hold.
    total: Amounts,
    submitted: u64,
    /// The queues with tasks waiting, fairest first: by weighted dominant
    /// share as the bits of a non-negative float, which order as it does;
    /// the first declared first on ties.
    order: Order,
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
        let guarantee = [
            spec.guarantee.cpu_milli,
            spec.guarantee.memory_mib,
            spec.guarantee.gpu_milli,
        ];
        let max = [spec.max.cpu_milli, spec.max.memory_mib, spec.max.gpu_milli];
        if guarantee
            .iter()
            .zip(max)
            .any(|(g, m)| matches!((g, m), (Some(g), Some(m)) if *g > m))
        {
            return Err(invalid("its guarantee exceeds its maximum"));
        }
        if self.index.contains_key(&spec.name) {
            return Err(Error::DuplicateQueue { queue: spec.name });
        }
        let new = self.queues.len();
        // The queues below it count against it from now on, and what
        // their admitted tasks hold already does.
        let (mut usage, mut runs) = (Amounts::default(), Amounts::default());
        for (i, queue) in self.queues.iter_mut().enumerate() {
            if path(&queue.spec.name).any(|p| p == spec.name) {
                queue.above.push(new);
                let admitted = self.tasks.values().filter_map(|held| match held {
                    Held::Admitted(task) if task.queue == i => Some(task),
                    _ => None,
                });
                for task in admitted {
                    usage = usage.plus(task.amounts);
                    if task.runs {
                        runs = runs.plus(task.amounts);
                    }
                }
            }
        }
        let above = path(&spec.name)
            .filter_map(|p| {
                if p == spec.name {
                    Some(new)
                } else {
                    self.index.get(p).copied()
                }
            })
            .collect();
        self.index.insert(spec.name.clone(), new);
        if !spec.guarantee.is_none() {
            self.guaranteed.push(new);
        }
        self.queues.push(Queue {
            spec,
            above,
            usage,
            runs,
            waiting: Line::default(),
            ordered: None,
        });
        Ok(())
    }

    /// The declared queues, by path.
    pub fn queues(&self) -> impl Iterator<Item = &QueueSpec> {
        let mut specs: Vec<&QueueSpec> = self.queues.iter().map(|q| &q.spec).collect();
        specs.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        specs.into_iter()
    }

    /// Puts queue `i` in its place in [`order`](Self::order): by its share
    /// now while tasks wait in it, nowhere otherwise.
    fn reorder(&mut self, i: usize) {
        let Some(queue) = self.queues.get_mut(i) else {
            return;
        };
        if queue.waiting.is_empty() {
            if queue.ordered.take().is_some() {
                self.order.remove(i);
            }
            return;
        }
        let share = queue.usage.dominant_share(self.capacity) / queue.spec.weight;
        let key = share.to_bits();
        if queue.ordered != Some(key) {
            queue.ordered = Some(key);
            self.order.set(i, key);
        }
    }

    /// Holds `task` in `queue` until it is admitted. (A
    /// [`CoreScheduler`](crate::CoreScheduler) given an admission submits
    /// each task with a [`queue`](TaskSpec::queue) here.)
    ///
    /// # Errors
    /// As [`check`](Self::check) says, and [`Error::DuplicateTask`] for a
    /// task waiting or admitted already.
    pub fn submit(&mut self, queue: &str, task: &TaskSpec) -> Result<(), Error> {
        let amounts = Amounts::of(task);
        let i = self.queue_for(queue, task.id, amounts)?;
        let gang = task.gang.as_ref().map(|g| g.name.as_str().into());
        let waiting = Waiting {
            task: task.id,
            amounts,
            gang,
        };
        self.wait(i, task.priority, waiting)
    }

    /// Holds `waiting` in queue `i`, last of those of its `priority`.
    fn wait(&mut self, i: usize, priority: Priority, waiting: Waiting) -> Result<(), Error> {
        let key = (Reverse(priority), self.submitted);
        match self.tasks.entry(waiting.task) {
            Entry::Vacant(entry) => entry.insert(Held::Waiting(i, key)),
            Entry::Occupied(_) => return Err(Error::DuplicateTask { task: waiting.task }),
        };
        self.submitted += 1;
        self.queues[i].waiting.push(key, waiting);
        // Its share is unchanged: it takes a place only if it had none.
        if self.queues[i].ordered.is_none() {
            self.reorder(i);
        }
        Ok(())
    }

    /// Whether `queue` would take `task`, without submitting it: what a
    /// service checks before it accepts a task.
    ///
    /// # Errors
    /// [`Error::UnknownQueue`] for a queue not declared;
    /// [`Error::OverQuota`] for a task larger than the maximum of its
    /// queue or of a queue above it (it could never be admitted).
    pub fn check(&self, queue: &str, task: &TaskSpec) -> Result<(), Error> {
        self.queue_for(queue, task.id, Amounts::of(task)).map(drop)
    }

    /// The index of `queue`, if it would take `task` asking for `amounts`
    /// (see [`check`](Self::check)).
    fn queue_for(&self, queue: &str, task: TaskId, amounts: Amounts) -> Result<usize, Error> {
        let Some(&i) = self.index.get(queue) else {
            return Err(Error::UnknownQueue {
                task,
                queue: queue.to_owned(),
            });
        };
        for &a in &self.queues[i].above {
            let above = &self.queues[a].spec;
            if let Some((resource, asked, max)) = above.max.exceeded(amounts) {
                return Err(Error::OverQuota {
                    task,
                    queue: above.name.clone(),
                    resource,
                    asked,
                    max,
                });
            }
        }
        Ok(i)
    }

    /// Counts `task`, which already runs, as admitted from `queue` — even
    /// above a maximum: a task found running after a restart, say. It
    /// gives its share back when it [`ended`](Self::ended).
    ///
    /// # Errors
    /// [`Error::UnknownQueue`] for a queue not declared;
    /// [`Error::DuplicateTask`] for a task waiting or admitted already.
    pub fn adopt(&mut self, queue: &str, task: &TaskSpec) -> Result<(), Error> {
        self.hold(task.id, queue, Amounts::of(task))
    }

    /// Counts `amounts` as admitted for `task` from `queue`.
    fn hold(&mut self, task: TaskId, queue: &str, amounts: Amounts) -> Result<(), Error> {
        let Some(&i) = self.index.get(queue) else {
            return Err(Error::UnknownQueue {
                task,
                queue: queue.to_owned(),
            });
        };
        let Entry::Vacant(entry) = self.tasks.entry(task) else {
            return Err(Error::DuplicateTask { task });
        };
        entry.insert(Held::Admitted(Admitted {
            queue: i,
            amounts,
            runs: false,
        }));
        self.charge(i, amounts, Amounts::plus);
        self.total = self.total.plus(amounts);
        Ok(())
    }

    /// Whether `task` waits in a queue.
    pub fn is_waiting(&self, task: TaskId) -> bool {
        matches!(self.tasks.get(&task), Some(Held::Waiting(..)))
    }

    /// Whether any task waits.
    pub fn has_waiting(&self) -> bool {
        // Exactly the queues with tasks waiting have a place in the order.
        !self.order.is_empty()
    }

    /// Admitted `task`: its queue, amounts and whether it runs.
    fn admitted(&self, task: TaskId) -> Option<&Admitted> {
        match self.tasks.get(&task) {
            Some(Held::Admitted(admitted)) => Some(admitted),
            _ => None,
        }
    }

    /// The same queues, with no task waiting or admitted.
    pub fn without_tasks(&self) -> Admission {
        Admission {
            queues: self
                .queues
                .iter()
                .map(|q| Queue {
                    spec: q.spec.clone(),
                    above: q.above.clone(),
                    usage: Amounts::default(),
                    runs: Amounts::default(),
                    waiting: Line::default(),
                    ordered: None,
                })
                .collect(),
            index: self.index.clone(),
            guaranteed: self.guaranteed.clone(),
            ..Admission::default()
        }
    }

    /// Admits waiting tasks while they fit, fairest queue first, on a
    /// cluster of `capacity`: each admitted task keeps every declared
    /// queue on its path within its maximum and all admitted tasks within
    /// `capacity`. Returns their ids in admission order, for the scheduler.
    pub fn admit(&mut self, capacity: Amounts) -> Vec<TaskId> {
        if capacity != self.capacity {
            // Every share is of the capacity: all places change.
            self.capacity = capacity;
            for i in 0..self.queues.len() {
                self.reorder(i);
            }
        }
        let mut admitted = Vec::new();
        while let Some((i, key)) = self.fairest_ready() {
            let Some(mut first) = self.queues[i].waiting.remove(key) else {
                break;
            };
            let gang = first.gang.take();
            self.take(i, first, &mut admitted);
            if let Some(gang) = gang {
                // The gang's other members waiting here go with it.
                for member in self.queues[i].waiting.take_gang(&gang) {
                    self.take(i, member, &mut admitted);
                }
            }
        }
        admitted
    }

    /// Admits `task`, just taken from queue `i`'s waiting tasks.
    fn take(&mut self, i: usize, task: Waiting, admitted: &mut Vec<TaskId>) {
        let amounts = task.amounts;
        self.charge(i, amounts, Amounts::plus);
        self.total = self.total.plus(amounts);
        if let Some(held) = self.tasks.get_mut(&task.task) {
            *held = Held::Admitted(Admitted {
                queue: i,
                amounts,
                runs: false,
            });
        }
        admitted.push(task.task);
    }

    /// Queue `i`'s first waiting task and what it asks for — with, when
    /// it belongs to a gang, the gang's other members waiting in the
    /// queue: a gang's members are admitted together or not at all, so
    /// that members admitted alone never hold a queue's share while
    /// waiting for the rest.
    fn first_unit(&self, i: usize) -> Option<(WaitKey, Amounts)> {
        let waiting = &self.queues[i].waiting;
        let (key, first) = waiting.first()?;
        let Some(gang) = &first.gang else {
            return Some((key, first.amounts));
        };
        let members = waiting.iter().filter(|(_, t)| t.in_gang(gang));
        Some((
            key,
            members.fold(Amounts::default(), |sum, (_, t)| sum.plus(t.amounts)),
        ))
    }

    /// The task to admit, and its queue: the first task of the fairest
    /// queue (lowest weighted dominant share, the first declared on ties)
    /// whose first task is within the maxima of its path — when the
    /// cluster has room for it, or it is within its queue's guarantee (the
    /// room is reclaimed from queues that borrowed it). When it has not,
    /// it waits for room and no less fair queue goes ahead of it, or a
    /// stream of small tasks could take every bit freed and starve a large
    /// one for ever (a task larger than the whole cluster holds nobody
    /// back) — but for tasks within their queue's guarantee, which go
    /// whatever waits before them (see [`fairest_owed`](Self::fairest_owed)).
    fn fairest_ready(&self) -> Option<(usize, WaitKey)> {
        for i in self.order.iter() {
            let Some((key, amounts)) = self.first_unit(i) else {
                continue;
            };
            if !self.within_maxima(i, amounts) {
                continue;
            }
            if within(self.total.plus(amounts), self.capacity) || self.within_guarantee(i, amounts)
            {
                return Some((i, key));
            }
            if within(amounts, self.capacity) {
                break;
            }
        }
        self.fairest_owed()
    }

    /// Among the queues with a guarantee, the fairest with a task within
    /// its guarantee and the maxima of its path, and that task: the first
    /// such among its first [`OWED_SCAN`] waiting tasks — even behind a
    /// first task that waits for room (a gang behind it waits its turn:
    /// only plain tasks are looked at past the first).
    fn fairest_owed(&self) -> Option<(usize, WaitKey)> {
        self.guaranteed
            .iter()
            .filter_map(|&i| {
                let order = self.queues[i].ordered?;
                let (head, amounts) = self.first_unit(i)?;
                let fits =
                    |amounts| self.within_maxima(i, amounts) && self.within_guarantee(i, amounts);
                if fits(amounts) {
                    return Some((order, i, head));
                }
                let waiting = self.queues[i].waiting.iter().skip(1).take(OWED_SCAN);
                let mut plain = waiting.filter(|(_, t)| t.gang.is_none());
                let (key, _) = plain.find(|(_, t)| fits(t.amounts))?;
                Some((order, i, key))
            })
            .min()
            .map(|(_, i, key)| (i, key))
    }

    /// Whether queue `i` holds no more than its guarantee with `amounts`
    /// more.
    fn within_guarantee(&self, i: usize, amounts: Amounts) -> bool {
        let queue = &self.queues[i];
        queue.spec.guarantee.covers(queue.usage.plus(amounts))
    }

    /// Whether admitted `task` may reclaim room from queues above their
    /// guarantee: its own queue runs no more than its guarantee with it.
    pub fn may_reclaim(&self, task: TaskId) -> bool {
        self.admitted(task).is_some_and(|task| {
            let queue = &self.queues[task.queue];
            queue.spec.guarantee.covers(queue.runs.plus(task.amounts))
        })
    }

    /// Whether admitted `task`'s queue runs more than its guarantee: the
    /// task runs on borrowed room, which may be reclaimed.
    pub fn is_borrowed(&self, task: TaskId) -> bool {
        self.admitted(task).is_some_and(|task| {
            let queue = &self.queues[task.queue];
            !queue.spec.guarantee.covers(queue.runs)
        })
    }

    /// Whether taking back `victims`' shares leaves each of their queues
    /// running at or above its guarantee in every resource it borrows
    /// (runs more of than promised); what it runs within its guarantee of
    /// another resource goes with the tasks.
    pub fn keeps_guarantees(&self, victims: &[TaskId]) -> bool {
        let mut taken: BTreeMap<usize, Amounts> = BTreeMap::new();
        for victim in victims {
            if let Some(task) = self.admitted(*victim) {
                let sum = taken.entry(task.queue).or_default();
                *sum = sum.plus(task.amounts);
            }
        }
        taken.into_iter().all(|(i, sum)| {
            let queue = &self.queues[i];
            let left = queue.runs.minus(sum);
            let promised = queue.spec.guarantee;
            let keeps = |left: u64, used: u64, promised: Option<u64>| {
                let promised = promised.unwrap_or(0);
                used <= promised || left >= promised
            };
            keeps(left.cpu_milli, queue.runs.cpu_milli, promised.cpu_milli)
                && keeps(left.memory_mib, queue.runs.memory_mib, promised.memory_mib)
                && keeps(left.gpu_milli, queue.runs.gpu_milli, promised.gpu_milli)
        })
    }

    /// Admitted `task` started running (`true`) or stopped (`false`); the
    /// scheduler tells. Ignored for a task not admitted or already so.
    pub fn set_running(&mut self, task: TaskId, running: bool) {
        let Some(Held::Admitted(task)) = self.tasks.get_mut(&task) else {
            return;
        };
        if task.runs == running {
            return;
        }
        task.runs = running;
        let (i, amounts) = (task.queue, task.amounts);
        let apply = if running {
            Amounts::plus
        } else {
            Amounts::minus
        };
        self.charge_runs(i, amounts, apply);
    }

    /// Adds (or takes back) `amounts` on what runs in every declared queue
    /// of queue `i`'s path.
    fn charge_runs(&mut self, i: usize, amounts: Amounts, apply: fn(Amounts, Amounts) -> Amounts) {
        for k in 0..self.queues[i].above.len() {
            let a = self.queues[i].above[k];
            self.queues[a].runs = apply(self.queues[a].runs, amounts);
        }
    }

    /// Whether `amounts` more in queue `i` keep every declared queue on
    /// its path within its maximum.
    fn within_maxima(&self, i: usize, amounts: Amounts) -> bool {
        self.queues[i].above.iter().all(|&a| {
            let queue = &self.queues[a];
            queue.spec.max.exceeded(queue.usage.plus(amounts)).is_none()
        })
    }

    /// Adds (or takes back) `amounts` on every declared queue of queue
    /// `i`'s path, each moving to its new place in the order.
    fn charge(&mut self, i: usize, amounts: Amounts, apply: fn(Amounts, Amounts) -> Amounts) {
        for k in 0..self.queues[i].above.len() {
            let a = self.queues[i].above[k];
            self.queues[a].usage = apply(self.queues[a].usage, amounts);
            self.reorder(a);
        }
    }

    /// An admitted task ended (completed, failed for good, cancelled): its
    /// share goes back to its queues. A task still waiting is withdrawn.
    /// `false` for a task admission does not know.
    pub fn ended(&mut self, task: TaskId) -> bool {
        match self.tasks.remove(&task) {
            Some(Held::Admitted(Admitted {
                queue,
                amounts,
                runs,
            })) => {
                if runs {
                    self.charge_runs(queue, amounts, Amounts::minus);
                }
                self.charge(queue, amounts, Amounts::minus);
                self.total = self.total.minus(amounts);
                true
            }
            Some(Held::Waiting(i, key)) => {
                self.queues[i].waiting.remove(key);
                self.reorder(i);
                true
            }
            None => false,
        }
    }

    /// What the admitted tasks of `queue` and of the queues below it hold;
    /// `None` for a queue not declared.
    pub fn usage(&self, queue: &str) -> Option<Amounts> {
        self.index.get(queue).map(|&i| self.queues[i].usage)
    }

    /// What the running tasks of `queue` and of the queues below it hold;
    /// `None` for a queue not declared.
    pub fn runs(&self, queue: &str) -> Option<Amounts> {
        self.index.get(queue).map(|&i| self.queues[i].runs)
    }

    /// How many tasks wait in `queue` itself.
    pub fn waiting(&self, queue: &str) -> usize {
        self.index
            .get(queue)
            .map_or(0, |&i| self.queues[i].waiting.len())
    }

    /// The declaration of `queue`, if declared.
    pub fn queue(&self, queue: &str) -> Option<&QueueSpec> {
        self.index.get(queue).map(|&i| &self.queues[i].spec)
    }

    /// Why `task` waits: the first declared queue on its path whose
    /// maximum it would exceed now, or the cluster being fully admitted,
    /// or the tasks ahead of it in its queue. `None` when it is not
    /// waiting.
    pub fn why_waiting(&self, task: TaskId, capacity: Amounts) -> Option<String> {
        let &Held::Waiting(i, key) = self.tasks.get(&task)? else {
            return None;
        };
        let own = &self.queues[i];
        let amounts = own.waiting.get(key)?.amounts;
        for &a in &own.above {
            let q = &self.queues[a];
            if let Some((resource, used, max)) = q.spec.max.exceeded(q.usage.plus(amounts)) {
                return Some(format!(
                    "queue {} is at its maximum: {resource} {used} with this task > {max}",
                    q.spec.name
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
        let queue = &own.spec.name;
        Some(match own.waiting.ahead(key) {
            0 => format!("first in queue {queue}: admitted at the next round"),
            ahead => format!("{ahead} tasks ahead of it in queue {queue}"),
        })
    }
}

#[cfg(test)]
mod tests;
