//! Chaos runs at the size: 1,000 nodes, 100,000 tasks, 10 % of nodes
//! crashing, 5 % of launches failing, 5 % of completions delivered twice —
//! over 20 seeds, nothing lost, nothing run twice, no node over-committed,
//! as counted by the checker that replays each run's event log.

use std::process::Command;

use lepton::policies::by_name;
use lepton::sim::{run_chaos, ChaosConfig, ChaosReport};

fn chaos(seed: u64) -> ChaosReport {
    let config = ChaosConfig {
        seed,
        ..ChaosConfig::default()
    };
    let policy = by_name("bestfit").expect("a known policy");
    run_chaos(policy, &config).expect("valid settings")
}

#[test]
fn twenty_seeds_lose_nothing_run_nothing_twice_and_never_overcommit() {
    let seeds: Vec<u64> = (1..=20).collect();
    // Two threads: the machine's cores.
    let reports: Vec<ChaosReport> = std::thread::scope(|scope| {
        let halves: Vec<_> = seeds
            .chunks(10)
            .map(|chunk| scope.spawn(move || chunk.iter().map(|&s| chaos(s)).collect::<Vec<_>>()))
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().expect("no panic"))
            .collect()
    });
    for (seed, r) in seeds.iter().zip(&reports) {
        assert_eq!(
            (r.lost, r.ran_twice, r.overcommitted),
            (0, 0, 0),
            "seed {seed}: {r:?}"
        );
        assert_eq!(
            r.completed + r.failed_after_retries,
            100_000,
            "seed {seed}: {r:?}"
        );
        // The chaos really happened.
        assert_eq!(r.node_crashes, 100, "seed {seed}");
        assert!(r.launch_errors > 4_000, "seed {seed}: {r:?}");
        assert!(r.refused_reports > 1_000, "seed {seed}: {r:?}");
        assert!(
            r.silent_nodes > 0 && r.preemptions > 0 && r.moves > 0,
            "seed {seed}: {r:?}"
        );
        assert!(r.max_retries_seen >= 2, "seed {seed}: {r:?}");
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let config = ChaosConfig {
        nodes: 50,
        tasks: 3_000,
        ..ChaosConfig::default()
    };
    let run = || {
        let mut report = run_chaos(by_name("bestfit").expect("known"), &config).expect("valid");
        report.wall_s = 0.0;
        report
    };
    assert_eq!(run(), run());
}

#[test]
fn the_command_prints_the_checker_figures_as_json() {
    let output = Command::new(env!("CARGO_BIN_EXE_lepton"))
        .args(["chaos", "--nodes", "50", "--tasks", "2000", "--seed", "7"])
        .args([
            "--node-failure-rate",
            "0.2",
            "--launch-error-rate",
            "0.1",
            "--format",
            "json",
        ])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json["tasks"], 2_000);
    for key in ["lost", "ran_twice", "overcommitted"] {
        assert_eq!(json[key], 0, "{key}: {json}");
    }
    for key in [
        "completed",
        "failed_after_retries",
        "max_retries_seen",
        "wall_s",
    ] {
        assert!(json[key].is_number(), "{key}: {json}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_lepton"))
        .args(["chaos", "--launch-error-rate", "NaN"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("launch error rate = NaN"), "{stderr}");
}

#[test]
fn gangs_and_tenant_queues_under_chaos_lose_nothing_and_keep_their_rules() {
    for seed in 1..=3 {
        let config = ChaosConfig {
            nodes: 200,
            tasks: 20_000,
            gang_share: 0.3,
            queues: 4,
            seed,
            ..ChaosConfig::default()
        };
        let r = run_chaos(by_name("bestfit").expect("known"), &config).expect("valid");
        assert_eq!(
            (r.lost, r.ran_twice, r.overcommitted),
            (0, 0, 0),
            "seed {seed}: {r:?}"
        );
        assert_eq!(
            (r.gangs_partly_started, r.queues_over_maximum),
            (0, 0),
            "seed {seed}: {r:?}"
        );
        assert_eq!(
            r.completed + r.failed_after_retries,
            20_000,
            "seed {seed}: {r:?}"
        );
        // Gangs formed, and the chaos happened.
        assert!(r.gangs > 1_500, "seed {seed}: {r:?}");
        assert!(
            r.node_crashes == 20 && r.launch_errors > 700,
            "seed {seed}: {r:?}"
        );
    }
}
