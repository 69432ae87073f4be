//! Guarantees on a shared GPU cluster, on a real trace: the GPU-node
//! instances of Alibaba's DLRM serving trace ([`read_dlrm`]), their 156
//! services dealt into a few tenant queues, each queue guaranteed, of each
//! resource (CPU, memory, GPUs), the share its services used on the
//! trace's tuning days, on a fixed cluster smaller than the window's peak
//! demand. Three ways of sharing
//! it, all through the real scheduler under best fit:
//!
//! - [`Sharing::Fifo`]: one line, first come first served (every instance
//!   has the trace's one priority, no preemption);
//! - [`Sharing::Priority`]: a priority per tenant (200, 180, …: the
//!   first queue's highest), with preemption (what Kubernetes users build from
//!   PriorityClasses);
//! - [`Sharing::Queues`]: Lepton's tenant queues, equal weights, the
//!   guarantees, reclaim by preemption.
//!
//! Measured: guarantee violations (queue-hours in which one of a queue's
//! instances waited although it would fit within the queue's guarantee on
//! top of what the queue ran), Jain's index of the queues' dominant shares
//! of their guarantees, waits, GPU use and the runs preempted. Each instance is deleted at its deletion time, run
//! or not; nothing in the scheduler reads it.
//!
//! [`read_dlrm`]: crate::read_dlrm

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use lepton_core::admission::{Admission, Amounts, Limits, QueueSpec};
use lepton_core::clock::{ManualClock, Timestamp};
use lepton_core::model::{Priority, Taint};
use lepton_core::scheduler::SchedulerConfig;
use lepton_core::{CoreScheduler, Gpus, NodeId, NodeSpec, Policy, Resources, Run, Scheduler};
use serde::Serialize;

use crate::dlrm::{DlrmInstance, DLRM_GPU_TAINT, RDMA};
use crate::fairness::jain;
use crate::scenario::DLRM_SHAPES;
use crate::Error;

/// Seconds in a day.
const DAY_S: f64 = 86_400.0;

/// The experiment's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantConfig {
    /// The window, in days of the trace: from, to.
    pub days: (f64, f64),
    /// The days whose use sets each queue's guarantee: from, to (before
    /// the window, so the guarantees are what an operator knew).
    pub history: (f64, f64),
    /// How many queues the services are dealt into.
    pub queues: usize,
    /// The cluster's GPUs as a share of the window's peak GPU demand.
    pub capacity: f64,
    /// The share of each of the cluster's resources the guarantees add up
    /// to (packing under the services' density and RDMA limits reaches
    /// about 85 % of the GPUs).
    pub guaranteed: f64,
    /// Seconds between scheduling cycles when nothing happens.
    pub tick_s: u64,
}

impl Default for TenantConfig {
    /// The trace's reporting days (16 to its end), guarantees from the
    /// tuning days (0–16), four queues, 80 % of the peak, a cycle a minute.
    fn default() -> Self {
        TenantConfig {
            days: (16.0, 31.0),
            history: (0.0, 16.0),
            queues: 4,
            capacity: 0.8,
            guaranteed: 0.8,
            tick_s: 60,
        }
    }
}

/// How the cluster is shared among the tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Sharing {
    /// One line, first come first served.
    Fifo,
    /// A priority per tenant (the first queue's highest), with preemption.
    Priority,
    /// Lepton's tenant queues with guarantees and reclaim.
    Queues,
}

impl Sharing {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Sharing::Fifo => "fifo",
            Sharing::Priority => "priority",
            Sharing::Queues => "queues",
        }
    }
}

/// What one way of sharing measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantReport {
    /// `fifo`, `priority` or `queues`.
    pub sharing: &'static str,
    /// The cluster's GPUs.
    pub gpus: u64,
    /// Per queue: its name, its guarantee of GPUs, its hours of guarantee
    /// violation, and the mean wait (minutes) of its instances created in
    /// the window (one that never ran counts until its deletion).
    pub queues: Vec<(String, u64, f64, f64)>,
    /// Guarantee violations: the queues' hours summed.
    pub violation_hours: f64,
    /// Jain's index of the queues' dominant shares of their guarantees
    /// (the largest of held over guaranteed, per resource), over the
    /// queues with work waiting, averaged over the time two or more wait
    /// (1 when each holds in proportion to its guarantee).
    pub jain_waiting: f64,
    /// The 95th-percentile wait, minutes, of the instances created in the
    /// window (counted as in `queues`).
    pub p95_wait_min: f64,
    /// GPUs held, time-averaged, % of the cluster's.
    pub gpu_pct: f64,
    /// Runs stopped to make room for others.
    pub preempted: u64,
    /// Instances deleted (or left at the window's end) without ever
    /// running.
    pub never_ran: u64,
}

/// An instance of the window.
pub(crate) struct Member {
    /// Its queue.
    pub(crate) queue: usize,
    /// What it asks for.
    pub(crate) amounts: Amounts,
    /// Arrival and deletion, seconds from the window's start.
    pub(crate) arrives: u64,
    pub(crate) leaves: u64,
    /// Its run, while it runs.
    pub(crate) run: Option<Run>,
    /// When it first started, seconds from the window's start.
    pub(crate) started: Option<u64>,
    /// Alive when the window opened: left out of the waits.
    pub(crate) carried: bool,
}

/// Runs the window shared `sharing` under `policy`.
///
/// # Errors
/// [`Error::OutOfRange`] for an empty window, history, no queues, a
/// capacity outside (0, 4] or a zero tick; the scheduler's errors
/// otherwise.
pub fn run_tenants(
    instances: &[DlrmInstance],
    policy: Box<dyn Policy>,
    config: &TenantConfig,
    sharing: Sharing,
) -> Result<TenantReport, Error> {
    check(config)?;
    let shape = &DLRM_SHAPES[2];
    // GPU-node instances that fit the node shape (the trace's six asking
    // 400 GiB do not, and are left out).
    let fits =
        |i: &&DlrmInstance| i.gpu_node && i.spec.request.memory_mib <= shape.memory_gib * 1_024;
    let instances: Vec<&DlrmInstance> = instances.iter().filter(fits).collect();
    let queue_of = deal(&instances, config);
    let (from, to) = (config.days.0 * DAY_S, config.days.1 * DAY_S);
    let mut members: Vec<Member> = Vec::new();
    let mut specs = Vec::new();
    for instance in &instances {
        let created = instance.created_s.unwrap_or(f64::NEG_INFINITY);
        let deleted = instance.deleted_s.unwrap_or(f64::INFINITY);
        if created >= to || deleted <= from {
            continue;
        }
        let queue = queue_of[instance.app.as_str()];
        members.push(Member {
            queue,
            amounts: Amounts::of(&instance.spec),
            arrives: (created.max(from) - from) as u64,
            leaves: (deleted.min(to) - from) as u64,
            run: None,
            started: None,
            carried: created < from,
        });
        specs.push(instance.spec.clone());
    }
    let span_s = (to - from) as u64;
    let nodes = nodes_for(&members, config.capacity);
    let gpus = nodes * u64::from(shape.gpus);
    let cluster = Amounts {
        cpu_milli: nodes * shape.cpus * 1_000,
        memory_mib: nodes * shape.memory_gib * 1_024,
        gpu_milli: gpus * 1_000,
    };
    let guarantees = guarantees(&instances, &queue_of, config, cluster);
    let names: Vec<String> = (0..config.queues).map(|q| format!("dlrm/q{q}")).collect();

    let clock = Arc::new(ManualClock::new());
    let mut scheduler = shared_scheduler(policy, clock.clone(), sharing, &names, &guarantees)?;
    for index in 0..nodes {
        let resources = Resources::new(shape.cpus * 1_000, shape.memory_gib * 1_024)
            .with_storage_gib(shape.storage_gib)
            .with_extended(RDMA, 100);
        let node = NodeSpec::new(NodeId(index), resources)
            .with_gpus(Gpus::new("A10G", shape.gpus))
            .with_taint(Taint::new(DLRM_GPU_TAINT, "true"));
        scheduler.add_node(&node)?;
    }
    for (m, spec) in members.iter().zip(&mut specs) {
        match sharing {
            Sharing::Fifo => {}
            Sharing::Priority => {
                *spec = spec
                    .clone()
                    .with_priority(Priority(200 - 20 * m.queue as u8));
            }
            Sharing::Queues => *spec = spec.clone().with_queue(names[m.queue].clone()),
        }
    }

    // Happenings by time: arrivals, deletions, and a cycle every tick.
    let mut at: BTreeMap<u64, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (index, m) in members.iter().enumerate() {
        at.entry(m.arrives).or_default().0.push(index);
        at.entry(m.leaves).or_default().1.push(index);
    }
    for t in (0..span_s).step_by(config.tick_s as usize) {
        at.entry(t).or_default();
    }
    let index_of: HashMap<_, _> = specs.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let mut tally = Tally::new(config.queues);
    let mut preempted = 0;
    let mut last = 0;
    for (&now, (arrivals, deletions)) in &at {
        tally.span(&members, &guarantees, last, now - last);
        last = now;
        clock.set(Timestamp(now * 1_000_000));
        for &i in deletions {
            let m = &mut members[i];
            match m.run.take() {
                Some(run) => scheduler.complete(run)?,
                None if m.arrives < m.leaves => scheduler.cancel(specs[i].id)?,
                None => {}
            }
        }
        for &i in arrivals {
            if members[i].arrives < members[i].leaves {
                scheduler.submit(&specs[i])?;
            }
        }
        for assignment in scheduler.schedule() {
            for evicted in &assignment.evicts {
                if let Some(&i) = index_of.get(&evicted.task) {
                    members[i].run = None;
                    preempted += 1;
                }
            }
            if let Some(&i) = index_of.get(&assignment.task) {
                members[i].run = Some(assignment.run());
                members[i].started.get_or_insert(now);
            }
        }
    }
    tally.span(&members, &guarantees, last, span_s - last);
    Ok(tally.report(
        sharing,
        &members,
        &names,
        &guarantees,
        gpus,
        span_s,
        preempted,
    ))
}

/// The scheduler for `sharing`, on `clock`: preemption but first come
/// first served; with [`Sharing::Queues`], a queue per name guaranteed
/// its amounts.
pub(crate) fn shared_scheduler(
    policy: Box<dyn Policy>,
    clock: Arc<ManualClock>,
    sharing: Sharing,
    names: &[String],
    guarantees: &[Amounts],
) -> Result<CoreScheduler, Error> {
    let mut config = SchedulerConfig::default();
    config.retry_waiting_on_release = true;
    config.preemption = sharing != Sharing::Fifo;
    let mut builder = CoreScheduler::builder(policy).clock(clock).config(config);
    if sharing == Sharing::Queues {
        let mut admission = Admission::new();
        for (name, g) in names.iter().zip(guarantees) {
            let guarantee = Limits::cpu_milli(g.cpu_milli)
                .with_memory_mib(g.memory_mib)
                .with_gpu_milli(g.gpu_milli);
            admission.add_queue(QueueSpec::new(name).with_guarantee(guarantee))?;
        }
        builder = builder.queues(&admission);
    }
    Ok(builder.build())
}

fn check(config: &TenantConfig) -> Result<(), Error> {
    let bad = |name, value: f64, expected| {
        Err(Error::OutOfRange {
            name,
            value,
            expected,
        })
    };
    if !(config.days.0 >= 0.0 && config.days.1 > config.days.0) {
        return bad(
            "days",
            config.days.1 - config.days.0,
            "a window from day 0 on",
        );
    }
    if !(config.history.0 >= 0.0 && config.history.1 > config.history.0) {
        return bad(
            "history",
            config.history.1 - config.history.0,
            "days from day 0 on",
        );
    }
    if config.queues == 0 || config.queues > 8 {
        return bad("queues", config.queues as f64, "1 to 8");
    }
    if !(config.capacity > 0.0 && config.capacity <= 4.0) {
        return bad("capacity", config.capacity, "above 0 and at most 4");
    }
    if !(config.guaranteed > 0.0 && config.guaranteed <= 1.0) {
        return bad("guaranteed", config.guaranteed, "above 0 and at most 1");
    }
    if config.tick_s == 0 {
        return bad("tick_s", 0.0, "at least 1");
    }
    Ok(())
}

/// Deals the services into the queues: by their GPU-hours in the history
/// days, largest first, each to the queue holding the least so far.
fn deal<'a>(instances: &[&'a DlrmInstance], config: &TenantConfig) -> HashMap<&'a str, usize> {
    let mut hours: BTreeMap<&str, f64> = BTreeMap::new();
    for instance in instances {
        *hours.entry(instance.app.as_str()).or_default() += hours_in(instance, config.history);
    }
    let mut apps: Vec<(&str, f64)> = hours.into_iter().collect();
    apps.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut load = vec![0.0_f64; config.queues];
    let mut queue_of = HashMap::new();
    for (app, hours) in apps {
        let queue = (0..config.queues)
            .min_by(|&a, &b| load[a].total_cmp(&load[b]))
            .unwrap_or(0);
        load[queue] += hours;
        queue_of.insert(app, queue);
    }
    queue_of
}

/// The hours `instance` lived within `days` (a GPU-node instance asks one
/// whole GPU: its GPU-hours).
fn hours_in(instance: &DlrmInstance, days: (f64, f64)) -> f64 {
    let start = instance.created_s.unwrap_or(0.0).max(days.0 * DAY_S);
    let end = instance
        .deleted_s
        .unwrap_or(f64::INFINITY)
        .min(days.1 * DAY_S);
    (end - start).max(0.0) / 3_600.0
}

/// Each queue's guarantee: of each resource, its share of what the
/// queues used in the history days, times the guaranteed part of the
/// cluster's, rounded down.
fn guarantees(
    instances: &[&DlrmInstance],
    queue_of: &HashMap<&str, usize>,
    config: &TenantConfig,
    cluster: Amounts,
) -> Vec<Amounts> {
    let mut used = vec![[0.0; 3]; config.queues];
    for instance in instances {
        let hours = hours_in(instance, config.history);
        let amounts = Amounts::of(&instance.spec);
        let queue = &mut used[queue_of[instance.app.as_str()]];
        for (sum, amount) in
            queue
                .iter_mut()
                .zip([amounts.cpu_milli, amounts.memory_mib, amounts.gpu_milli])
        {
            *sum += hours * amount as f64;
        }
    }
    let share = |q: usize, r: usize, of: u64| {
        let total: f64 = used
            .iter()
            .map(|u| u[r])
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        (used[q][r] / total * config.guaranteed * of as f64).floor() as u64
    };
    (0..config.queues)
        .map(|q| Amounts {
            cpu_milli: share(q, 0, cluster.cpu_milli),
            memory_mib: share(q, 1, cluster.memory_mib),
            gpu_milli: share(q, 2, cluster.gpu_milli),
        })
        .collect()
}

/// Nodes for `capacity` times the window's peak of instances alive at once
/// (one GPU each), at least one.
fn nodes_for(members: &[Member], capacity: f64) -> u64 {
    let mut changes: Vec<(u64, i64)> = members
        .iter()
        .flat_map(|m| [(m.arrives, 1), (m.leaves, -1)])
        .collect();
    changes.sort_by_key(|&(t, d)| (t, d));
    let (mut alive, mut peak) = (0i64, 0i64);
    for (_, change) in changes {
        alive += change;
        peak = peak.max(alive);
    }
    let gpus = (peak as f64 * capacity).ceil() as u64;
    gpus.div_ceil(u64::from(DLRM_SHAPES[2].gpus)).max(1)
}

/// What is summed over the window.
pub(crate) struct Tally {
    violation_s: Vec<f64>,
    jain_s: f64,
    jain_sum: f64,
    gpu_s: f64,
}

impl Tally {
    pub(crate) fn new(queues: usize) -> Tally {
        Tally {
            violation_s: vec![0.0; queues],
            jain_s: 0.0,
            jain_sum: 0.0,
            gpu_s: 0.0,
        }
    }

    /// Adds the state `members` were in from `since` for `seconds`.
    pub(crate) fn span(
        &mut self,
        members: &[Member],
        guarantees: &[Amounts],
        since: u64,
        seconds: u64,
    ) {
        if seconds == 0 {
            return;
        }
        let seconds = seconds as f64;
        let mut held = vec![Amounts::default(); guarantees.len()];
        for m in members.iter().filter(|m| m.run.is_some()) {
            held[m.queue] = held[m.queue].plus(m.amounts);
        }
        let mut waiting = vec![false; guarantees.len()];
        let mut owed = vec![false; guarantees.len()];
        for m in members {
            if m.run.is_none() && m.arrives <= since && since < m.leaves {
                waiting[m.queue] = true;
                owed[m.queue] |= covers(guarantees[m.queue], held[m.queue].plus(m.amounts));
            }
        }
        self.gpu_s += seconds * held.iter().map(|h| h.gpu_milli).sum::<u64>() as f64 / 1_000.0;
        let mut shares = Vec::new();
        for q in 0..guarantees.len() {
            if owed[q] {
                self.violation_s[q] += seconds;
            }
            if waiting[q] {
                shares.push(share_of(held[q], guarantees[q]));
            }
        }
        if shares.len() >= 2 {
            self.jain_s += seconds;
            self.jain_sum += seconds * jain(&shares);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn report(
        self,
        sharing: Sharing,
        members: &[Member],
        names: &[String],
        guarantees: &[Amounts],
        gpus: u64,
        span_s: u64,
        preempted: u64,
    ) -> TenantReport {
        let mut waits: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        let mut never_ran = 0;
        for m in members.iter().filter(|m| m.arrives < m.leaves) {
            never_ran += u64::from(m.started.is_none());
            // One that never ran waited until it was deleted.
            if !m.carried {
                let until = m.started.unwrap_or(m.leaves);
                waits[m.queue].push((until - m.arrives) as f64 / 60.0);
            }
        }
        let queues = names
            .iter()
            .enumerate()
            .map(|(q, name)| {
                let mean = waits[q].iter().sum::<f64>() / waits[q].len().max(1) as f64;
                let gpus = guarantees[q].gpu_milli / 1_000;
                (name.clone(), gpus, self.violation_s[q] / 3_600.0, mean)
            })
            .collect();
        let mut all: Vec<f64> = waits.into_iter().flatten().collect();
        all.sort_by(f64::total_cmp);
        let p95 = all
            .get(((all.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0);
        TenantReport {
            sharing: sharing.name(),
            gpus,
            queues,
            violation_hours: self.violation_s.iter().sum::<f64>() / 3_600.0,
            jain_waiting: if self.jain_s > 0.0 {
                self.jain_sum / self.jain_s
            } else {
                1.0
            },
            p95_wait_min: p95,
            gpu_pct: 100.0 * self.gpu_s / (gpus.max(1) as f64 * span_s.max(1) as f64),
            preempted,
            never_ran,
        }
    }
}

/// Whether `amounts` is within `guarantee` in every resource.
fn covers(guarantee: Amounts, amounts: Amounts) -> bool {
    amounts.cpu_milli <= guarantee.cpu_milli
        && amounts.memory_mib <= guarantee.memory_mib
        && amounts.gpu_milli <= guarantee.gpu_milli
}

/// The largest share of `guarantee` that `held` takes, over the resources.
fn share_of(held: Amounts, guarantee: Amounts) -> f64 {
    [
        (held.cpu_milli, guarantee.cpu_milli),
        (held.memory_mib, guarantee.memory_mib),
        (held.gpu_milli, guarantee.gpu_milli),
    ]
    .into_iter()
    .map(|(h, g)| h as f64 / g.max(1) as f64)
    .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{dlrm_trace_path, read_dlrm};

    #[test]
    fn queues_keep_every_guarantee_where_priorities_break_them() {
        let instances = read_dlrm(&dlrm_trace_path()).unwrap();
        let config = TenantConfig {
            days: (16.0, 17.0),
            ..TenantConfig::default()
        };
        let run = |sharing| {
            let policy = lepton_policies::by_name("bestfit").unwrap();
            run_tenants(&instances, policy, &config, sharing).unwrap()
        };
        let (fifo, priority, queues) = (
            run(Sharing::Fifo),
            run(Sharing::Priority),
            run(Sharing::Queues),
        );
        assert_eq!(queues.violation_hours, 0.0, "{queues:?}");
        assert!(queues.preempted > 0, "reclaim never ran: {queues:?}");
        assert!(queues.violation_hours <= fifo.violation_hours, "{fifo:?}");
        // The lowest priority waits the whole window below its guarantee.
        let last = &priority.queues[3];
        assert!(last.2 >= 23.0, "{priority:?}");
        assert!(
            queues.jain_waiting > priority.jain_waiting,
            "{queues:?} {priority:?}"
        );
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let instances = read_dlrm(&dlrm_trace_path()).unwrap();
        for (config, name) in [
            (
                TenantConfig {
                    days: (3.0, 2.0),
                    ..TenantConfig::default()
                },
                "days",
            ),
            (
                TenantConfig {
                    queues: 0,
                    ..TenantConfig::default()
                },
                "queues",
            ),
            (
                TenantConfig {
                    capacity: f64::NAN,
                    ..TenantConfig::default()
                },
                "capacity",
            ),
            (
                TenantConfig {
                    guaranteed: 1.5,
                    ..TenantConfig::default()
                },
                "guaranteed",
            ),
            (
                TenantConfig {
                    tick_s: 0,
                    ..TenantConfig::default()
                },
                "tick_s",
            ),
        ] {
            let policy = lepton_policies::by_name("bestfit").unwrap();
            let err = run_tenants(&instances, policy, &config, Sharing::Queues).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
