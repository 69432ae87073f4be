//! How well lifetimes learned online predict the DLRM trace
//! ([`lifetime_accuracy`]): each instance created in the days measured is
//! predicted, when it is created, from the instances that had already
//! been deleted — never from its own lifetime or from later ones.

use lepton_policies::{task_kind, LifetimePredictor};
use serde::Serialize;

use crate::scenario::TraceWindow;
use crate::DlrmInstance;

/// How a predictor did on the instances it was asked about.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LifetimeAccuracy {
    /// Instances predicted (created in the days measured, with a known
    /// deletion).
    pub predicted: usize,
    /// Median of |ln(predicted median) − ln(lifetime)|: 0.69 is a factor
    /// of two.
    pub median_abs_log_error: f64,
    /// Share of lifetimes below the predicted 10th percentile (0.1 when
    /// calibrated).
    pub below_p10: f64,
    /// Share below the predicted median (0.5 when calibrated).
    pub below_p50: f64,
    /// Share below the predicted 90th percentile (0.9 when calibrated).
    pub below_p90: f64,
}

/// The lifetimes of `instances` created from `first_day` on, predicted as
/// each is created by a [`LifetimePredictor`] that has seen the instances
/// deleted before then, keyed by `kind` (e.g. service, role and shape; a
/// constant key is the kind-blind baseline). Instances created before the
/// trace or never deleted have no known lifetime: they are neither
/// learned from nor measured.
pub fn lifetime_accuracy(
    instances: &[DlrmInstance],
    first_day: u64,
    kind: impl Fn(&DlrmInstance) -> String,
) -> LifetimeAccuracy {
    // (time, 0 = deleted / 1 = created, instance): deletions first at a tie.
    let mut events: Vec<(f64, u8, usize)> = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        if let (Some(created), Some(deleted)) = (instance.created_s, instance.deleted_s) {
            events.push((created, 1, index));
            events.push((deleted, 0, index));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let from_s = first_day.saturating_mul(86_400) as f64;
    let mut predictor = LifetimePredictor::new();
    let mut errors = Vec::new();
    let mut below = [0usize; 3];
    for (time, event, index) in events {
        let instance = &instances[index];
        let (Some(created), Some(deleted)) = (instance.created_s, instance.deleted_s) else {
            continue;
        };
        let lifetime = (deleted - created).max(1.0);
        if event == 0 {
            predictor.observe(&kind(instance), lifetime);
            continue;
        }
        if time < from_s {
            continue;
        }
        let Some(predicted) = predictor.predict(&kind(instance)) else {
            continue;
        };
        errors.push((predicted.p50_s.ln() - lifetime.ln()).abs());
        for (count, quantile) in
            below
                .iter_mut()
                .zip([predicted.p10_s, predicted.p50_s, predicted.p90_s])
        {
            *count += usize::from(lifetime < quantile);
        }
    }
    errors.sort_by(f64::total_cmp);
    let n = errors.len().max(1) as f64;
    LifetimeAccuracy {
        predicted: errors.len(),
        median_abs_log_error: errors.get(errors.len() / 2).copied().unwrap_or(0.0),
        below_p10: below[0] as f64 / n,
        below_p50: below[1] as f64 / n,
        below_p90: below[2] as f64 / n,
    }
}

/// Lifetime prediction on the trace for instances created from
/// `from_day` on: by [`service_and_shape`], as the `lifetime` policy
/// predicts, and one distribution for all, the baseline it must beat.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TraceLifetimes {
    /// The first day measured.
    pub from_day: u64,
    /// Learned per service, role and shape.
    pub per_kind: LifetimeAccuracy,
    /// Learned from every instance alike.
    pub one_for_all: LifetimeAccuracy,
}

impl TraceLifetimes {
    /// Both predictors on `instances` created from `from_day` on
    /// ([`lifetime_accuracy`]).
    pub fn measure(instances: &[DlrmInstance], from_day: u64) -> Self {
        TraceLifetimes {
            from_day,
            per_kind: lifetime_accuracy(instances, from_day, service_and_shape),
            one_for_all: lifetime_accuracy(instances, from_day, |_| String::new()),
        }
    }
}

/// The kind the scenarios predict by: service and role (the spec's `app`),
/// shape and priority ([`task_kind`], what the `lifetime` policy uses).
pub fn service_and_shape(instance: &DlrmInstance) -> String {
    task_kind(&instance.spec)
}

/// What a scheduler placing the tasks of days `window.first_day` on knows
/// of lifetimes: the instances created and deleted before that day, each
/// learned under its [`task_kind`].
pub fn lifetime_history(instances: &[DlrmInstance], window: TraceWindow) -> LifetimePredictor {
    let before_s = window.first_day.saturating_mul(86_400) as f64;
    let mut predictor = LifetimePredictor::new();
    for instance in instances {
        if let (Some(created), Some(deleted)) = (instance.created_s, instance.deleted_s) {
            if deleted < before_s {
                predictor.observe(&task_kind(&instance.spec), (deleted - created).max(1.0));
            }
        }
    }
    predictor
}
