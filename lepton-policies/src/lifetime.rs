//! Lifetime prediction learned online: how long a task will run, as a
//! distribution (quantiles), from the tasks of its kind that already ended
//! — what a real scheduler can know when it places a task, never the
//! task's own duration.
//!
//! Each kind (an application name, a shape: whatever key the caller
//! chooses) keeps a histogram of the logarithms of its finished lifetimes,
//! [`BINS_PER_DOUBLING`] bins for each doubling, so memory stays bounded
//! however many tasks end; a kind with fewer than [`MIN_SEEN`] finished
//! tasks is predicted from every task seen so far.

use std::sync::OnceLock;

use foldhash::HashMap;

use lepton_core::TaskSpec;

/// Histogram bins per doubling of the lifetime (about 9 % apart).
pub const BINS_PER_DOUBLING: f64 = 8.0;
/// Finished tasks a kind needs before its own history predicts it.
pub const MIN_SEEN: u64 = 5;
/// Lifetimes are counted from 1 s to 2^30 s (34 years), clamped.
const BINS: usize = (30.0 * BINS_PER_DOUBLING) as usize + 1;

/// The kind a task is predicted by, from what a scheduler knows when it
/// places it: its application (the `app` entry of its configuration, as
/// Kubernetes workloads carry an `app` label), its shape (CPU, memory,
/// GPUs) and its priority.
///
/// It reads `{app}/{cpu}m/{memory}Mi/{gpus}g/p{priority}`, `-` for a task
/// without an `app`. (Written digit by digit: a decision of the `lifetime`
/// policy builds one, and `format!` costs a tenth of the decision.)
pub fn task_kind(task: &TaskSpec) -> String {
    let app = task.config.get("app").map_or("-", String::as_str);
    let mut kind = String::with_capacity(app.len() + 48);
    kind.push_str(app);
    for (before, number) in [
        ("/", task.request.cpu_milli),
        ("m/", task.request.memory_mib),
        ("Mi/", u64::from(task.gpu.count)),
        ("g/p", u64::from(task.priority.0)),
    ] {
        kind.push_str(before);
        push_decimal(&mut kind, number);
    }
    kind
}

/// Appends `number` in decimal.
fn push_decimal(out: &mut String, mut number: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    out.extend(digits[start..].iter().map(|&digit| char::from(digit)));
}

/// A predicted lifetime: its 10th, 50th and 90th percentiles, seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lifetime {
    /// 10th percentile, seconds.
    pub p10_s: f64,
    /// Median, seconds.
    pub p50_s: f64,
    /// 90th percentile, seconds.
    pub p90_s: f64,
}

/// Finished lifetimes, binned by their logarithm.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    /// The quantiles of every bin, once asked, until the next lifetime.
    all: OnceLock<Option<Lifetime>>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BINS],
            total: 0,
            all: OnceLock::new(),
        }
    }
}

impl Histogram {
    fn add(&mut self, lifetime_s: f64) {
        self.counts[bin(lifetime_s)] += 1;
        self.total += 1;
        self.all = OnceLock::new();
    }

    /// The 10th, 50th and 90th percentiles of every lifetime; `None` when
    /// there are none.
    fn lifetime(&self) -> Option<Lifetime> {
        *self.all.get_or_init(|| self.lifetime_from(0))
    }

    /// The 10th, 50th and 90th percentiles of the lifetimes from bin
    /// `first` up; `None` when there are none.
    fn lifetime_from(&self, first: usize) -> Option<Lifetime> {
        let counts = &self.counts[first.min(BINS)..];
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        // The middle of the bin that holds the `q`-quantile, seconds.
        let quantile = |q: f64| {
            let rank = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (offset, &count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return ((first + offset) as f64 / BINS_PER_DOUBLING).exp2();
                }
            }
            (BINS as f64 / BINS_PER_DOUBLING).exp2()
        };
        Some(Lifetime {
            p10_s: quantile(0.1),
            p50_s: quantile(0.5),
            p90_s: quantile(0.9),
        })
    }

    /// The lifetime of the tasks that lived longer than `age_s`: the
    /// quantiles of the bins above `age_s`'s; `None` when no finished task
    /// lived that long.
    fn lifetime_beyond(&self, age_s: f64) -> Option<Lifetime> {
        self.lifetime_from(bin(age_s) + 1)
    }
}

/// The histogram bin of a lifetime.
fn bin(lifetime_s: f64) -> usize {
    let bin = (lifetime_s.max(1.0).log2() * BINS_PER_DOUBLING).round();
    (bin.max(0.0) as usize).min(BINS - 1)
}

/// Lifetimes learned online, per kind of task.
///
/// An embedder feeds it the tasks that ended and asks how long a task of
/// a kind will live (the `lifetime` policy does the same with its own runs;
/// [`LifetimeAware::with_history`](crate::LifetimeAware::with_history)
/// starts it from a predictor filled this way):
///
/// ```
/// use lepton_policies::LifetimePredictor;
///
/// let mut lifetimes = LifetimePredictor::new();
/// // Finished tasks of one kind, and how long each ran, seconds.
/// for ran_s in [600.0, 660.0, 540.0, 620.0, 580.0] {
///     lifetimes.observe("web/api", ran_s);
/// }
/// let life = lifetimes.predict("web/api").expect("five have ended");
/// assert!(life.p10_s <= life.p50_s && life.p50_s <= life.p90_s);
/// assert!((life.p50_s / 600.0 - 1.0).abs() < 0.1);
/// // One still running after 20 minutes has outlived every one seen.
/// assert!(lifetimes.predict_alive("web/api", 1_200.0).is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct LifetimePredictor {
    kinds: HashMap<String, Histogram>,
    all: Histogram,
}

impl LifetimePredictor {
    /// An empty predictor.
    pub fn new() -> Self {
        Self::default()
    }

    /// A task of `kind` ended after `lifetime_s` seconds.
    pub fn observe(&mut self, kind: &str, lifetime_s: f64) {
        if !lifetime_s.is_finite() {
            return;
        }
        self.kinds
            .entry(kind.to_owned())
            .or_default()
            .add(lifetime_s);
        self.all.add(lifetime_s);
    }

    /// The lifetime of a task of `kind` about to start: from its kind's
    /// history once [`MIN_SEEN`] have ended, else from every task's;
    /// `None` before any task has ended.
    pub fn predict(&self, kind: &str) -> Option<Lifetime> {
        self.history(kind)?.lifetime()
    }

    /// The lifetime of a task of `kind` still running `age_s` after it
    /// started (one that has outlived part of its kind's history): the
    /// quantiles of the finished tasks of its kind (chosen as in
    /// [`predict`](Self::predict)) that lived longer; `None` when none
    /// did, or nothing has ended.
    pub fn predict_alive(&self, kind: &str, age_s: f64) -> Option<Lifetime> {
        self.history(kind)?.lifetime_beyond(age_s)
    }

    /// The history a kind is predicted from.
    fn history(&self, kind: &str) -> Option<&Histogram> {
        match self.kinds.get(kind) {
            Some(own) if own.total >= MIN_SEEN => Some(own),
            _ if self.all.total > 0 => Some(&self.all),
            _ => None,
        }
    }

    /// Finished tasks seen.
    pub fn seen(&self) -> u64 {
        self.all.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn a_kind_reads_as_its_format(
            app in proptest::option::of("[a-z/-]{0,12}"),
            cpu in proptest::prelude::any::<u64>(),
            memory in proptest::prelude::any::<u64>(),
            gpus in proptest::prelude::any::<u32>(),
            priority in proptest::prelude::any::<u8>(),
        ) {
            let mut task = TaskSpec::new(lepton_core::TaskId(1), lepton_core::Resources::new(cpu, memory))
                .with_gpu(lepton_core::GpuRequest::whole(gpus))
                .with_priority(lepton_core::model::Priority(priority));
            if let Some(app) = &app {
                task = task.with_config("app", app.as_str());
            }
            let app = app.as_deref().unwrap_or("-");
            let expected = format!("{app}/{cpu}m/{memory}Mi/{gpus}g/p{priority}");
            proptest::prop_assert_eq!(task_kind(&task), expected);
        }
    }

    #[test]
    fn quantiles_come_from_the_kind_within_a_bin() {
        let mut predictor = LifetimePredictor::new();
        // 1..=100 minutes: p10 ≈ 10 min, median ≈ 50 min, p90 ≈ 90 min.
        for minutes in 1..=100 {
            predictor.observe("web", f64::from(minutes) * 60.0);
        }
        let web = predictor.predict("web").unwrap();
        let close = |got: f64, want: f64| (got / want - 1.0).abs() < 0.05;
        assert!(close(web.p10_s, 600.0), "{web:?}");
        assert!(close(web.p50_s, 3_000.0), "{web:?}");
        assert!(close(web.p90_s, 5_400.0), "{web:?}");
    }

    #[test]
    fn a_new_kind_is_predicted_from_every_task_until_it_has_its_own() {
        let mut predictor = LifetimePredictor::new();
        assert_eq!(predictor.predict("batch"), None);
        for _ in 0..10 {
            predictor.observe("web", 100.0);
        }
        for seen in 0..MIN_SEEN {
            let batch = predictor.predict("batch").unwrap();
            assert!(
                (batch.p50_s / 100.0 - 1.0).abs() < 0.05,
                "{seen}: {batch:?}"
            );
            predictor.observe("batch", 10_000.0);
        }
        let batch = predictor.predict("batch").unwrap();
        assert!((batch.p50_s / 10_000.0 - 1.0).abs() < 0.05, "{batch:?}");
        assert_eq!(predictor.seen(), 10 + MIN_SEEN);
    }

    #[test]
    fn a_task_alive_past_its_prediction_is_predicted_from_those_that_lived_longer() {
        let mut predictor = LifetimePredictor::new();
        for _ in 0..10 {
            predictor.observe("web", 100.0);
        }
        for _ in 0..3 {
            predictor.observe("web", 20_000.0);
        }
        let fresh = predictor.predict("web").unwrap();
        assert!((fresh.p50_s / 100.0 - 1.0).abs() < 0.05, "{fresh:?}");
        let alive = predictor.predict_alive("web", 500.0).unwrap();
        assert!((alive.p50_s / 20_000.0 - 1.0).abs() < 0.05, "{alive:?}");
        assert_eq!(predictor.predict_alive("web", 50_000.0), None);
        assert_eq!(
            predictor
                .predict_alive("never-seen", 0.0)
                .map(|l| l.p50_s > 0.0),
            Some(true)
        );
    }
}
