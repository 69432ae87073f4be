//! Tunables of the scheduler: backoff, retries, failure detection,
//! preemption and rebalancing.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use crate::error::Error;
use crate::task::TaskKind;

/// Tunables of [`CoreScheduler`](crate::CoreScheduler). The defaults are
/// documented per field and in `docs/RELIABILITY.md`.
///
/// More tunables will come, so the struct is `#[non_exhaustive]`: start
/// from the defaults and set what you need.
///
/// ```
/// use std::time::Duration;
/// use lepton_core::scheduler::SchedulerConfig;
///
/// let mut config = SchedulerConfig::default();
/// config.heartbeat_timeout = Some(Duration::from_secs(30));
/// config.preemption = false;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SchedulerConfig {
    /// Backoff after a task first finds no node (kube-scheduler: 1 s).
    pub backoff_initial: Duration,
    /// The backoff doubles up to this (kube-scheduler: 10 s).
    pub backoff_max: Duration,
    /// When set, one queue pop in this many serves lower priorities round-robin.
    pub aging_every: Option<NonZeroU32>,
    /// Retries of batch tasks (default [`RetryPolicy::BATCH`]).
    pub retry_batch: RetryPolicy,
    /// Retries of service tasks (default [`RetryPolicy::SERVICE`]).
    pub retry_service: RetryPolicy,
    /// A node silent for longer than this is declared down. `None` (the
    /// default) trusts nodes until an event says otherwise.
    pub heartbeat_timeout: Option<Duration>,
    /// Whether a task that fits nowhere may evict tasks of lower priority
    /// (default on).
    pub preemption: bool,
    /// Periodic rebalancing of hot nodes; `None` (the default) turns it off.
    pub rebalance: Option<RebalanceConfig>,
    /// Event-driven retries. Tasks that found no node wait, without a
    /// timer each, for a change that could let them fit — a node they fit
    /// on gained room (a run ended or was cancelled, the node joined, came
    /// up or was uncordoned), a task they may preempt was placed, the
    /// policy changed — as kube-scheduler moves unschedulable pods back on
    /// cluster events; tasks alike in request, GPUs, constraints, priority
    /// and QoS class are tried one at a time, the next only once the first
    /// was placed, and the first is tried at the latest `waiting_recheck`
    /// after it found nothing. A cycle then costs what changed, not the
    /// length of the queue. What a service wants; off by default, for
    /// simulators that time their own retries with the 1 s doubling to
    /// 10 s backoff.
    pub retry_waiting_on_release: bool,
    /// With event-driven retries, how long tasks alike wait at most before
    /// the first is tried again with no event announcing a change (for
    /// what none announces: a filter reading measured usage, a preemption
    /// search that covered part of a large cluster). Default 60 s;
    /// kube-scheduler flushes unschedulable pods after 5 min.
    pub waiting_recheck: Duration,
    /// Backfill with a reservation (see `backfill.rs`): the
    /// highest-priority task that finds no node reserves the node where
    /// running tasks' `timeout_ms` make room soonest, and other tasks go
    /// there only if they will have ended by then. Off by default.
    pub backfill: bool,
    /// At most this many queued tasks a cycle takes (with the tasks it
    /// queues itself: those its preemptions evict); the rest wait, in
    /// priority order, for the next cycle, which the driver then runs at
    /// once ([`CoreScheduler::cycle_cut_short`](crate::CoreScheduler::cycle_cut_short)).
    /// Bounds a cycle's latency, and keeps what it touches in the CPU's
    /// caches: with a backlog of 40,000 tasks, cycles of 128 place and
    /// complete about twice as many tasks a second as one cycle of 40,000
    /// (`docs/PERFORMANCE.md`). Slurm's main scheduler tries
    /// `default_queue_depth` (100) jobs a cycle. `None` (the default):
    /// every task queued when the cycle begins.
    pub max_tasks_per_cycle: Option<NonZeroUsize>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            aging_every: None,
            retry_batch: RetryPolicy::BATCH,
            retry_service: RetryPolicy::SERVICE,
            heartbeat_timeout: None,
            preemption: true,
            rebalance: None,
            retry_waiting_on_release: false,
            waiting_recheck: Duration::from_secs(60),
            backfill: false,
            max_tasks_per_cycle: None,
        }
    }
}

impl SchedulerConfig {
    /// The retry policy for tasks of `kind`.
    pub fn retry(&self, kind: TaskKind) -> &RetryPolicy {
        match kind {
            TaskKind::Batch => &self.retry_batch,
            TaskKind::Service => &self.retry_service,
        }
    }
}

/// How often, and after how long, a failed task is tried again.
///
/// A failed attempt — the task failed or timed out, its launch failed, or its
/// node went down — is charged to the task's budget. While budget is left the
/// task waits `delay`, doubled after each further failure up to `max_delay`,
/// then goes back to the queue and avoids the node it failed on when another
/// fits. Once `max_retries` retries are spent the next failure is final: the
/// task ends failed with every reason in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; `None` retries without limit.
    pub max_retries: Option<u32>,
    /// Wait before the first retry.
    pub delay: Duration,
    /// The wait doubles up to this; equal to `delay` for a constant wait.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Batch tasks: 3 retries, 5 s apart. (Nomad's batch default: 1 retry
    /// per 24 h after 5 s.)
    pub const BATCH: RetryPolicy = RetryPolicy {
        max_retries: Some(3),
        delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(5),
    };

    /// Service tasks: retried without limit, 5 s doubling to 5 min. (Nomad's
    /// service default: unlimited, 30 s doubling to 1 h.)
    pub const SERVICE: RetryPolicy = RetryPolicy {
        max_retries: None,
        delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(300),
    };

    /// Retried at once and without limit: the simulator's choice when node
    /// failures are the experiment, not the tasks' fault.
    pub const IMMEDIATE: RetryPolicy = RetryPolicy {
        max_retries: None,
        delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// Whether a task that has failed `failures` times may run again.
    pub fn allows(&self, failures: u32) -> bool {
        self.max_retries.is_none_or(|max| failures <= max)
    }

    /// The wait before retrying after the `failures`-th failure (from 1).
    pub fn delay_after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay.max(self.delay))
    }
}

/// The rebalancer's settings: every `period`, move at most `max_moves`
/// tasks off nodes whose fullest dimension is above `high` onto nodes below
/// `low`, never pushing a target above `high`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RebalanceConfig {
    period: Duration,
    low: f64,
    high: f64,
    max_moves: usize,
}

impl RebalanceConfig {
    /// Checked settings: thresholds are fractions with `0 <= low < high <= 1`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the offending setting (NaN included).
    pub fn new(period: Duration, low: f64, high: f64, max_moves: usize) -> Result<Self, Error> {
        if !(0.0..1.0).contains(&low) {
            return Err(Error::OutOfRange {
                name: "rebalance low threshold",
                value: low,
                expected: "a fraction in [0, 1)",
            });
        }
        if !(high > low && high <= 1.0) {
            return Err(Error::OutOfRange {
                name: "rebalance high threshold",
                value: high,
                expected: "a fraction above the low threshold, at most 1",
            });
        }
        Ok(RebalanceConfig {
            period,
            low,
            high,
            max_moves,
        })
    }

    /// How often the rebalancer runs.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Nodes below this share are targets.
    pub fn low(&self) -> f64 {
        self.low
    }

    /// Nodes above this share are sources.
    pub fn high(&self) -> f64 {
        self.high
    }

    /// Moves per run, at most.
    pub fn max_moves(&self) -> usize {
        self.max_moves
    }
}

impl Default for RebalanceConfig {
    /// Every 60 s, at most 10 moves from above 85 % to below 50 %.
    fn default() -> Self {
        RebalanceConfig {
            period: Duration::from_secs(60),
            low: 0.5,
            high: 0.85,
            max_moves: 10,
        }
    }
}
