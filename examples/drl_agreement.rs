//! How often the learned policy (`drl`, the built-in model or `--model
//! FILE`) chooses what FGD would, on the states it reaches itself: the fill
//! experiment on the Alibaba trace (default pods, seeds 42–51), each
//! decision's network choice compared with FGD's choice among the same
//! candidates (which is FGD's choice in the whole cluster: the candidates
//! are FGD's best nodes).
//!
//! Run: `cargo run --release --example drl_agreement [-- --model FILE]`.

use std::sync::Arc;

use lepton::fragmentation::TargetWorkload;
use lepton::policies::Drl;
use lepton::policies::FEATURES;
use lepton::sim::fgd_choice;
use lepton::sim::gym::{EnvConfig, FillEnv};
use lepton::sim::{read_openb_nodes, read_openb_pods, trace_dir};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = match args.iter().position(|a| a == "--model") {
        Some(i) => Some(args.get(i + 1).ok_or("--model needs a file")?.clone()),
        None => None,
    };
    let dir = trace_dir()?;
    let nodes = read_openb_nodes(&dir.join("openb_node_list_gpu_node.csv"))?;
    let tasks: Vec<_> = read_openb_pods(&dir.join("openb_pod_list_default.csv"))?
        .into_iter()
        .map(|pod| pod.spec)
        .collect();
    let workload = Arc::new(TargetWorkload::from_tasks(&tasks, 0.95));
    let drl = match &model {
        Some(path) => Drl::load(path.as_ref(), Arc::clone(&workload))?,
        None => Drl::trained(Arc::clone(&workload))?,
    };
    let mut env = FillEnv::new(nodes, tasks, workload, EnvConfig::default())?;
    let (mut agreed, mut decisions) = (0usize, 0usize);
    println!("seed  decisions  same as FGD  alloc %");
    for seed in 42..=51 {
        let (mut seed_agreed, mut seed_decisions) = (0usize, 0usize);
        let mut observation = env.reset(seed)?;
        while let Some(current) = observation {
            let rows: Vec<[f32; FEATURES]> =
                current.candidates.iter().map(|c| c.features).collect();
            let scores = drl.scores(&rows);
            // The first of the highest scores, as the policy chooses.
            let mut choice = 0;
            for (i, &score) in scores.iter().enumerate() {
                if score > scores[choice] {
                    choice = i;
                }
            }
            seed_agreed += usize::from(Some(choice) == fgd_choice(&current));
            seed_decisions += 1;
            observation = env.step(choice)?.observation;
        }
        let summary = env.summary()?;
        println!(
            "{seed:>4}  {seed_decisions:>9}  {:>10.2}%  {:>7.2}",
            seed_agreed as f64 * 100.0 / seed_decisions.max(1) as f64,
            summary.alloc_pct
        );
        agreed += seed_agreed;
        decisions += seed_decisions;
    }
    println!(
        "all   {decisions:>9}  {:>10.2}%",
        agreed as f64 * 100.0 / decisions.max(1) as f64
    );
    Ok(())
}
