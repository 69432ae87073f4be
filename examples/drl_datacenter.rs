//! The article's DRL in the data center: the learned policy (`drl`'s
//! network) trained in the scenario's own fleet (`FleetEnv::datacenter`,
//! Lepton's autoscaling and spare around the network's placements) with a
//! reward of minus the day's cost and a penalty per SLO miss a scheduler
//! could have avoided, then compared on the report seeds 1–5 with what
//! Lepton ships there — placement by learned lifetimes (`lifetime`) —
//! inside the same strategy, and with FGD (the imitation's teacher) and
//! the shipped `drl` model (trained on GPU fills).
//!
//! Training never sees seeds 1–5: episodes run on seeds 1,000 and up,
//! validation on the seeds after them, and the candidates' features are
//! measured against the task shapes of the tuning seed 101's day (shapes
//! only). Imitation of FGD first, then REINFORCE with the greedy rollout
//! on the same seed as the baseline (`lepton::sim::train`); the model kept
//! is the best validated.
//!
//! Run: `cargo run --release --example drl_datacenter [-- --episodes N
//! --temperature T]` (REINFORCE episodes, default 16, each two simulated
//! days; the softmax temperature its actions are sampled at, default 1).

use std::sync::Arc;

use lepton::policies::{Drl, Fgd, LifetimeAware};
use lepton::sim::gym::{EnvConfig, FleetEnv, Reward};
use lepton::sim::scenario::{
    datacenter_strategies, datacenter_tuning, run_datacenter, DatacenterConfig, FleetWorld,
    StrategyReport,
};
use lepton::sim::{train, TrainConfig, SCENARIO_SEEDS};
use lepton::Policy;

/// USD per avoidable miss or late start in the reward.
const SLO_PENALTY_USD: f64 = 20.0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let episodes: usize = flag("--episodes")?.unwrap_or(16);
    let temperature: f32 = flag("--temperature")?.unwrap_or(1.0);
    if !(temperature > 0.0 && temperature <= 100.0) {
        return Err(format!("--temperature {temperature}: above 0, at most 100").into());
    }
    let day = DatacenterConfig {
        seed: 101,
        ..DatacenterConfig::default()
    };
    let mut env_config = EnvConfig::default();
    env_config.reward = Reward::Cost;
    env_config.slo_penalty_usd = SLO_PENALTY_USD;
    let mut env = FleetEnv::datacenter(day, env_config)?;
    let workload = Arc::clone(env.workload());

    let mut config = TrainConfig::default();
    config.imitation_episodes = 4;
    config.episodes = episodes;
    config.seed = 1_000;
    config.validation_episodes = 2;
    config.validate_every = 4;
    config.temperature = temperature;
    let untrained = Drl::untrained(config.seed, Arc::clone(&workload));
    let started = std::time::Instant::now();
    println!("episode  phase      seed   reward (−USD)  greedy baseline  validation");
    let (trained, _) = train(&mut env, untrained, &config, |s| {
        let validation = s.validation.map_or(String::new(), |v| format!("{v:.0}"));
        println!(
            "{:>7}  {:<9} {:>5}  {:>13.0}  {:>15.0}  {validation}",
            s.episode, s.phase, s.seed, s.reward, s.baseline
        );
    })?;
    println!("trained in {:.0} s", started.elapsed().as_secs_f64());

    println!();
    println!("seed  lifetime (Lepton)  drl trained here  fgd  shipped drl   (cost USD; avoidable misses, late starts)");
    let tuning = datacenter_tuning(day.vms);
    for seed in SCENARIO_SEEDS {
        let world = FleetWorld::generate(&DatacenterConfig {
            seed,
            ..DatacenterConfig::default()
        })?;
        let policies: [Box<dyn Policy>; 4] = [
            Box::new(LifetimeAware::new()),
            Box::new(trained.clone()),
            Box::new(Fgd::new(Arc::clone(&workload))),
            Box::new(Drl::trained(Arc::clone(&workload))?),
        ];
        let mut line = format!("{seed:>4}");
        for policy in policies {
            let strategy = datacenter_strategies("lepton", policy, &tuning).1;
            line += &cell(&run_datacenter(&world, strategy)?);
        }
        println!("{line}");
    }
    Ok(())
}

/// The value after `name` on the command line, if given.
fn flag<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    let value = args.get(i + 1).ok_or(format!("{name} needs a value"))?;
    value
        .parse()
        .map(Some)
        .map_err(|e| format!("{name} {value}: {e}"))
}

/// A report as `cost (avoidable misses, late starts)`.
fn cell(report: &StrategyReport) -> String {
    let avoidable = report
        .deadline_misses
        .saturating_sub(report.unavoidable_misses);
    format!(
        "  {:>9.0} ({avoidable}, {})",
        report.cost, report.slo_violations
    )
}
