//! `/metrics`: the service in Prometheus' text format, through the
//! Prometheus project's own Rust client (`prometheus-client`).

use std::sync::atomic::AtomicU64;

use lepton::scheduler::Report;
use lepton::StepReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PriorityLabel {
    priority: u8,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: &'static str,
}

/// Every metric the service exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    queued: Family<PriorityLabel, Gauge>,
    tasks: Family<StateLabel, Gauge>,
    utilization: Family<ResourceLabel, Gauge<f64, AtomicU64>>,
    decisions: Counter,
    decision_seconds: Histogram,
    placements: Counter,
    run_failures: Counter,
    retries: Counter,
    preemptions: Counter,
    timeouts: Counter,
    accepted: Counter,
    /// The scheduler's totals when last read, to count what is new.
    last: parking_lot::Mutex<(u64, u64, u64, u64)>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lepton");
        let metrics = Metrics {
            queued: Family::default(),
            tasks: Family::default(),
            utilization: Family::default(),
            decisions: Counter::default(),
            // 1 µs to about 4 s.
            decision_seconds: Histogram::new(exponential_buckets(1e-6, 2.0, 22)),
            placements: Counter::default(),
            run_failures: Counter::default(),
            retries: Counter::default(),
            preemptions: Counter::default(),
            timeouts: Counter::default(),
            accepted: Counter::default(),
            last: parking_lot::Mutex::new((0, 0, 0, 0)),
            registry: Registry::default(),
        };
        registry.register(
            "queue_length",
            "Tasks waiting, by priority",
            metrics.queued.clone(),
        );
        registry.register(
            "tasks",
            "Tasks known to the service, by state",
            metrics.tasks.clone(),
        );
        registry.register(
            "utilization_ratio",
            "Share of the nodes' capacity booked, by resource",
            metrics.utilization.clone(),
        );
        registry.register(
            "decisions",
            "Placement decisions",
            metrics.decisions.clone(),
        );
        registry.register(
            "decision_seconds",
            "Time to decide one placement (a scheduling cycle's time over its decisions)",
            metrics.decision_seconds.clone(),
        );
        registry.register("placements", "Runs placed", metrics.placements.clone());
        registry.register(
            "run_failures",
            "Runs that ended in failure",
            metrics.run_failures.clone(),
        );
        registry.register("retries", "Failed runs retried", metrics.retries.clone());
        registry.register(
            "preemptions",
            "Runs evicted for higher priorities",
            metrics.preemptions.clone(),
        );
        registry.register(
            "timeouts",
            "Runs ended for outliving their timeout",
            metrics.timeouts.clone(),
        );
        registry.register(
            "accepted_tasks",
            "Tasks accepted through the API",
            metrics.accepted.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts tasks accepted through the API.
    pub(crate) fn accepted(&self, tasks: u64) {
        self.accepted.inc_by(tasks);
    }

    /// Records a step of the control loop.
    pub(crate) fn step(&self, step: &StepReport) {
        if step.decisions > 0 {
            let each = step.deciding.as_secs_f64() / step.decisions as f64;
            for _ in 0..step.decisions {
                self.decision_seconds.observe(each);
            }
            self.decisions.inc_by(step.decisions as u64);
        }
        let failures = step
            .ended
            .iter()
            .filter(|(_, status)| !matches!(status, lepton::backend::RunStatus::Exited { code: 0 }))
            .count();
        self.run_failures.inc_by(failures as u64);
    }

    /// Sets the gauges and counts the scheduler's new totals.
    pub(crate) fn observe(
        &self,
        report: &Report,
        queued: &[(u8, usize)],
        tasks: &[(&'static str, usize)],
    ) {
        self.queued.clear();
        for &(priority, count) in queued {
            self.queued
                .get_or_create(&PriorityLabel { priority })
                .set(count as i64);
        }
        for &(state, count) in tasks {
            self.tasks
                .get_or_create(&StateLabel { state })
                .set(count as i64);
        }
        for (resource, value) in [
            ("cpu", report.utilization.cpu),
            ("memory", report.utilization.memory),
            ("gpu", report.utilization.gpu),
        ] {
            self.utilization
                .get_or_create(&ResourceLabel { resource })
                .set(value);
        }
        let mut last = self.last.lock();
        let now = (
            report.placements,
            report.retries,
            report.preemptions,
            report.timeouts,
        );
        self.placements.inc_by(now.0.saturating_sub(last.0));
        self.retries.inc_by(now.1.saturating_sub(last.1));
        self.preemptions.inc_by(now.2.saturating_sub(last.2));
        self.timeouts.inc_by(now.3.saturating_sub(last.3));
        *last = now;
    }

    /// The text format.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
