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
        let mut args = vec!["train", "-o", &out];
        args.extend_from_slice(given);
        args.into_iter().map(str::to_owned).collect()
    };
    // Unless a case sets them, one policy and one seed: a check that
    // slipped would cost one run, not sixty.
    let fill = |given: &[&str]| -> Vec<String> {
        let mut args = vec!["fill"];
        args.extend_from_slice(given);
        for (flag, default) in [("--policy", "bestfit"), ("--seeds", "42")] {
            if !given.contains(&flag) {
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
        (
            fill(&["--tune", "1,3"]),
            "invalid value '1,3' for '--tune".into(),
        ),
        (fill(&["--seeds", "5-3"]), "bad --seeds \"5-3\"".into()),
        (fill(&["--seeds", "abc"]), "bad --seeds \"abc\"".into()),
        (fill(&["--seeds", "-3"]), "bad --seeds \"-3\"".into()),
        (
            fill(&["--seeds", "0-18446744073709551615"]),
            "bad --seeds \"0-18446744073709551615\": more than 10000 seeds".into(),
        ),
        (
            fill(&["--seeds", "18446744073709551616"]),
            "bad --seeds \"18446744073709551616\"".into(),
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
            ["replay", "--policy", "bestfit", "--sample-every-s", "0"]
                .map(String::from)
                .to_vec(),
            "sample_every_s = 0 is out of range".into(),
        ),
        (
            ["scale", "--nodes", "-1"].map(String::from).to_vec(),
            "unexpected argument '-1'".into(),
        ),
        (
            ["scale", "--nodes", "0"].map(String::from).to_vec(),
            "invalid value '0' for '--nodes <NODES>': 0 is not in 1..=1000000".into(),
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
            format!("model file {garbage_model:?}: not a safetensors file"),
        ),
        (
            train(&["--reward", "gpu"]),
            "unknown reward \"gpu\"; valid rewards: gpus, frag, seed".into(),
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
            "bad --seeds \"42,43,42\": seed 42 is given twice".into(),
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
            "invalid value '0' for '--threads <THREADS>': 0 is not in 1..=256".into(),
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
            ["demo", "--vms", "5"].map(String::from).to_vec(),
            "vms = 5 is out of range: 10 to 100,000 VMs".into(),
        ),
        (
            ["demo", "--tasks", "0"].map(String::from).to_vec(),
            "tasks = 0 is out of range".into(),
        ),
        (
            ["demo", "--sites", "1"].map(String::from).to_vec(),
            "sites = 1 is out of range: 2 to 1,000 sites".into(),
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
