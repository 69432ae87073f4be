//! Outputs are written whole or not at all: a write that fails (here: the
//! file size limit, as a full disk would) leaves the file that was there,
//! and no partial file; a diverged model is never written.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lepton-outputs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `lepton ARGS` under `prlimit --fsize=BYTES`: whether it succeeded.
fn limited(bytes: u64, args: &[&str]) -> bool {
    Command::new("prlimit")
        .arg(format!("--fsize={bytes}"))
        .arg(env!("CARGO_BIN_EXE_lepton"))
        .args(args)
        .env_remove("LEPTON_TRACE_DIR")
        .output()
        .expect("prlimit (util-linux)")
        .status
        .success()
}

#[test]
fn a_failed_write_leaves_the_old_file_and_no_partial_one() {
    let dir = scratch("fsize");
    let csv = dir.join("placements.csv");
    let svg = dir.join("plot.svg");
    std::fs::write(&csv, "the old placements\n").unwrap();
    std::fs::write(&svg, "<svg>the old plot</svg>\n").unwrap();
    let (csv_arg, svg_arg) = (csv.to_str().unwrap(), svg.to_str().unwrap());
    // The real outputs are far over 1,000 bytes.
    assert!(!limited(
        1_000,
        &["replay", "--policy", "bestfit", "--placements", csv_arg]
    ));
    assert!(!limited(
        1_000,
        &["replay", "--policy", "bestfit", "--plot", svg_arg]
    ));
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        "the old placements\n"
    );
    assert_eq!(
        std::fs::read_to_string(&svg).unwrap(),
        "<svg>the old plot</svg>\n"
    );
    // Without the limit both are replaced, whole.
    assert!(limited(
        1 << 30,
        &[
            "replay",
            "--policy",
            "bestfit",
            "--placements",
            csv_arg,
            "--plot",
            svg_arg
        ]
    ));
    let placements = std::fs::read_to_string(&csv).unwrap();
    assert!(
        placements.starts_with("task,arrival_s,node"),
        "{placements}"
    );
    assert!(std::fs::read_to_string(&svg)
        .unwrap()
        .trim_end()
        .ends_with("</svg>"));
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn an_output_over_an_input_or_another_output_is_refused() {
    let dir = scratch("clash");
    let workload = dir.join("w.json");
    let text = r#"{"nodes": [{"id": 0, "capacity": {"cpu_milli": 4000, "memory_mib": 4096}}],
        "tasks": [{"arrival_s": 0, "duration_s": 10, "spec": {"id": 1, "request": {"cpu_milli": 1000}}}]}"#;
    std::fs::write(&workload, text).unwrap();
    let w = workload.to_str().unwrap();
    let same_dir = format!("{}/./w.json", dir.display());
    let plot = dir.join("p.svg");
    let p = plot.to_str().unwrap();
    for (args, names) in [
        (
            vec!["replay", "--workload", w, "--placements", w],
            "--placements",
        ),
        (
            vec!["replay", "--workload", w, "--placements", &same_dir],
            "--placements",
        ),
        (
            vec!["replay", "--workload", w, "--plot", p, "--placements", p],
            "also --plot",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_lepton"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr.contains(names) && stderr.contains("overwritten"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(&workload).unwrap(), text);
}

#[test]
fn names_cannot_drive_the_terminal_or_the_csv_reader() {
    let dir = scratch("names");
    let workload = dir.join("w.json");
    // One task fits (it goes to the CSV), one fits no node (it is warned
    // about on the terminal); both named with an escape sequence.
    let text = r#"{"nodes": [{"id": 0, "capacity": {"cpu_milli": 4000, "memory_mib": 4096}}],
        "tasks": [
          {"arrival_s": 0, "duration_s": 10, "spec": {"id": 1, "name": "evil\u001b[31mred", "request": {"cpu_milli": 1000}}},
          {"arrival_s": 0, "duration_s": 10, "spec": {"id": 2, "name": "huge\u001b]0;owned\u0007", "request": {"cpu_milli": 64000}}}
        ]}"#;
    std::fs::write(&workload, text).unwrap();
    let csv = dir.join("p.csv");
    let output = Command::new(env!("CARGO_BIN_EXE_lepton"))
        .args(["replay", "--workload", workload.to_str().unwrap()])
        .args(["--placements", csv.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(r"huge\u{1b}]0;owned\u{7}"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "{stderr:?}"
    );
    let placements = std::fs::read_to_string(&csv).unwrap();
    assert!(placements.contains(r"evil\u{1b}[31mred"), "{placements}");
    assert!(!placements.contains('\u{1b}'), "{placements:?}");
}
