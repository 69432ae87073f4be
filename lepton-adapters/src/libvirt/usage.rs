//! A run's resource use: CPU as a rate between two readings of the
//! domain's CPU time, memory as the hypervisor process's resident memory
//! (or the guest's memory where the driver does not say).

use std::time::{Duration, Instant};

use lepton_core::backend::{BackendError, Handle, Usage};
use virt::sys;

use super::LibvirtBackend;
use crate::shared::sync::lock;

/// The gap between the two CPU-time readings of a call that has no recent
/// reading to compare with.
const CPU_SAMPLE_GAP: Duration = Duration::from_millis(100);

/// A CPU-time reading older than this is not used for a rate.
const CPU_SAMPLE_MAX_AGE: Duration = Duration::from_secs(10);

/// A reading of a domain's CPU time, and when it was taken.
#[derive(Debug, Clone, Copy)]
pub(super) struct CpuSample {
    at: Instant,
    cpu_time_ns: u64,
}

/// One reading of an active domain.
#[derive(Debug, Clone, Copy)]
struct Reading {
    cpu: CpuSample,
    memory_kib: u64,
}

impl LibvirtBackend {
    /// [`usage`](lepton_core::backend::Backend::usage): CPU and memory between two readings.
    pub(super) async fn sample_usage(&self, handle: &Handle) -> Result<Usage, BackendError> {
        let name = self.domain_of(handle)?;
        let idle = Usage {
            cpu_milli: Some(0),
            memory_mib: Some(0),
            ..Usage::default()
        };
        let Some(latest) = self.read(&name).await? else {
            return Ok(idle);
        };
        let previous = lock(&self.shared.cpu_samples)
            .get(&name)
            .copied()
            .filter(|p| {
                let age = latest.cpu.at.saturating_duration_since(p.at);
                (CPU_SAMPLE_GAP..=CPU_SAMPLE_MAX_AGE).contains(&age)
                    && p.cpu_time_ns <= latest.cpu.cpu_time_ns
            });
        let (from, to) = match previous {
            Some(previous) => (previous, latest),
            None => {
                tokio::time::sleep(CPU_SAMPLE_GAP).await;
                let Some(second) = self.read(&name).await? else {
                    return Ok(idle);
                };
                (latest.cpu, second)
            }
        };
        {
            let mut samples = lock(&self.shared.cpu_samples);
            samples.retain(|_, s| to.cpu.at.saturating_duration_since(s.at) <= CPU_SAMPLE_MAX_AGE);
            samples.insert(name, to.cpu);
        }
        Ok(Usage {
            cpu_milli: cpu_rate_milli(from, to.cpu),
            memory_mib: Some(to.memory_kib.div_ceil(1024)),
            ..Usage::default()
        })
    }

    /// The current reading of an active domain; `None` when it is not
    /// running.
    async fn read(&self, name: &str) -> Result<Option<Reading>, BackendError> {
        let name = name.to_owned();
        self.call("usage", move |shared, connection| {
            let what = format!("domain {name}");
            let domain = connection
                .lookup_domain_by_name(&name)
                .map_err(|e| shared.error("usage", &what, &e))?;
            let info = domain
                .info()
                .map_err(|e| shared.error("usage", &what, &e))?;
            let at = Instant::now();
            if !domain
                .is_active()
                .map_err(|e| shared.error("usage", &what, &e))?
            {
                return Ok(None);
            }
            // QEMU reports the resident memory of its process; the test
            // driver reports nothing, and then the guest's memory will do.
            let rss_kib = domain.memory_stats(0).ok().and_then(|stats| {
                stats
                    .iter()
                    .find(|s| s.tag == sys::VIR_DOMAIN_MEMORY_STAT_RSS)
                    .map(|s| s.val)
            });
            Ok(Some(Reading {
                cpu: CpuSample {
                    at,
                    cpu_time_ns: info.cpu_time,
                },
                memory_kib: rss_kib.unwrap_or(info.memory),
            }))
        })
        .await
    }
}

/// CPU use between two readings, in milli-cores.
fn cpu_rate_milli(from: CpuSample, to: CpuSample) -> Option<u64> {
    let elapsed_ns = to.at.checked_duration_since(from.at)?.as_nanos();
    if elapsed_ns == 0 {
        return None;
    }
    let used_ns = u128::from(to.cpu_time_ns.checked_sub(from.cpu_time_ns)?);
    u64::try_from(used_ns * 1000 / elapsed_ns).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_rate_between_readings() {
        let at = Instant::now();
        let from = CpuSample {
            at,
            cpu_time_ns: 1_000_000_000,
        };
        let to = CpuSample {
            at: at + Duration::from_millis(500),
            cpu_time_ns: 1_250_000_000,
        };
        assert_eq!(cpu_rate_milli(from, to), Some(500));
        assert_eq!(cpu_rate_milli(to, from), None);
        assert_eq!(cpu_rate_milli(from, from), None);
    }
}
