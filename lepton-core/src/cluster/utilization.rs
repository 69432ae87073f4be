//! [`Utilization`]: the share of offered capacity in use.

/// Fractions (0.0..=1.0) of offered capacity in use.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Utilization {
    /// CPU.
    pub cpu: f64,
    /// Memory.
    pub memory: f64,
    /// GPU (milli-GPUs).
    pub gpu: f64,
}

impl Utilization {
    /// The fullest dimension's share.
    pub fn max(&self) -> f64 {
        self.cpu.max(self.memory).max(self.gpu)
    }

    pub(super) fn from_used_and_offered([cpu, memory, gpu]: [(u128, u128); 3]) -> Self {
        let ratio = |(used, offered): (u128, u128)| {
            if offered == 0 {
                0.0
            } else {
                used as f64 / offered as f64
            }
        };
        Utilization {
            cpu: ratio(cpu),
            memory: ratio(memory),
            gpu: ratio(gpu),
        }
    }
}
