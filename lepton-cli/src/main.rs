//! The `lepton` command line. With no arguments it runs Lepton's main job,
//! `lepton demo`: the article's scenarios against the baselines.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cli;

#[path = "../../examples/quickstart.rs"]
mod quickstart;

use cli::CliError;

/// Lepton: an embeddable scheduling engine for clouds and data centers.
///
/// Flags mean the same on every command: -o/--output table|json,
/// --seed, --policy with --rules FILE and --model FILE, --plot FILE.svg,
/// --node-list/--pod-list FILE (trace CSVs) or --workload FILE (JSON), and
/// --nodes/--tasks as counts. The Alibaba trace is read from
/// $LEPTON_TRACE_DIR when set, else from the copy shipped with Lepton.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    // The commands taking flags are described by their flags' structs.
    /// The seed article's case: 10 VMs and 5 tasks, spread then packed,
    /// with the policy swapped at run time.
    Quickstart,
    // A negative number reaches the value's parser, which names its range.
    #[command(allow_negative_numbers = true)]
    Demo(cli::demo::DemoArgs),
    // A negative number reaches the value's parser, which names its range.
    #[command(allow_negative_numbers = true)]
    Fill(cli::fill::FillArgs),
    // A negative number reaches the value's parser, which names its range.
    #[command(allow_negative_numbers = true)]
    Replay(cli::replay::ReplayArgs),
    // A negative number reaches the value's parser, which names its range.
    #[command(allow_negative_numbers = true)]
    Scale(cli::scale::ScaleArgs),
    // A negative number reaches the value's parser, which names its range.
    #[command(allow_negative_numbers = true)]
    Chaos(cli::chaos::ChaosArgs),
    // A negative number reaches the value's parser, which names its range.
    #[command(allow_negative_numbers = true)]
    Train(cli::train::TrainArgs),
    Serve(cli::service::ServeArgs),
    /// Submits tasks to a running service.
    Submit(cli::service::SubmitArgs),
    /// Lists a running service's tasks.
    Tasks(cli::service::TasksArgs),
    /// Lists a running service's nodes.
    Nodes(cli::service::NodesArgs),
    /// Lists a running service's tenant queues.
    Queues(cli::service::QueuesArgs),
    /// Drains a node of a running service.
    Drain(cli::service::DrainArgs),
    /// Says why a running service's task waits (or where it is).
    Explain(cli::service::ExplainArgs),
    /// Where tasks would go in a running service, submitting nothing.
    Plan(cli::service::PlanArgs),
    /// Lists the placement policies, with what each does.
    Policies,
    /// Prints a shell completion script: `lepton completions bash >
    /// /etc/bash_completion.d/lepton` (or zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// A write past the file size limit (`ulimit -f`) fails with an error the
/// command reports, after removing its temporary file, instead of killing
/// the process with SIGXFSZ.
#[allow(unsafe_code)]
fn report_oversized_writes() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: ignoring a signal installs no handler code, and this runs
    // first in `main`, before any other thread exists.
    let _ = unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) };
}

fn main() -> ExitCode {
    report_oversized_writes();
    let command = match Cli::parse().command {
        Some(command) => command,
        // The main job: `demo` with its defaults.
        None => Cli::parse_from(["lepton", "demo"])
            .command
            .unwrap_or(Command::Quickstart),
    };
    let result = match command {
        Command::Quickstart => quickstart::main().map_err(|e| CliError::Scenario(e.to_string())),
        Command::Demo(args) => cli::demo::run(args),
        Command::Fill(args) => cli::fill::run(args),
        Command::Replay(args) => cli::replay::run(args),
        Command::Scale(args) => cli::scale::run(args),
        Command::Chaos(args) => cli::chaos::run(args),
        Command::Train(args) => cli::train::run(args),
        Command::Serve(args) => cli::service::serve(args),
        Command::Submit(args) => cli::service::submit(args),
        Command::Tasks(args) => cli::service::tasks(args),
        Command::Nodes(args) => cli::service::nodes(args),
        Command::Queues(args) => cli::service::queues(args),
        Command::Drain(args) => cli::service::drain(args),
        Command::Explain(args) => cli::service::explain(args),
        Command::Plan(args) => cli::service::plan(args),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics when a write fails.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "lepton", &mut script);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &script)
                .map_err(CliError::from_stdout)
        }
        Command::Policies => {
            let policies = lepton::policies::policy_descriptions();
            let width = policies
                .iter()
                .map(|(name, _)| name.len())
                .max()
                .unwrap_or(0);
            policies
                .iter()
                .try_for_each(|(name, description)| cli::say!("{name:<width$}  {description}"))
        }
    };
    match result {
        // The reader went away (`lepton … | head`): nothing more to say.
        Ok(()) | Err(CliError::Closed) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", cli::printable(&error.to_string()));
            ExitCode::FAILURE
        }
    }
}
