//! `lepton train`: trains the learned policy in the fill experiment.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use lepton::policies::drl::{train, EpisodeStats, TrainConfig};
use lepton::policies::Drl;
use lepton::sim::gym::{EnvConfig, FillEnv, Reward};
use lepton::TaskSpec;

use super::plot::{draw_lines, Axes};
use super::say;
use super::{CliError, Format, InputArgs};

/// Trains the `drl` policy on a trace and writes its model.
#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Episodes of REINFORCE (after the imitation episodes).
    #[arg(long, default_value_t = TrainConfig::default().episodes)]
    episodes: usize,
    /// Episodes imitating FGD first (the warm start); 0 for none.
    #[arg(long, default_value_t = TrainConfig::default().imitation_episodes)]
    imitation: usize,
    /// Episode i runs with seed S + i; the seeds may not reach 42–51 (the
    /// evaluation seeds).
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Adam's learning rate while imitating.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    learning_rate: f64,
    /// Adam's learning rate for REINFORCE.
    #[arg(long, default_value_t = TrainConfig::default().reinforce_learning_rate)]
    reinforce_learning_rate: f64,
    /// Softmax temperature of REINFORCE's sampled actions.
    #[arg(long, default_value_t = TrainConfig::default().temperature)]
    temperature: f32,
    /// The reward: gpus, frag or seed (the article's +1/−1).
    #[arg(long, default_value = "gpus")]
    reward: String,
    /// Held-out episodes the model is validated on (the best validated
    /// model is written); 0 writes the last model.
    #[arg(long, default_value_t = TrainConfig::default().validation_episodes)]
    validation: usize,
    /// Validate every this many REINFORCE episodes.
    #[arg(long, default_value_t = TrainConfig::default().validate_every)]
    validate_every: usize,
    /// Candidates per decision.
    #[arg(long, default_value_t = EnvConfig::default().max_candidates)]
    candidates: usize,
    /// Where to write the model (safetensors).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Also write the training curve as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Output format of the per-episode figures.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub(crate) fn run(args: TrainArgs) -> Result<(), CliError> {
    let reward = Reward::parse(&args.reward)?;
    if let Some(path) = &args.plot {
        super::check_plot_path(path)?;
    }
    let (nodes, pods) = args.input.read_trace()?;
    let tasks: Vec<TaskSpec> = pods.into_iter().map(|p| p.spec).collect();
    let context = args.input.policy_context(&tasks)?;
    let workload = context.target_workload.clone().unwrap_or_default();
    let mut env_config = EnvConfig::default();
    env_config.reward = reward;
    env_config.max_candidates = args.candidates;
    let mut env = FillEnv::new(nodes, tasks, Arc::clone(&workload), env_config)?;
    let mut config = TrainConfig::default();
    config.episodes = args.episodes;
    config.imitation_episodes = args.imitation;
    config.seed = args.seed;
    config.learning_rate = args.learning_rate;
    config.reinforce_learning_rate = args.reinforce_learning_rate;
    config.temperature = args.temperature;
    config.validation_episodes = args.validation;
    config.validate_every = args.validate_every;

    let started = Instant::now();
    let bar = super::progress_bar(config.imitation_episodes + config.episodes, "episodes");
    let untrained = Drl::untrained(config.seed, workload).with_max_candidates(args.candidates);
    let (drl, history) = train(&mut env, untrained, &config, |stats| {
        bar.set_message(format!(
            "{} reward {:.1} loss {:.4} alloc {:.2}%",
            stats.phase, stats.reward, stats.loss, stats.alloc_pct
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    drl.save(&args.out)?;
    if let Some(path) = &args.plot {
        write_curve(path, &history)?;
    }
    let wall_s = started.elapsed().as_secs_f64();
    match args.format {
        Format::Json => {
            let json = serde_json::json!({
                "episodes": history,
                "model": args.out,
                "reward": args.reward,
                "wall_s": wall_s,
            });
            say!("{json}")?;
        }
        Format::Text => {
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
            say!("model written to {} in {wall_s:.1} s", args.out.display())?;
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
    };
    let curves = vec![
        ("GPU allocation %".to_owned(), alloc),
        ("same choice as FGD %".to_owned(), agreement),
    ];
    draw_lines(path, &axes, &curves)
}
