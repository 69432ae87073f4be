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

use std::collections::HashMap;

/// Histogram bins per doubling of the lifetime (about 9 % apart).
pub const BINS_PER_DOUBLING: f64 = 8.0;
/// Finished tasks a kind needs before its own history predicts it.
pub const MIN_SEEN: u64 = 5;
/// Lifetimes are counted from 1 s to 2^30 s (34 years), clamped.
const BINS: usize = (30.0 * BINS_PER_DOUBLING) as usize + 1;

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
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BINS],
            total: 0,
        }
    }
}

impl Histogram {
    fn add(&mut self, lifetime_s: f64) {
        let bin = (lifetime_s.max(1.0).log2() * BINS_PER_DOUBLING).round();
        let bin = (bin.max(0.0) as usize).min(BINS - 1);
        self.counts[bin] += 1;
        self.total += 1;
    }

    /// The `q`-quantile, seconds (the middle of its bin).
    fn quantile(&self, q: f64) -> f64 {
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bin, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return (bin as f64 / BINS_PER_DOUBLING).exp2();
            }
        }
        (BINS as f64 / BINS_PER_DOUBLING).exp2()
    }

    fn lifetime(&self) -> Lifetime {
        Lifetime {
            p10_s: self.quantile(0.1),
            p50_s: self.quantile(0.5),
            p90_s: self.quantile(0.9),
        }
    }
}

/// Lifetimes learned online, per kind of task.
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
        match self.kinds.get(kind) {
            Some(own) if own.total >= MIN_SEEN => Some(own.lifetime()),
            _ if self.all.total > 0 => Some(self.all.lifetime()),
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
}
