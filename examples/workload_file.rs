//! Writes a synthetic JSON workload file (the format `lepton replay
//! --workload` reads, documented in docs/WORKLOAD.md), to try the replay on
//! a workload of any size or to time its reader:
//!
//! ```sh
//! cargo run --release --example workload_file -- 125000 /tmp/big.json
//! lepton replay --workload /tmp/big.json --policy bestfit
//! ```
//!
//! Arguments: the number of tasks (one arriving per second), the file, and
//! optionally the number of nodes (default 1,000).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: workload_file TASKS FILE [NODES]";
    let (Some(tasks), Some(path)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        return ExitCode::FAILURE;
    };
    let number = |text: &str, what: &str| -> Result<u64, String> {
        text.parse()
            .map_err(|_| format!("{what} must be a whole number, got {text:?}; {usage}"))
    };
    let counts = number(tasks, "TASKS").and_then(|tasks| {
        let nodes = args.get(2).map_or(Ok(1_000), |n| number(n, "NODES"))?;
        Ok((nodes, tasks))
    });
    let (nodes, tasks) = match counts {
        Ok(counts) => counts,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let workload = lepton::sim::synthetic_workload(nodes, tasks, 42);
    let written = serde_json::to_string_pretty(&workload)
        .map_err(|e| e.to_string())
        .and_then(|json| {
            std::fs::write(path, &json).map_err(|e| format!("cannot write {path}: {e}"))?;
            Ok(json.len())
        });
    match written {
        Ok(bytes) => {
            eprintln!("wrote {path}: {nodes} nodes, {tasks} tasks, {bytes} bytes");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
