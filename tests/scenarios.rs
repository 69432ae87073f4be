//! The data-center scenario holds the article's claim on seeds 1–5 at its
//! default size (1,000 VMs, 20,000 tasks, one day): Lepton at least 30%
//! more utilization and 20% less cost than the traditional scheduler with
//! no more deadline misses, cheaper than the kubernetes-style baseline with
//! no more misses, and nothing lost by anyone.

#![allow(clippy::unwrap_used)]

use lepton::scenarios::compare_datacenter;
use lepton::sim::scenario::DatacenterConfig;

#[test]
fn lepton_beats_both_baselines_on_seeds_1_to_5() {
    for seed in 1..=5 {
        let config = DatacenterConfig {
            seed,
            ..DatacenterConfig::default()
        };
        let c = compare_datacenter(&config).unwrap();
        let summary = format!(
            "seed {seed}: util {:.1}/{:.1}/{:.1}, cost {:.0}/{:.0}/{:.0}, misses {}/{}/{}",
            c.baseline.utilization_pct,
            c.kubernetes.utilization_pct,
            c.lepton.utilization_pct,
            c.baseline.cost,
            c.kubernetes.cost,
            c.lepton.cost,
            c.baseline.deadline_misses,
            c.kubernetes.deadline_misses,
            c.lepton.deadline_misses
        );
        assert!(c.utilization_gain_pct >= 30.0, "{summary}");
        assert!(c.cost_reduction_pct >= 20.0, "{summary}");
        assert!(
            c.lepton.deadline_misses <= c.baseline.deadline_misses,
            "{summary}"
        );
        assert!(c.lepton.cost < c.kubernetes.cost, "{summary}");
        assert!(
            c.lepton.deadline_misses <= c.kubernetes.deadline_misses,
            "{summary}"
        );
        for report in [&c.baseline, &c.kubernetes, &c.lepton] {
            assert_eq!(report.lost, 0, "{summary}");
            assert_eq!(report.completed + report.failed, config.tasks, "{summary}");
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_day() {
    let config = DatacenterConfig {
        vms: 100,
        tasks: 2_000,
        ..DatacenterConfig::default()
    };
    let a = compare_datacenter(&config).unwrap();
    let b = compare_datacenter(&config).unwrap();
    assert_eq!(a.lepton, b.lepton);
    let other = compare_datacenter(&DatacenterConfig { seed: 2, ..config }).unwrap();
    assert_ne!(a.lepton.cost, other.lepton.cost);
}
