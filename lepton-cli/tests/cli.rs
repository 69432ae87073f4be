//! The `lepton` binary end to end: the default job, `fill` in both formats,
//! `replay` on a JSON workload, and errors that name what was wrong.

// Helpers outside #[test] functions may panic too: this is test code.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn lepton(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lepton"))
        .args(args)
        // The trace shipped in the repository, found from any directory.
        .env_remove("LEPTON_TRACE_DIR")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "lepton failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn the_default_job_is_the_demo_with_its_report() {
    let output = lepton(&[]);
    let text = stdout(&output);
    assert!(
        text.contains("datacenter: 1000 VMs, 20000 tasks over 24 hours, seed 1"),
        "{text}"
    );
    assert!(
        text.contains("datacenter-trace: Alibaba's DLRM serving trace (Yang et al., NSDI '25), days 16–30: 18315 instances"),
        "{text}"
    );
    assert!(
        text.contains("edge: 8 sites × 4 nodes, 100 cloud nodes"),
        "{text}"
    );
    for strategy in [
        "traditional",
        "kubernetes",
        "kubernetes-binpack-overprovisioned",
        "karpenter",
        "karpenter-overprovisioned",
        "lepton (lifetime)",
        "nearest-site",
        "cloud-only",
        "on-prem first",
    ] {
        assert!(text.contains(strategy), "{text}");
    }
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("wrote lepton-report/index.html: the HTML report"),
        "{said}"
    );
    let page = std::env::temp_dir().join("lepton-report/index.html");
    assert!(std::fs::read_to_string(page).unwrap().contains("<svg"));
}

#[test]
fn quickstart_is_the_seed_articles_case() {
    let text = stdout(&lepton(&["quickstart"]));
    assert!(text.contains("policy spread:"), "{text}");
    assert!(text.contains("swapped policy: spread -> bestfit"), "{text}");
    assert!(text.contains("U = -0.70"), "{text}");
    assert!(text.contains("U = -0.60"), "{text}");
    assert!(
        text.contains("spreading used 5 VMs, packing used 2 VMs"),
        "{text}"
    );
}

#[test]
fn fill_prints_json_with_the_promised_fields() {
    let text = stdout(&lepton(&[
        "fill",
        "--policy",
        "bestfit,fgd",
        "--seeds",
        "42",
        "--format",
        "json",
    ]));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (result, name) in results.iter().zip(["bestfit", "fgd"]) {
        assert_eq!(result["policy"], name);
        let alloc = result["alloc_pct_at_100"].as_f64().unwrap();
        assert!((85.0..100.0).contains(&alloc), "{name}: {alloc}");
        assert_eq!(
            result["alloc_pct_at_100_per_seed"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(result["frag_pct_at_100"].as_f64().unwrap() > 0.0);
        assert!(result["pods_arrived"].as_u64().unwrap() > 8152);
        assert!(result["wall_s"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn fill_text_has_one_row_per_policy_and_writes_the_plot() {
    let plot = std::env::temp_dir().join(format!("lepton-cli-test-{}.svg", std::process::id()));
    let plot_arg = plot.to_str().unwrap();
    let text = stdout(&lepton(&[
        "fill",
        "--policy",
        "random,bestfit",
        "--seeds",
        "42",
        "--plot",
        plot_arg,
    ]));
    assert!(text.lines().any(|l| l.starts_with("random")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("bestfit")), "{text}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("bestfit"));
    std::fs::remove_file(plot).unwrap();
}

#[test]
fn replay_runs_a_json_workload() {
    let workload =
        std::env::temp_dir().join(format!("lepton-cli-workload-{}.json", std::process::id()));
    std::fs::write(
        &workload,
        r#"{"nodes": [{"id": 1, "capacity": {"cpu_milli": 4000, "memory_mib": 4096}}],
            "tasks": [
              {"spec": {"id": 1, "request": {"cpu_milli": 3000}}, "arrival_s": 0, "duration_s": 100},
              {"spec": {"id": 2, "request": {"cpu_milli": 3000}}, "arrival_s": 10, "duration_s": 50}
            ]}"#,
    )
    .unwrap();
    let args = [
        "replay",
        "--workload",
        workload.to_str().unwrap(),
        "--policy",
        "bestfit",
        "--format",
        "json",
    ];
    let json: serde_json::Value = serde_json::from_str(&stdout(&lepton(&args))).unwrap();
    assert_eq!(json["tasks_completed"], 2);
    // Task 2 waits for task 1 to end at 100 s: 90 s.
    assert_eq!(json["max_wait_s"].as_f64(), Some(90.0));
    std::fs::remove_file(workload).unwrap();
}

#[test]
fn bad_input_fails_with_a_message_naming_it() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["fill", "--policy", "fastest"],
            "unknown policy \"fastest\"",
        ),
        (&["fill", "--seeds", "9-1"], "bad --seed \"9-1\""),
        (
            &["fill", "--pods", "/nonexistent.csv"],
            "cannot read /nonexistent.csv",
        ),
        (
            &["fill", "--policy", "rule", "--seeds", "42"],
            "the rule policy needs a rules file",
        ),
    ];
    for (args, message) in cases {
        let output = lepton(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn policies_are_listed_with_their_descriptions() {
    let text = stdout(&lepton(&["policies"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        lepton::policies::policy_names().len(),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("drl")), "{text}");
    assert!(lines[0].starts_with("firstfit"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("fgd") && l.contains("fragmentation")),
        "{text}"
    );
}

#[test]
fn train_writes_a_model_and_its_curve_that_fill_then_uses() {
    let dir = std::env::temp_dir().join(format!("lepton-cli-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.safetensors");
    let curve = dir.join("curve.svg");
    let text = stdout(&lepton(&[
        "train",
        "--imitation",
        "1",
        "--episodes",
        "1",
        "--validation",
        "1",
        "--seed",
        "2000",
        "-o",
        "json",
        "--model",
        model.to_str().unwrap(),
        "--plot",
        curve.to_str().unwrap(),
    ]));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let episodes = json["episodes"].as_array().unwrap();
    assert_eq!(episodes.len(), 2);
    assert_eq!(episodes[0]["phase"], "imitation");
    assert_eq!(episodes[1]["phase"], "reinforce");
    assert_eq!(episodes[1]["seed"], 2001);
    assert!(episodes[1]["alloc_pct"].as_f64().unwrap() > 50.0);
    assert!(std::fs::read_to_string(&curve).unwrap().contains("<svg"));

    let text = stdout(&lepton(&[
        "fill",
        "--policy",
        "drl,fgd",
        "--seeds",
        "7",
        "--model",
        model.to_str().unwrap(),
        "--format",
        "json",
    ]));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results[0]["policy"], "drl");
    assert!(results[0]["alloc_pct_at_100"].as_f64().unwrap() > 50.0);
    assert_eq!(results[1]["policy"], "fgd");
}

#[test]
fn demo_prints_json_with_the_promised_keys() {
    let dir = std::env::temp_dir().join(format!("lepton-cli-demo-{}", std::process::id()));
    let text = stdout(&lepton(&[
        "demo",
        "--scenario",
        "datacenter",
        "--vms",
        "100",
        "--tasks",
        "2000",
        "--seed",
        "3",
        "--format",
        "json",
        "--out",
        dir.to_str().unwrap(),
    ]));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let scenario = &json["scenarios"][0];
    assert_eq!(scenario["scenario"], "datacenter");
    assert_eq!(scenario["seed"], 3);
    let strategies = scenario["strategies"].as_array().unwrap();
    let names = [
        "traditional",
        "kubernetes",
        "kubernetes-binpack",
        "kubernetes-binpack-overprovisioned",
        "karpenter",
        "karpenter-overprovisioned",
        "lepton (lifetime)",
    ];
    assert_eq!(strategies.len(), names.len(), "{scenario}");
    for (report, name) in strategies.iter().zip(names) {
        assert_eq!(report["name"], name);
        let role = if name.starts_with("lepton") {
            "lepton"
        } else {
            "baseline"
        };
        assert_eq!(report["role"], role);
        for field in [
            "utilization_pct",
            "cost_usd",
            "mean_wait_s",
            "wait_p95_s",
            "wait_p99_s",
        ] {
            assert!(report[field].as_f64().is_some(), "{name}.{field}: {report}");
        }
        let misses = report["deadline_misses"].as_u64().unwrap();
        assert!(report["unavoidable_misses"].as_u64().unwrap() <= misses);
        for zero in ["lost", "run_twice", "overcommitted"] {
            assert_eq!(report[zero], 0, "{name}.{zero}");
        }
    }
    let bound = scenario["lower_bound_cost_usd"].as_f64().unwrap();
    assert!(bound > 0.0 && bound < strategies[6]["cost_usd"].as_f64().unwrap());
    let each = scenario["lepton_vs_baselines"].as_array().unwrap();
    let against: Vec<&str> = each
        .iter()
        .map(|v| v["baseline"].as_str().unwrap())
        .collect();
    assert_eq!(against, names[..6]);
    let best = &scenario["lepton_vs_best_baseline"];
    assert!(
        names[..6].contains(&best["baseline"].as_str().unwrap()),
        "{best}"
    );
    for versus in each.iter().chain([best]) {
        for field in ["utilization_gain_pct", "cost_reduction_pct"] {
            assert!(versus[field].as_f64().is_some(), "{versus}");
        }
        assert!(versus["avoidable_misses_delta"].as_i64().is_some());
    }
    assert!(dir.join("index.html").exists());
}

#[test]
fn demo_runs_the_data_center_on_your_own_workload() {
    let dir = std::env::temp_dir().join(format!("lepton-cli-own-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 20 VMs (the first 5 owned: price 0), 300 tasks over 6 hours.
    let nodes: Vec<serde_json::Value> = (0..20)
        .map(|i| {
            serde_json::json!({
                "id": i,
                "capacity": {"cpu_milli": 8000, "memory_mib": 32768},
                "price_per_hour": if i < 5 { 0.0 } else { 0.4 },
            })
        })
        .collect();
    let tasks: Vec<serde_json::Value> = (0..300)
        .map(|i| {
            serde_json::json!({
                "spec": {"id": 1000 + i, "request": {"cpu_milli": 1000 + (i % 4) * 1000, "memory_mib": 2048}},
                "arrival_s": i * 72,
                "duration_s": 600 + (i % 7) * 300,
            })
        })
        .collect();
    let workload = dir.join("workload.json");
    let text = serde_json::json!({"nodes": nodes, "tasks": tasks}).to_string();
    std::fs::write(&workload, text).unwrap();
    let out = stdout(&lepton(&[
        "demo",
        "--scenario",
        "datacenter",
        "--workload",
        workload.to_str().unwrap(),
        "--format",
        "json",
        "--out",
        dir.to_str().unwrap(),
    ]));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let scenario = &json["scenarios"][0];
    assert_eq!(scenario["config"]["vms"], 20);
    assert_eq!(scenario["config"]["tasks"], 300);
    assert_eq!(scenario["config"]["hours"], 6);
    let strategies = scenario["strategies"].as_array().unwrap();
    for report in strategies {
        assert_eq!(report["completed"], 300, "{scenario}");
        assert_eq!(report["lost"], 0);
    }
    // The owned VMs cost nothing: the always-on baseline pays 15 × 0.4 per
    // hour of the run.
    let traditional = &strategies[0];
    assert_eq!(traditional["name"], "traditional");
    let hours = traditional["vm_hours"].as_f64().unwrap() / 20.0;
    let cost = traditional["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - 15.0 * 0.4 * hours).abs() < 1e-6,
        "{cost} for {hours} h"
    );

    // A task without a duration is named.
    let no_duration = dir.join("no_duration.json");
    let text = serde_json::json!({
        "nodes": [{"id": 0, "capacity": {"cpu_milli": 8000, "memory_mib": 32768}}],
        "tasks": [{"spec": {"id": 7, "request": {"cpu_milli": 1000, "memory_mib": 1024}}, "arrival_s": 0}],
    });
    std::fs::write(&no_duration, text.to_string()).unwrap();
    let output = lepton(&[
        "demo",
        "--scenario",
        "datacenter",
        "--workload",
        no_duration.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no_duration.json: task t-7 has no duration_s"),
        "{stderr}"
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    let bash = stdout(&lepton(&["completions", "bash"]));
    assert!(bash.contains("_lepton()"), "{bash}");
    assert!(bash.contains("demo") && bash.contains("train"), "{bash}");
    let fish = stdout(&lepton(&["completions", "fish"]));
    assert!(fish.contains("complete -c lepton"), "{fish}");
    let output = lepton(&["completions", "cmd"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid value 'cmd'"));
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    // The reader goes away before the command writes (`lepton … | head`).
    for args in [&["completions", "bash"][..], &["policies"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lepton"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(output.status.success(), "{args:?}: {stderr}");
    }
}

#[test]
fn every_command_speaks_the_same_flags_and_still_takes_the_older_ones() {
    let trace = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/alibaba-gpu-2023");
    let nodes = format!("{trace}/openb_node_list_gpu_node.csv");
    let pods = format!("{trace}/openb_pod_list_default.csv");
    let small: [&[&str]; 5] = [
        &["fill", "--policy", "bestfit", "--seed", "42"],
        &["replay", "--policy", "bestfit", "--horizon-s", "86400"],
        &["scale", "--nodes", "50", "--tasks", "100", "--schedule"],
        &["chaos", "--nodes", "20", "--tasks", "200"],
        &[
            "demo",
            "--scenario",
            "edge",
            "--tasks",
            "500",
            "--hours",
            "2",
            "--out",
        ],
    ];
    let out = std::env::temp_dir().join(format!("lepton-cli-flags-{}", std::process::id()));
    let out = out.to_str().unwrap();
    for command in small {
        let mut base: Vec<&str> = command.to_vec();
        if base[0] == "demo" {
            base.push(out);
        }
        for spelling in [["-o", "json"], ["--output", "json"], ["--format", "json"]] {
            let args = [&base[..], &spelling[..]].concat();
            let json: serde_json::Value = serde_json::from_str(&stdout(&lepton(&args)))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(json.is_object(), "{args:?}");
        }
        for spelling in [["-o", "table"], ["--format", "text"]] {
            let args = [&base[..], &spelling[..]].concat();
            let text = stdout(&lepton(&args));
            assert!(
                serde_json::from_str::<serde_json::Value>(&text).is_err(),
                "{args:?}"
            );
        }
    }
    // The older names of renamed flags.
    let old = stdout(&lepton(&[
        "fill", "--nodes", &nodes, "--pods", &pods, "--seeds", "42", "--policy", "bestfit", "-o",
        "json",
    ]));
    let new = stdout(&lepton(&[
        "fill",
        "--node-list",
        &nodes,
        "--pod-list",
        &pods,
        "--seed",
        "42",
        "--policy",
        "bestfit",
        "-o",
        "json",
    ]));
    let alloc = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text).unwrap()["results"][0]["alloc_pct_at_100"]
            .as_f64()
    };
    assert_eq!(alloc(&old), alloc(&new));
    for (older, newer) in [
        (["--node-failure-rate", "0.5"], ["--crash-share", "0.5"]),
        (["--seeds", "7"], ["--seed", "7"]),
    ] {
        let run = |flags: [&str; 2]| {
            let args = [
                &["chaos", "--nodes", "20", "--tasks", "200", "-o", "json"][..],
                &flags[..],
            ]
            .concat();
            let mut json: serde_json::Value =
                serde_json::from_str(&stdout(&lepton(&args))).unwrap();
            json["wall_s"] = serde_json::Value::Null;
            json
        };
        assert_eq!(run(older), run(newer));
    }
}

#[test]
fn rules_that_let_tasks_on_no_node_they_fit_are_named() {
    let dir = std::env::temp_dir().join(format!("lepton-rules-none-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    // A label required and forbidden at once: no node passes.
    let none = file(
        "none.toml",
        "[[filter]]\nrequire_label = { tier = \"a\" }\nforbid_label = { tier = \"a\" }\n",
    );
    // VMs only: the task too large for the VM has nowhere to go.
    let vms = file("vms.toml", "[[filter]]\nnode_kind = [\"vm\"]\n");
    let workload = file(
        "w.json",
        r#"{"nodes": [
            {"id": 0, "capacity": {"cpu_milli": 4000, "memory_mib": 4096}},
            {"id": 1, "capacity": {"cpu_milli": 2000, "memory_mib": 4096}, "kind": "vm"}],
          "tasks": [
            {"spec": {"id": 1, "request": {"cpu_milli": 1000}}, "arrival_s": 0, "duration_s": 10},
            {"spec": {"id": 2, "request": {"cpu_milli": 3000}}, "arrival_s": 1, "duration_s": 10}]}"#,
    );
    let replay = |rules: &str| {
        lepton(&[
            "replay",
            "--workload",
            &workload,
            "--policy",
            "rule",
            "--rules",
            rules,
        ])
    };
    let refused = replay(&none);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("rules let no task of"), "{said}");
    let warned = replay(&vms);
    let said = String::from_utf8_lossy(&warned.stderr);
    assert!(warned.status.success(), "{said}");
    assert!(
        said.contains("\"t-2\" fits a node, but none that policy rule's rules allow"),
        "{said}"
    );
    assert!(!said.contains("\"t-1\" fits"), "{said}");
}
