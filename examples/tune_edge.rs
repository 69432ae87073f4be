//! The edge scenario's one knob, tuned on seeds 101–103 only (seeds 1–5
//! are for reporting): how much of each site's forecast interactive need
//! Lepton keeps free of batch work ([`EDGE_RESERVE`]). The setting kept is
//! the cheapest whose objective violations are no more than class-aware's
//! (the baselines have no knob). A lower factor puts more batch work on
//! the owned sites, saving cloud spend, and risks pushing interactive
//! tasks off their site.
//!
//! Run: `cargo run --release --example tune_edge`

use lepton::sim::scenario::{
    run_edge, run_edge_reserving, EdgeConfig, EdgeStrategy, EdgeWorld, EDGE_RESERVE,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let worlds = [101, 102, 103]
        .into_iter()
        .map(|seed| {
            EdgeWorld::generate(&EdgeConfig {
                seed,
                ..EdgeConfig::default()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (mut cost, mut violations) = (0.0, 0);
    for world in &worlds {
        let report = run_edge(world, EdgeStrategy::ClassAware)?;
        cost += report.cost;
        violations += report.objective_violations;
    }
    println!("seeds 101-103, summed: cloud cost USD, objective violations; * the setting kept ({EDGE_RESERVE})");
    println!("class-aware  {cost:>8.1} {violations:>6}");
    for reserve in [1.0, 1.5, 2.0, 2.25, 2.5, 2.75, 3.0, 4.0] {
        let (mut cost, mut violations) = (0.0, 0);
        for world in &worlds {
            let report = run_edge_reserving(world, EdgeStrategy::Lepton, reserve)?;
            cost += report.cost;
            violations += report.objective_violations;
        }
        let kept = if reserve == EDGE_RESERVE { "*" } else { " " };
        println!("{kept} lepton x{reserve:<4} {cost:>8.1} {violations:>6}");
    }
    Ok(())
}
