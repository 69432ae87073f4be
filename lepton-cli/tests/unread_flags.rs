//! A flag the run would not read is refused, naming it and why, instead
//! of being silently ignored; and `--tasks` reaches every scenario.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn lepton(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lepton"))
        .args(args)
        .env_remove("LEPTON_TRACE_DIR")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

#[test]
fn flags_no_scenario_or_policy_reads_are_refused() {
    let workload = std::env::temp_dir().join(format!("lepton-unread-{}.json", std::process::id()));
    std::fs::write(&workload, "{}").unwrap();
    let w = workload.to_str().unwrap();
    let cases: [(&[&str], &str); 13] = [
        (
            &["demo", "--scenario", "edge", "--trace", "t.csv"],
            "--trace is not read here: it is datacenter-trace's, and --scenario edge",
        ),
        (
            &["demo", "--scenario", "datacenter", "--days", "all"],
            "--days is not read here",
        ),
        (
            &["demo", "--scenario", "datacenter-trace", "--tasks", "5"],
            "--tasks is not read here: the trace's instances",
        ),
        (
            &["demo", "--workload", w, "--vms", "5000"],
            "--vms is not read here: the workload's nodes",
        ),
        (
            &[
                "demo",
                "--workload",
                w,
                "--scenario",
                "datacenter",
                "--tasks",
                "7",
            ],
            "--tasks is not read here: the workload's tasks",
        ),
        (
            &[
                "demo",
                "--workload",
                w,
                "--scenario",
                "datacenter",
                "--hours",
                "1",
            ],
            "--hours is not read here",
        ),
        (
            &["demo", "--workload", w, "--scenario", "edge"],
            "--workload is not read here",
        ),
        (
            &["demo", "--scenario", "hybrid", "--vms", "20"],
            "--vms is not read here",
        ),
        (
            &["demo", "--scenario", "datacenter", "--sites", "4"],
            "--sites is not read here",
        ),
        (
            &["demo", "--scenario", "edge", "--policy", "spread"],
            "--policy is not read here",
        ),
        (
            &["demo", "--model", "m.safetensors"],
            "--model is read by --policy drl only",
        ),
        (
            &["replay", "--policy", "bestfit", "--rules", "r.toml"],
            "--rules is read by --policy rule only",
        ),
        (
            &["chaos", "--policy", "fgd", "--model", "m.safetensors"],
            "--model is read by --policy drl only",
        ),
    ];
    for (args, names) in cases {
        let output = lepton(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?}: {stderr}");
    }
}

#[test]
fn tasks_reach_the_hybrid_scenario() {
    let out = std::env::temp_dir().join(format!("lepton-unread-report-{}", std::process::id()));
    let output = lepton(&[
        "demo",
        "--scenario",
        "hybrid",
        "--tasks",
        "300",
        "-o",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let baseline = &json["scenarios"][0]["strategies"][0];
    let ended = baseline["completed"].as_u64().unwrap() + baseline["failed"].as_u64().unwrap();
    assert_eq!(ended, 300, "{baseline}");
}

#[test]
fn a_workload_too_small_for_a_scenario_is_named_in_its_own_terms() {
    let path = std::env::temp_dir().join(format!("lepton-unfit-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{"nodes": [{"id": 0, "capacity": {"cpu_milli": 4000, "memory_mib": 4096}}],
            "tasks": [{"spec": {"id": 7, "request": {"cpu_milli": 1000}}, "arrival_s": 0, "duration_s": 60}]}"#,
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let ran = lepton(&["demo", "--workload", path]);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(!ran.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{path}: its nodes come to 1: a data-center scenario needs 10 to 100,000 VMs"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("vms ="), "no flag was given: {stderr}");
}
