//! `lepton train`: trains the learned policy in the fill experiment.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use lepton::policies::Drl;
use lepton::sim::gym::{EnvConfig, FillEnv, Reward};
use lepton::sim::{train, EpisodeStats, TrainConfig};
use lepton::TaskSpec;

use super::plot::{draw_lines, Axes};
use super::say;
use super::{decimal, target_workload, whole, wrote, CliError, Format, TraceArgs};

/// Trains the learned policy (`drl`) in the fill experiment.
///
/// Imitation of FGD first, then REINFORCE, validated on held-out seeds;
/// writes the best validated model (docs/RESULTS.md has the recipe).
#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    trace: TraceArgs,
    /// Episodes of REINFORCE (after the imitation episodes), 0 to 100,000.
    #[arg(long, value_parser = whole::<0, 100_000>, default_value_t = TrainConfig::default().episodes as u64)]
    episodes: u64,
    /// Episodes imitating FGD first (the warm start), 0 (none) to 100,000.
    #[arg(long, value_parser = whole::<0, 100_000>, default_value_t = TrainConfig::default().imitation_episodes as u64)]
    imitation: u64,
    /// Episode i runs with seed S + i; the seeds may not reach 42-51 (the
    /// evaluation seeds).
    #[arg(long, alias = "seeds", value_parser = whole::<0, { u64::MAX }>, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Adam's learning rate while imitating, a decimal above 0, at most 1.
    #[arg(long, value_parser = learning_rate, default_value_t = TrainConfig::default().learning_rate)]
    learning_rate: f64,
    /// Adam's learning rate for REINFORCE, a decimal above 0, at most 1.
    #[arg(long, value_parser = learning_rate, default_value_t = TrainConfig::default().reinforce_learning_rate)]
    reinforce_learning_rate: f64,
    /// Softmax temperature of REINFORCE's sampled actions, a decimal above
    /// 0, at most 100.
    #[arg(long, value_parser = temperature, default_value_t = f64::from(TrainConfig::default().temperature))]
    temperature: f64,
    /// The reward: gpus, frag or seed (the article's +1/−1).
    #[arg(long, default_value = "gpus")]
    reward: String,
    /// Held-out episodes the model is validated on (the best validated
    /// model is written), 0 (write the last model) to 1,000.
    #[arg(long, value_parser = whole::<0, 1_000>, default_value_t = TrainConfig::default().validation_episodes as u64)]
    validation: u64,
    /// Validate every this many REINFORCE episodes.
    #[arg(long, value_parser = whole::<0, 100_000>, default_value_t = TrainConfig::default().validate_every as u64)]
    validate_every: u64,
    /// Candidates per decision, 1 to 1,024.
    #[arg(long, value_parser = whole::<0, 1_024>, default_value_t = EnvConfig::default().max_candidates as u64)]
    candidates: u64,
    /// Where to write the model (safetensors); `--policy drl --model FILE`
    /// reads it. `--out` is its older name.
    #[arg(long, alias = "out", value_name = "FILE")]
    model: PathBuf,
    /// Also write the training curve to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// What stdout gets: `table` for people or `json` for programs
    /// (`--format` and `text` are the older spellings).
    #[arg(short = 'o', long = "output", alias = "format", value_enum, value_name = "FORMAT", default_value_t = Format::Table)]
    output: Format,
}

/// A learning rate: above 0, at most 1.
fn learning_rate(text: &str) -> Result<f64, String> {
    decimal_within(text, 1.0)
}

/// A softmax temperature: above 0, at most 100.
fn temperature(text: &str) -> Result<f64, String> {
    decimal_within(text, 100.0)
}

/// A decimal above 0 and at most `max` (NaN and infinities refused).
fn decimal_within(text: &str, max: f64) -> Result<f64, String> {
    let value = decimal(text)?;
    if value > 0.0 && value <= max {
        Ok(value)
    } else {
        Err(format!("{text} is out of range: above 0, at most {max}"))
    }
}

pub(crate) fn run(args: TrainArgs) -> Result<(), CliError> {
    let reward = Reward::parse(&args.reward)?;
    if let Some(path) = &args.plot {
        super::check_plot_path(path)?;
    }
    // Before the training, not after it.
    super::check_parent_dir(&args.model, "--model")?;
    let (node_list, pod_list) = args.trace.paths()?;
    let mut outputs = vec![("--model", args.model.as_path())];
    outputs.extend(args.plot.as_deref().map(|p| ("--plot", p)));
    super::check_outputs(
        &outputs,
        &[("--node-list", &node_list), ("--pod-list", &pod_list)],
    )?;
    let (nodes, pods) = args.trace.read()?;
    let tasks: Vec<TaskSpec> = pods.into_iter().map(|p| p.spec).collect();
    let workload = target_workload(&tasks);
    let count = |value: u64| value as usize;
    let mut env_config = EnvConfig::default();
    env_config.reward = reward;
    env_config.max_candidates = count(args.candidates);
    let mut env = FillEnv::new(nodes, tasks, Arc::clone(&workload), env_config)?;
    let mut config = TrainConfig::default();
    config.episodes = count(args.episodes);
    config.imitation_episodes = count(args.imitation);
    config.seed = args.seed;
    config.learning_rate = args.learning_rate;
    config.reinforce_learning_rate = args.reinforce_learning_rate;
    config.temperature = args.temperature as f32;
    config.validation_episodes = count(args.validation);
    config.validate_every = count(args.validate_every);

    let started = Instant::now();
    let bar = super::progress_bar(config.imitation_episodes + config.episodes, "episodes");
    let untrained =
        Drl::untrained(config.seed, workload).with_max_candidates(count(args.candidates));
    let (drl, history) = train(&mut env, untrained, &config, |stats| {
        bar.set_message(format!(
            "{} reward {:.1} loss {:.4} alloc {:.2}%",
            stats.phase, stats.reward, stats.loss, stats.alloc_pct
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    drl.save(&args.model)?;
    wrote(&args.model, "the trained model");
    if let Some(path) = &args.plot {
        write_curve(path, &history)?;
        wrote(path, "the training curve");
    }
    let wall_s = started.elapsed().as_secs_f64();
    match args.output {
        Format::Json => {
            let json = serde_json::json!({
                "episodes": history,
                "model": args.model,
                "reward": args.reward,
                "wall_s": wall_s,
            });
            say!("{json}")?;
        }
        Format::Table => {
            say!(
                "{:>7} {:<10} {:>6} {:>10} {:>10} {:>9} {:>8} {:>8} {:>10}",
                "episode",
                "phase",
                "seed",
                "reward",
                "baseline",
                "loss",
                "alloc%",
                "fgd%",
                "validation"
            )?;
            for s in &history {
                say!(
                    "{:>7} {:<10} {:>6} {:>10.2} {:>10.2} {:>9.4} {:>8.2} {:>8.1} {:>10}",
                    s.episode,
                    s.phase,
                    s.seed,
                    s.reward,
                    s.baseline,
                    s.loss,
                    s.alloc_pct,
                    s.fgd_agreement_pct,
                    s.validation.map_or(String::new(), |v| format!("{v:.2}"))
                )?;
            }
            say!("trained in {wall_s:.1} s")?;
        }
    }
    Ok(())
}

/// Episode reward (as % of the first) and allocation % per episode.
fn write_curve(path: &std::path::Path, history: &[EpisodeStats]) -> Result<(), CliError> {
    let alloc: Vec<(f64, f64)> = history
        .iter()
        .map(|s| (s.episode as f64, s.alloc_pct))
        .collect();
    let agreement: Vec<(f64, f64)> = history
        .iter()
        .map(|s| (s.episode as f64, s.fgd_agreement_pct))
        .collect();
    let axes = Axes {
        caption: "Training: GPU allocation at 100% arrived, and agreement with FGD",
        x_desc: "episode",
        y_desc: "%",
        x: 0.0..(history.len().max(2) - 1) as f64,
        y: 0.0..100.0,
        whole_x: true,
    };
    let curves = vec![
        ("GPU allocation %".to_owned(), alloc),
        ("same choice as FGD %".to_owned(), agreement),
    ];
    draw_lines(path, &axes, &curves)
}
