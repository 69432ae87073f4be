//! Bad flags and input files given to the `lepton` binary: each fails with
//! a non-zero exit and a message on stderr naming the value or the file,
//! and none panics. (`cli.rs` has a few more, next to the good runs.)

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

/// Writes `text` to a fresh file named `name` and returns its path as text.
fn input_file(name: &str, text: &str) -> String {
    let dir: PathBuf = std::env::temp_dir().join(format!("lepton-bad-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn bad_flags_and_files_fail_naming_the_value() {
    let empty = input_file("empty.csv", "");
    let nodes_header = input_file("nodes.csv", "sn,cpu_milli,memory_mib,gpu,model\n");
    let pods_header = input_file("pods.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n");
    let truncated = input_file("cut.csv", "sn,cpu_milli,memory_mib,gpu,model\nn0,64000\n");
    let nan_weight = input_file("nan.toml", "[[score]]\nrule = \"spread\"\nweight = nan\n");
    let unknown_scorer = input_file("scorer.json", "{\"score\": [\n{\"rule\": \"fastest\"}]}");
    let empty_rules = input_file("rules.json", "");
    let empty_workload = input_file("workload.json", "");
    let garbage_model = input_file("model.safetensors", "not a model");
    let out = input_file("out.safetensors", "");
    let train = |given: &[&str]| -> Vec<String> {
        let mut args = vec!["train", "--model", &out];
        args.extend_from_slice(given);
        args.into_iter().map(str::to_owned).collect()
    };
    // Unless a case sets them, one policy and one seed: a check that
    // slipped would cost one run, not sixty.
    let fill = |given: &[&str]| -> Vec<String> {
        let mut args = vec!["fill"];
        args.extend_from_slice(given);
        for (flag, default) in [("--policy", "bestfit"), ("--seed", "42")] {
            let seeds_given = flag == "--seed" && given.contains(&"--seeds");
            if !given.contains(&flag) && !seeds_given {
                args.extend([flag, default]);
            }
        }
        args.into_iter().map(str::to_owned).collect()
    };
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            fill(&["--tune", "NaN"]),
            "tune = NaN is out of range".into(),
        ),
        (fill(&["--tune", "-1"]), "tune = -1 is out of range".into()),
        (
            fill(&["--tune", "inf"]),
            "tune = inf is out of range".into(),
        ),
        (fill(&["--tune", "0"]), "tune = 0 is out of range".into()),
        // Said as a person reads it, not in 309 digits.
        (
            fill(&["--tune", "1e308"]),
            "tune = 1e308 is out of range".into(),
        ),
        (
            fill(&["--tune", "1,3"]),
            "invalid value '1,3' for '--tune".into(),
        ),
        (fill(&["--seeds", "5-3"]), "bad --seed \"5-3\"".into()),
        (fill(&["--seeds", "abc"]), "bad --seed \"abc\"".into()),
        (fill(&["--seeds", "-3"]), "bad --seed \"-3\"".into()),
        (
            fill(&["--seeds", "0-18446744073709551615"]),
            "bad --seed \"0-18446744073709551615\": more than 10000 seeds".into(),
        ),
        (
            fill(&["--seeds", "18446744073709551616"]),
            "bad --seed \"18446744073709551616\"".into(),
        ),
        (
            fill(&["--nodes", &empty]),
            format!("{empty}:1: the file is empty"),
        ),
        (
            fill(&["--nodes", "/nonexistent/nodes.csv"]),
            "cannot read /nonexistent/nodes.csv".into(),
        ),
        (
            fill(&["--nodes", &nodes_header]),
            format!("{nodes_header}:1: the file has a header but no rows"),
        ),
        (
            fill(&["--pods", &pods_header]),
            format!("{pods_header}:1: the file has a header but no rows"),
        ),
        (
            fill(&["--nodes", &truncated]),
            format!("{truncated}:2: expected 5 fields, found 2"),
        ),
        (
            fill(&["--policy", "rule", "--rules", &nan_weight]),
            format!("{nan_weight}:3: weight must be a finite number above 0, got NaN"),
        ),
        (
            fill(&["--policy", "rule", "--rules", &unknown_scorer]),
            format!("{unknown_scorer}:2: unknown scorer \"fastest\""),
        ),
        (
            fill(&["--policy", "rule", "--rules", &empty_rules]),
            format!("{empty_rules}:1: EOF while parsing a value"),
        ),
        (
            vec!["replay".into(), "--workload".into(), empty_workload.clone()],
            format!("{empty_workload}:1: the file is empty"),
        ),
        (
            [
                "replay",
                "--policy",
                "bestfit",
                "--node-failure-rate",
                "NaN",
            ]
            .map(String::from)
            .to_vec(),
            "node_failure_rate_per_hour = NaN is out of range".into(),
        ),
        (
            [
                "replay",
                "--policy",
                "bestfit",
                "--node-failure-rate",
                "-0.5",
            ]
            .map(String::from)
            .to_vec(),
            "node_failure_rate_per_hour = -0.5 is out of range".into(),
        ),
        (
            [
                "replay",
                "--policy",
                "bestfit",
                "--node-failure-rate",
                "1e308",
                "--recovery-s",
                "0",
            ]
            .map(String::from)
            .to_vec(),
            "node_failure_rate_per_hour = 1e308 is out of range: from 0 to 60".into(),
        ),
        (
            ["replay", "--policy", "bestfit", "--sample-every-s", "0"]
                .map(String::from)
                .to_vec(),
            "0 is out of range: a whole number from 1 to".into(),
        ),
        (
            ["scale", "--nodes", "-1"].map(String::from).to_vec(),
            "-1 is out of range: a whole number from 1 to 1,000,000".into(),
        ),
        (
            ["scale", "--nodes", "0"].map(String::from).to_vec(),
            "invalid value '0' for '--nodes <NODES>': 0 is out of range: a whole number from 1 to 1,000,000".into(),
        ),
        (
            ["scale", "--nodes", "1000000000000"]
                .map(String::from)
                .to_vec(),
            "invalid value '1000000000000' for '--nodes <NODES>'".into(),
        ),
        (
            ["scale", "--nodes", "10", "--tasks", "1000000000000"]
                .map(String::from)
                .to_vec(),
            "invalid value '1000000000000' for '--tasks <TASKS>'".into(),
        ),
        (
            ["chaos", "--nodes", "1", "--tasks", "18446744073709551615"]
                .map(String::from)
                .to_vec(),
            "invalid value '18446744073709551615' for '--tasks <TASKS>'".into(),
        ),
        (
            fill(&[
                "--policy",
                "drl",
                "--model",
                "/nonexistent/model.safetensors",
            ]),
            "model file \"/nonexistent/model.safetensors\": No such file".into(),
        ),
        (
            fill(&["--policy", "drl", "--model", &garbage_model]),
            format!("model file {garbage_model:?}: not a safetensors file: its header claims more than 100 MB"),
        ),
        (
            train(&["--reward", "gpu"]),
            "unknown reward \"gpu\"; valid rewards: gpus, frag, seed, cost".into(),
        ),
        (
            train(&["--seed", "40", "--imitation", "1", "--episodes", "2"]),
            "training seed 42 is an evaluation seed (42-51)".into(),
        ),
        (
            train(&["--candidates", "0"]),
            "max_candidates = 0 is out of range".into(),
        ),
        (
            fill(&["--seeds", "42,43,42"]),
            "bad --seed \"42,43,42\": seed 42 is given twice".into(),
        ),
        (
            fill(&["--seeds", "40-45,44"]),
            "seed 44 is given twice".into(),
        ),
        (
            fill(&["--policy", "bestfit,fgd,bestfit"]),
            "policy \"bestfit\" is given twice".into(),
        ),
        (
            fill(&["--threads", "0"]),
            "invalid value '0' for '--threads <THREADS>': 0 is out of range: a whole number from 1 to 256".into(),
        ),
        (
            fill(&["--threads", "100000"]),
            "invalid value '100000' for '--threads <THREADS>'".into(),
        ),
        (
            fill(&["--plot", "fill.png"]),
            "--plot fill.png: plots are SVG; the file name must end in .svg".into(),
        ),
        (
            fill(&["--plot", "/nonexistent/dir/fill.svg"]),
            "--plot /nonexistent/dir/fill.svg: directory /nonexistent/dir does not exist".into(),
        ),
        (train(&["--plot", "curve.png"]), "plots are SVG".into()),
        (
            ["replay", "--workload", "/dev/zero"].map(String::from).to_vec(),
            "cannot read /dev/zero: not a regular file or a pipe".into(),
        ),
        (
            fill(&["--pod-list", "/dev/zero"]),
            "cannot read /dev/zero: not a regular file or a pipe".into(),
        ),
        (
            ["replay", "--policy", "drl", "--model", "/dev/zero"]
                .map(String::from)
                .to_vec(),
            "model file \"/dev/zero\": not a regular file or a pipe".into(),
        ),
        (
            ["submit", "/dev/zero"].map(String::from).to_vec(),
            "cannot read /dev/zero: not a regular file or a pipe".into(),
        ),
        (
            train(&["--learning-rate", "-1"]),
            "-1 is out of range: above 0, at most 1".into(),
        ),
        (
            train(&["--learning-rate", "1e30"]),
            "1e30 is out of range: above 0, at most 1".into(),
        ),
        (
            train(&["--reinforce-learning-rate", "NaN"]),
            "NaN is out of range: above 0, at most 1".into(),
        ),
        (
            train(&["--temperature", "0"]),
            "0 is out of range: above 0, at most 100".into(),
        ),
        (
            ["train", "--model", "/nonexistent/dir/model.safetensors"]
                .map(String::from)
                .to_vec(),
            "/nonexistent/dir".into(),
        ),
        (
            ["train", "-o", "model.safetensors"].map(String::from).to_vec(),
            "invalid value 'model.safetensors' for '--output <FORMAT>'".into(),
        ),
        (
            ["demo", "--vms", "5"].map(String::from).to_vec(),
            "invalid value '5' for '--vms <VMS>': 5 is out of range: a whole number from 10 to 100,000".into(),
        ),
        (
            ["demo", "--tasks", "0"].map(String::from).to_vec(),
            "0 is out of range: a whole number from 1 to 2,000,000".into(),
        ),
        (
            ["demo", "--sites", "1"].map(String::from).to_vec(),
            "1 is out of range: a whole number from 2 to 1,000".into(),
        ),
        (
            ["demo", "--policy", "nope"].map(String::from).to_vec(),
            "unknown policy \"nope\"".into(),
        ),
        (
            ["demo", "--out", "/proc/lepton-report"]
                .map(String::from)
                .to_vec(),
            "cannot write to /proc/lepton-report".into(),
        ),
        (
            ["train"].map(String::from).to_vec(),
            "the following required arguments were not provided".into(),
        ),
    ];
    for (args, names) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_lepton"))
            .args(&args)
            // The trace shipped in the repository, found from any directory.
            .env_remove("LEPTON_TRACE_DIR")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(
            output.status.code().is_some(),
            "{args:?} was killed: {stderr}"
        );
        assert!(stderr.contains(&names), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

// ------------------------------------------------------------------------
// One test per row of issue 13's first two sections: each failed (crashed,
// hung or accepted nonsense) on the main before it, and none may run past
// its bound here.

/// What a bounded run of the binary said.
struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `lepton args` and kills it (failing the test) if it runs past
/// `bound`: a hang is a failure, not a slow test.
fn run_bounded(args: &[&str], bound: std::time::Duration) -> Ran {
    run_bounded_with(args, bound, &[])
}

fn run_bounded_with(args: &[&str], bound: std::time::Duration, env: &[(&str, &str)]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lepton"));
    command
        .args(args)
        .env_remove("LEPTON_TRACE_DIR")
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > bound {
            child.kill().unwrap();
            panic!("{args:?} ran past its bound of {bound:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let ran = Ran {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        output.status.code().is_some(),
        "{args:?} was killed: {}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("panicked"), "{args:?}: {}", ran.stderr);
    ran
}

const BOUND: std::time::Duration = std::time::Duration::from_secs(120);

/// Asserts `lepton args` fails within the bound, saying `names`.
fn fails_saying(args: &[&str], names: &str) {
    let ran = run_bounded(args, BOUND);
    assert!(!ran.success, "{args:?} succeeded: {}", ran.stdout);
    assert!(ran.stderr.contains(names), "{args:?}: {}", ran.stderr);
}

/// A pod list with `rows` under the full openb header.
fn pods_file(name: &str, rows: &str) -> String {
    input_file(
        name,
        &format!(
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n{rows}"
        ),
    )
}

#[test]
fn fill_tune_far_above_capacity_is_refused_not_allocated() {
    fails_saying(
        &[
            "fill", "--tune", "1e9", "--policy", "bestfit", "--seed", "42",
        ],
        "tune = 1000000000 is out of range: 1 to 10",
    );
}

#[test]
fn replay_with_node_failures_ends_at_a_stated_horizon() {
    // On the default trace, 0.01 failures per node-hour never ended: its
    // 100-day pods never run 100 days between two failures of their node.
    // The same here, small enough for a debug build: 30-day tasks on nodes
    // that fail every 20 hours.
    let day = 86_400;
    let nodes: Vec<serde_json::Value> = (0..50)
        .map(
            |id| serde_json::json!({"id": id, "capacity": {"cpu_milli": 8000, "memory_mib": 8192}}),
        )
        .collect();
    let tasks: Vec<serde_json::Value> = (0..100)
        .map(|id| {
            serde_json::json!({"spec": {"id": id, "request": {"cpu_milli": 2000}},
                               "arrival_s": id * 60, "duration_s": 30 * day})
        })
        .collect();
    let path = input_file(
        "restarted.json",
        &serde_json::json!({"nodes": nodes, "tasks": tasks}).to_string(),
    );
    let args = [
        "replay",
        "--workload",
        &path,
        "--policy",
        "bestfit",
        "--node-failure-rate",
        "0.05",
        "--sample-every-s",
        "86400",
    ];
    let ran = run_bounded(&args, BOUND);
    assert!(ran.success, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("stopped at the horizon"),
        "{}",
        ran.stdout
    );
    let json = run_bounded(&[&args[..], &["-o", "json"]].concat(), BOUND);
    let result: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(result["stopped_at_horizon"], true, "{result}");
    assert_eq!(
        result["end_s"].as_f64(),
        result["horizon_s"].as_f64(),
        "{result}"
    );
    assert!(
        result["node_failures"].as_u64().unwrap() > 1_000,
        "{result}"
    );
}

#[test]
fn a_large_json_workload_loads_in_linear_time() {
    // 20,000 tasks (14 MB) took 34 s in release mode when every element's
    // position was found by rescanning the file; linear, it is a fraction
    // of a second (and a few seconds in a debug build).
    let workload = lepton::sim::synthetic_workload(200, 20_000, 7);
    let path = input_file(
        "large-workload.json",
        &serde_json::to_string_pretty(&workload).unwrap(),
    );
    let ran = run_bounded(
        &[
            "replay",
            "--workload",
            &path,
            "--policy",
            "firstfit",
            "-o",
            "json",
        ],
        std::time::Duration::from_secs(60),
    );
    assert!(ran.success, "{}", ran.stderr);
    let result: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(result["tasks_submitted"], 20_000);
    assert!(result["load_s"].as_f64().is_some(), "{result}");
}

#[test]
fn chaos_tasks_still_retrying_at_the_end_are_unfinished_not_lost() {
    let ran = run_bounded(
        &[
            "chaos",
            "--nodes",
            "100",
            "--tasks",
            "2000",
            "--launch-error-rate",
            "1.0",
        ],
        BOUND,
    );
    // Nothing is lost: the command succeeds.
    assert!(ran.success, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("checker: lost 0,"), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("unfinished, not lost (the scheduler still holds them)"),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_pod_asking_for_a_million_gpus_is_refused_with_the_range() {
    let pods = pods_file(
        "million.csv",
        "p-1,1000,1024,1000000,1000,,LS,Running,0,10,0\n",
    );
    fails_saying(
        &[
            "fill",
            "--pod-list",
            &pods,
            "--policy",
            "bestfit",
            "--seed",
            "42",
        ],
        &format!("{pods}:2: column num_gpu: num_gpu = 1000000 is out of range: 0 to 64"),
    );
}

#[test]
fn pods_with_a_gpu_model_no_node_has_are_named() {
    // One pod no node can take: a warning naming it, and the run goes on.
    let some = pods_file(
        "one-h100.csv",
        "p-1,1000,1024,1,1000,H100,LS,Running,0,10,0\np-2,1000,1024,1,1000,,LS,Running,0,10,0\n",
    );
    let ran = run_bounded(
        &[
            "fill",
            "--pod-list",
            &some,
            "--policy",
            "bestfit",
            "--seed",
            "42",
        ],
        BOUND,
    );
    assert!(ran.success, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("warning:")
            && ran.stderr.contains("\"p-1\" (cpu_milli 1000, memory_mib 1024, num_gpu 1, gpu_milli 1000, gpu_spec H100) fits no node"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("of models A10, G2, G3, P100, T4, V100M16, V100M32"),
        "{}",
        ran.stderr
    );
    // Every pod unplaceable: the run would measure nothing.
    let none = pods_file(
        "all-h100.csv",
        "p-1,1000,1024,1,1000,H100,LS,Running,0,10,0\n",
    );
    fails_saying(
        &[
            "fill",
            "--pod-list",
            &none,
            "--policy",
            "bestfit",
            "--seed",
            "42",
        ],
        "no task of",
    );
}

#[test]
fn an_empty_rules_file_is_refused() {
    let empty = input_file("empty-rules.toml", "# no rules yet\n");
    fails_saying(
        &[
            "fill", "--policy", "rule", "--rules", &empty, "--seed", "42",
        ],
        &format!("{empty}:1: the file has no rules"),
    );
}

#[test]
fn fill_tune_below_one_is_refused() {
    fails_saying(
        &[
            "fill", "--tune", "0.5", "--policy", "bestfit", "--seed", "42",
        ],
        "tune = 0.5 is out of range: 1 to 10: below 1 arrivals never reach 100%",
    );
}

#[test]
fn duplicate_pod_and_node_names_are_refused() {
    let pods = pods_file(
        "twice.csv",
        "p-1,1000,1024,0,0,,LS,Running,0,10,0\np-1,1000,1024,0,0,,LS,Running,0,10,0\n",
    );
    fails_saying(
        &[
            "fill",
            "--pod-list",
            &pods,
            "--policy",
            "bestfit",
            "--seed",
            "42",
        ],
        &format!("{pods}:3: column name: pod name \"p-1\" is already used on line 2"),
    );
    let nodes = input_file(
        "nodes-twice.csv",
        "sn,cpu_milli,memory_mib,gpu,model\nn-1,64000,262144,8,V100M32\nn-1,64000,262144,8,V100M32\n",
    );
    fails_saying(
        &[
            "fill",
            "--node-list",
            &nodes,
            "--policy",
            "bestfit",
            "--seed",
            "42",
        ],
        &format!("{nodes}:3: column sn: node name \"n-1\" is already used on line 2"),
    );
}

#[test]
fn a_column_given_twice_is_refused() {
    let nodes = input_file(
        "column-twice.csv",
        "sn,cpu_milli,memory_mib,gpu,model,gpu\nn-1,64000,262144,8,V100M32,8\n",
    );
    fails_saying(
        &[
            "fill",
            "--node-list",
            &nodes,
            "--policy",
            "bestfit",
            "--seed",
            "42",
        ],
        &format!("{nodes}:1: column gpu: column \"gpu\" is given twice in the header"),
    );
}

#[test]
fn a_deletion_before_its_creation_is_refused() {
    let pods = pods_file(
        "backwards.csv",
        "p-1,1000,1024,0,0,,LS,Running,500,100,500\n",
    );
    fails_saying(
        &["replay", "--pod-list", &pods, "--policy", "bestfit"],
        &format!("{pods}:2: column deletion_time: pod \"p-1\" is deleted at 100 s, before its creation at 500 s"),
    );
}

#[test]
fn a_byte_order_mark_is_not_part_of_a_column_name() {
    let nodes = input_file(
        "bom-nodes.csv",
        "\u{feff}sn,cpu_milli,memory_mib,gpu,model\nn-1,64000,262144,8,V100M32\n",
    );
    let pods = input_file(
        "bom-pods.csv",
        "\u{feff}name,cpu_milli,memory_mib,num_gpu,gpu_milli\np-1,1000,1024,1,1000\n",
    );
    let ran = run_bounded(
        &[
            "fill",
            "--node-list",
            &nodes,
            "--pod-list",
            &pods,
            "--policy",
            "bestfit",
            "--seed",
            "42",
            "-o",
            "json",
        ],
        BOUND,
    );
    assert!(ran.success, "{}", ran.stderr);
    let json = r#"{"nodes": [{"id": 1, "capacity": {"cpu_milli": 4000}}],
        "tasks": [{"spec": {"id": 1, "request": {"cpu_milli": 1000}}, "arrival_s": 0, "duration_s": 5}]}"#;
    let workload = input_file("bom-workload.json", &format!("\u{feff}{json}"));
    let ran = run_bounded(
        &["replay", "--workload", &workload, "--policy", "bestfit"],
        BOUND,
    );
    assert!(ran.success, "{}", ran.stderr);
}

#[test]
fn errors_name_rows_by_the_files_own_names() {
    let pods = pods_file("own-names.csv", "p-7,1000,1024,1,1001,,LS,Running,0,10,0\n");
    fails_saying(
        &[
            "fill",
            "--pod-list",
            &pods,
            "--policy",
            "bestfit",
            "--seed",
            "42",
        ],
        &format!("{pods}:2: pod \"p-7\" asks for 1001 milli-GPUs on one GPU"),
    );
}

#[test]
fn negative_and_fractional_numbers_get_their_range() {
    fails_saying(
        &["replay", "--seed", "-1"],
        "invalid value '-1' for '--seed <SEED>': -1 is out of range: a whole number from 0 to",
    );
    fails_saying(
        &["chaos", "--tasks", "2.5"],
        "2.5 is not a whole number from 1 to 2,000,000",
    );
    fails_saying(
        &["replay", "--arrival-scale", "-2"],
        "--arrival-scale -2 is out of range: a decimal above 0",
    );
    fails_saying(
        &["replay", "--horizon-s", "18446744073709551615"],
        "is out of range: a whole number from 1 to 18,446,744,073,709",
    );
    fails_saying(
        &["replay", "--arrival-scale", "fast"],
        "fast is not a number (a decimal such as 0.5 or 2.5)",
    );
}

#[test]
fn an_empty_trace_dir_is_an_error_not_the_current_directory() {
    let ran = run_bounded_with(
        &["fill", "--policy", "bestfit", "--seed", "42"],
        BOUND,
        &[("LEPTON_TRACE_DIR", "")],
    );
    assert!(!ran.success);
    assert!(ran.stderr.contains("LEPTON_TRACE_DIR"), "{}", ran.stderr);
    assert!(ran.stderr.contains("set but empty"), "{}", ran.stderr);
}

#[test]
fn rules_are_accepted_wherever_the_rule_policy_is() {
    let rules = input_file("spread.toml", "[[score]]\nrule = \"spread\"\n");
    for args in [
        vec![
            "chaos", "--nodes", "20", "--tasks", "200", "--policy", "rule", "--rules", &rules,
        ],
        vec![
            "scale",
            "--nodes",
            "20",
            "--tasks",
            "200",
            "--schedule",
            "--policy",
            "rule",
            "--rules",
            &rules,
        ],
        vec![
            "replay",
            "--policy",
            "rule",
            "--rules",
            &rules,
            "--arrival-scale",
            "2.5",
            "--horizon-s",
            "86400",
        ],
    ] {
        let ran = run_bounded(&args, BOUND);
        assert!(ran.success, "{args:?}: {}", ran.stderr);
    }
}
