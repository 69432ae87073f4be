//! Demand forecast learned online: how much of something (tasks, VMs,
//! CPUs) will be asked for per second in the next while, from what was
//! asked for so far — never from arrivals still to come.
//!
//! Demand is counted in buckets of fixed length; each bucket that closes
//! updates a level and a trend by Holt's linear exponential smoothing
//! (Holt, 1957), so a ramp is followed and extrapolated one bucket ahead
//! and a trough is seen as it starts. Memory is constant. What it does not
//! learn: a pattern by time of day or week (a one-day run has no
//! yesterday to learn from).

/// Weight of the latest bucket in the level.
const LEVEL_WEIGHT: f64 = 0.5;
/// Weight of the latest change in the trend.
const TREND_WEIGHT: f64 = 0.3;

/// A demand forecast, fed as demand happens.
///
/// ```
/// use lepton_policies::DemandForecast;
///
/// // CPU cores asked for, counted in ten-minute buckets.
/// let mut cores = DemandForecast::new(600);
/// for minute in 0..60u64 {
///     cores.observe(minute * 60, 4.0);
/// }
/// // Four cores a minute: forty expected in the next ten minutes.
/// let next = cores.rate_per_s(3_600) * 600.0;
/// assert!((next - 40.0).abs() < 1.0, "{next}");
/// ```
#[derive(Debug, Clone)]
pub struct DemandForecast {
    bucket_s: u64,
    /// The bucket being filled (its index) and what it holds so far.
    open: Option<(u64, f64)>,
    /// Smoothed demand per bucket, and its change per bucket.
    level: Option<f64>,
    trend: f64,
}

impl DemandForecast {
    /// A forecast that counts demand in buckets of `bucket_s` seconds (at
    /// least 1).
    pub fn new(bucket_s: u64) -> Self {
        DemandForecast {
            bucket_s: bucket_s.max(1),
            open: None,
            level: None,
            trend: 0.0,
        }
    }

    /// `amount` was asked for at `time_s` (seconds on any clock that does
    /// not go back; an earlier time counts in the open bucket).
    pub fn observe(&mut self, time_s: u64, amount: f64) {
        self.advance(time_s);
        if let Some((_, total)) = &mut self.open {
            *total += amount;
        }
    }

    /// The demand expected per second from `time_s` on: the next bucket's
    /// forecast (level plus trend, never below 0) over its length; 0
    /// before a bucket has closed.
    pub fn rate_per_s(&mut self, time_s: u64) -> f64 {
        self.advance(time_s);
        let next = self
            .level
            .map_or(0.0, |level| (level + self.trend).max(0.0));
        next / self.bucket_s as f64
    }

    /// Closes every bucket before the one holding `time_s` (empty ones
    /// count as no demand) and opens that one.
    fn advance(&mut self, time_s: u64) {
        let now = time_s / self.bucket_s;
        let Some((open, total)) = self.open else {
            self.open = Some((now, 0.0));
            return;
        };
        if now <= open {
            return;
        }
        self.close(total);
        // Buckets that saw nothing: a few steps bring the level down;
        // beyond that the level is flat at 0 and the trend decays.
        for _ in open + 1..now.min(open + 1 + 64) {
            self.close(0.0);
        }
        self.open = Some((now, 0.0));
    }

    fn close(&mut self, total: f64) {
        match self.level {
            None => self.level = Some(total),
            Some(level) => {
                let next = LEVEL_WEIGHT * total + (1.0 - LEVEL_WEIGHT) * (level + self.trend);
                self.trend = TREND_WEIGHT * (next - level) + (1.0 - TREND_WEIGHT) * self.trend;
                self.level = Some(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_demand_is_learned() {
        let mut forecast = DemandForecast::new(60);
        assert_eq!(forecast.rate_per_s(0), 0.0, "nothing learned yet");
        for second in 0..3_600 {
            forecast.observe(second, 2.0);
        }
        let rate = forecast.rate_per_s(3_600);
        assert!((rate - 2.0).abs() < 0.01, "{rate}");
    }

    #[test]
    fn a_ramp_is_extrapolated_and_a_trough_seen() {
        let mut forecast = DemandForecast::new(60);
        // Demand growing by one per second each minute.
        for minute in 0..60u64 {
            for second in 0..60 {
                forecast.observe(minute * 60 + second, minute as f64);
            }
        }
        // The last minute asked for 59 per second; the next one, 60.
        let ramp = forecast.rate_per_s(3_600);
        assert!(ramp > 59.0 && ramp < 61.0, "{ramp}");
        // Nothing for ten minutes: the forecast falls towards 0.
        let trough = forecast.rate_per_s(3_600 + 600);
        assert!(trough < 0.1 * ramp, "{trough}");
    }
}
