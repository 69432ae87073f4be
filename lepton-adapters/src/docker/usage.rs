//! A run's resource use, from one sample of the container's statistics.
//!
//! Docker sends two samples a second apart and the CPU rate comes from
//! their difference; Podman sends one, so this backend keeps each
//! container's last CPU reading and measures between two calls.

use std::time::{Duration, Instant};

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;
use lepton_core::backend::{BackendError, Handle, Usage};

use super::client::{status_code, validate_container_id};
use super::{DockerBackend, MIB};
use crate::shared::sync::lock;

impl DockerBackend {
    /// One sample of the container's statistics as [`Usage`].
    pub(super) async fn sample_usage(&self, handle: &Handle) -> Result<Usage, BackendError> {
        validate_container_id(&handle.id)?;
        let docker = self.client().await?;
        let subject = format!("container {} of {}", handle.id, handle.run);
        let options = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(false)
            .build();
        let mut stats = docker.stats(&handle.id, Some(options));
        let sample = match stats.next().await {
            Some(Ok(sample)) => sample,
            Some(Err(e)) => {
                if status_code(&e) == Some(404) {
                    self.forget_cpu_reading(&handle.id);
                }
                return Err(self.error("read statistics of", &subject, e));
            }
            None => return Ok(Usage::default()),
        };
        let now = Instant::now();
        let mut readings = lock(&self.cpu_readings);
        let previous = readings
            .get(&handle.id)
            .map(|r| (r.container_ns, now.saturating_duration_since(r.at)));
        let usage = usage_from_stats(&sample, previous);
        // A reading too close to the last one would give a noisy figure
        // next time: keep the older one.
        let fresh = previous.is_none_or(|(_, elapsed)| elapsed >= MIN_CPU_INTERVAL);
        if let (Some(container_ns), true) = (container_cpu_ns(&sample), fresh) {
            readings.insert(
                handle.id.clone(),
                CpuReading {
                    container_ns,
                    at: now,
                },
            );
        }
        Ok(usage)
    }

    /// Drops the CPU reading of container `id`, which is gone.
    pub(super) fn forget_cpu_reading(&self, id: &str) {
        lock(&self.cpu_readings).remove(id);
    }
}

/// The CPU time a container had used when this backend last read it.
#[derive(Debug, Clone, Copy)]
pub(super) struct CpuReading {
    container_ns: u64,
    at: Instant,
}

/// The shortest time between two readings that gives a CPU figure.
const MIN_CPU_INTERVAL: Duration = Duration::from_millis(200);

fn container_cpu_ns(stats: &ContainerStatsResponse) -> Option<u64> {
    stats.cpu_stats.as_ref()?.cpu_usage.as_ref()?.total_usage
}

/// CPU use from the daemon's two samples, as `docker stats` computes it:
/// the container's share of the host's CPU time, times the CPU count.
fn daemon_cpu_milli(stats: &ContainerStatsResponse) -> Option<u64> {
    let cpu = stats.cpu_stats.as_ref()?;
    let pre = stats.precpu_stats.as_ref()?;
    let cpu_delta = cpu
        .cpu_usage
        .as_ref()?
        .total_usage?
        .checked_sub(pre.cpu_usage.as_ref()?.total_usage?)?;
    let system_delta = cpu
        .system_cpu_usage?
        .checked_sub(pre.system_cpu_usage.filter(|n| *n > 0)?)
        .filter(|d| *d > 0)?;
    let cpus = cpu
        .online_cpus
        .map(u64::from)
        .filter(|n| *n > 0)
        .or_else(|| {
            let n = cpu.cpu_usage.as_ref()?.percpu_usage.as_ref()?.len();
            u64::try_from(n).ok().filter(|n| *n > 0)
        })?;
    // In f64: the product of nanosecond counters overflows u64.
    let milli = cpu_delta as f64 / system_delta as f64 * cpus as f64 * 1000.0;
    Some(milli.round() as u64)
}

/// One statistics sample as [`Usage`]. CPU use comes from the daemon's
/// previous sample when it sent one (Docker); otherwise (Podman) from
/// `previous`: the container's CPU time at this backend's last reading and
/// the wall-clock time since.
fn usage_from_stats(stats: &ContainerStatsResponse, previous: Option<(u64, Duration)>) -> Usage {
    let cpu_milli = daemon_cpu_milli(stats).or_else(|| {
        let (before_ns, elapsed) = previous.filter(|(_, e)| *e >= MIN_CPU_INTERVAL)?;
        let delta = container_cpu_ns(stats)?.checked_sub(before_ns)?;
        Some((delta as f64 / elapsed.as_nanos() as f64 * 1000.0).round() as u64)
    });

    let memory_mib = stats.memory_stats.as_ref().and_then(|m| {
        let usage = m.usage?;
        let inactive = m
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
            })
            .copied()
            .unwrap_or(0);
        // Rounded up, so a container that uses anything shows it.
        Some(usage.saturating_sub(inactive).div_ceil(MIB))
    });

    let networks = stats.networks.as_ref().filter(|n| !n.is_empty());
    let network_sum = |pick: fn(&bollard::models::ContainerNetworkStats) -> Option<u64>| {
        networks.and_then(|n| n.values().map(pick).sum::<Option<u64>>())
    };

    let blkio = stats
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .filter(|entries| !entries.is_empty());
    let blkio_sum = |op: &str| {
        blkio.map(|entries| {
            entries
                .iter()
                .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
                .filter_map(|e| e.value)
                .fold(0u64, u64::saturating_add)
        })
    };

    Usage {
        cpu_milli,
        memory_mib,
        network_rx_bytes: network_sum(|n| n.rx_bytes),
        network_tx_bytes: network_sum(|n| n.tx_bytes),
        storage_read_bytes: blkio_sum("read"),
        storage_write_bytes: blkio_sum("write"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{
        ContainerBlkioStatEntry, ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage,
        ContainerMemoryStats, ContainerNetworkStats,
    };

    use super::*;

    #[test]
    fn stats_become_usage() {
        let cpu = |total: u64, system: u64| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(4),
            ..Default::default()
        };
        let network = |rx: u64, tx: u64| ContainerNetworkStats {
            rx_bytes: Some(rx),
            tx_bytes: Some(tx),
            ..Default::default()
        };
        let io = |op: &str, value: u64| ContainerBlkioStatEntry {
            op: Some(op.to_owned()),
            value: Some(value),
            ..Default::default()
        };
        let stats = ContainerStatsResponse {
            // Half of one of four CPUs: 1/8 of the system's time.
            cpu_stats: Some(cpu(1_500_000_000, 20_000_000_000)),
            precpu_stats: Some(cpu(1_000_000_000, 16_000_000_000)),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(10 * MIB + 1),
                stats: Some(HashMap::from([("inactive_file".to_owned(), 2 * MIB)])),
                ..Default::default()
            }),
            networks: Some(HashMap::from([
                ("eth0".to_owned(), network(100, 10)),
                ("eth1".to_owned(), network(20, 2)),
            ])),
            blkio_stats: Some(ContainerBlkioStats {
                io_service_bytes_recursive: Some(vec![
                    io("Read", 4096),
                    io("read", 4096),
                    io("Write", 512),
                    io("Total", 8704),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            usage_from_stats(&stats, None),
            Usage {
                cpu_milli: Some(500),
                memory_mib: Some(9),
                network_rx_bytes: Some(120),
                network_tx_bytes: Some(12),
                storage_read_bytes: Some(8192),
                storage_write_bytes: Some(512),
            }
        );
    }

    #[test]
    fn empty_stats_are_none() {
        let stats = ContainerStatsResponse {
            // One sample only: no CPU delta.
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(5),
                    ..Default::default()
                }),
                system_cpu_usage: Some(5),
                online_cpus: Some(1),
                ..Default::default()
            }),
            networks: Some(HashMap::new()),
            blkio_stats: Some(ContainerBlkioStats {
                io_service_bytes_recursive: Some(Vec::new()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(usage_from_stats(&stats, None), Usage::default());
        // Podman: no previous sample from the daemon, but our own reading
        // from two seconds ago; half a second of CPU time since then is a
        // quarter of a CPU.
        let mut stats = stats;
        if let Some(cpu) = stats.cpu_stats.as_mut() {
            cpu.cpu_usage = Some(ContainerCpuUsage {
                total_usage: Some(1 + 500_000_000),
                ..Default::default()
            });
        }
        let two_seconds = Duration::from_secs(2);
        assert_eq!(
            usage_from_stats(&stats, Some((1, two_seconds))).cpu_milli,
            Some(250)
        );
        // Readings too close together give no figure.
        let too_soon = Duration::from_millis(10);
        assert_eq!(
            usage_from_stats(&stats, Some((1, too_soon))).cpu_milli,
            None
        );
    }
}
