//! The `lepton` command line. With no arguments it runs the quickstart
//! scenario (`examples/quickstart.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli {
    pub(crate) mod fill;
}

#[path = "../examples/quickstart.rs"]
mod quickstart;

/// Lepton: an embeddable scheduling engine for clouds and data centers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The seed article's case: 10 VMs and 5 tasks, spread then packed,
    /// with the policy swapped at run time (the default).
    Quickstart,
    /// The FGD paper's fill experiment on the Alibaba GPU trace.
    Fill(cli::fill::FillArgs),
    /// Lists the placement policies by name.
    Policies,
}

/// Errors the command line reports.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Core(#[from] lepton::Error),
    #[error(transparent)]
    Policy(#[from] lepton::policies::Error),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Scenario(String),
}

/// A file of the Alibaba GPU trace, in `LEPTON_TRACE_DIR` (default
/// `../shared/traces/alibaba-gpu-2023`).
fn trace_path(file: &str) -> PathBuf {
    std::env::var_os("LEPTON_TRACE_DIR")
        .map_or_else(
            || PathBuf::from("../shared/traces/alibaba-gpu-2023"),
            PathBuf::from,
        )
        .join(file)
}

/// Parses `42-51`, `42,45` or `42`.
fn parse_seeds(text: &str) -> Result<Vec<u64>, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "bad --seeds {text:?}: expected e.g. 42-51, 42,45 or 42"
        ))
    };
    let mut seeds = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((low, high)) => {
                let low: u64 = low.trim().parse().map_err(|_| bad())?;
                let high: u64 = high.trim().parse().map_err(|_| bad())?;
                if low > high {
                    return Err(bad());
                }
                seeds.extend(low..=high);
            }
            None => seeds.push(part.trim().parse().map_err(|_| bad())?),
        }
    }
    Ok(seeds)
}

fn main() -> ExitCode {
    let result = match Cli::parse().command.unwrap_or(Command::Quickstart) {
        Command::Quickstart => quickstart::main().map_err(|e| CliError::Scenario(e.to_string())),
        Command::Fill(args) => cli::fill::run(args),
        Command::Policies => {
            for name in lepton::policies::POLICY_NAMES {
                println!("{name}");
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
