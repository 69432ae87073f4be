//! Lepton at the edge learns each site's interactive demand and puts
//! batch work on owned sites only while the forecast leaves room: with
//! no room kept it fills the sites (cheapest, and interactive tasks pay
//! for it), with unbounded room kept it sends all batch work to the cloud
//! as the class-aware rule does, and the tuned reserve lies between.

#![allow(clippy::unwrap_used)]

use lepton_sim::scenario::{
    run_edge, run_edge_reserving, EdgeConfig, EdgeStrategy, EdgeWorld, EDGE_RESERVE,
};

#[test]
fn the_reserve_trades_cloud_spend_against_interactive_objectives() {
    let world = EdgeWorld::generate(&EdgeConfig {
        seed: 11,
        tasks: 8_000,
        ..EdgeConfig::default()
    })
    .unwrap();
    let lepton = |reserve| run_edge_reserving(&world, EdgeStrategy::Lepton, reserve).unwrap();
    let class_aware = run_edge(&world, EdgeStrategy::ClassAware).unwrap();
    let (none, tuned, all) = (lepton(0.0), lepton(EDGE_RESERVE), lepton(f64::INFINITY));
    let line = |name: &str, r: &lepton_sim::scenario::EdgeReport| {
        format!(
            "{name}: {:.1} USD, {} violations",
            r.cost, r.objective_violations
        )
    };
    let summary = [
        line("class-aware", &class_aware),
        line("no reserve", &none),
        line("tuned", &tuned),
        line("unbounded", &all),
    ]
    .join("; ");
    // Keeping every site for interactive work: batch work all in the
    // cloud, as by class.
    assert!(
        (all.cost - class_aware.cost).abs() < 0.01 * class_aware.cost,
        "{summary}"
    );
    assert_eq!(
        all.objective_violations, class_aware.objective_violations,
        "{summary}"
    );
    // Keeping nothing: the cheapest, and interactive tasks pushed off.
    assert!(none.cost < tuned.cost && tuned.cost < all.cost, "{summary}");
    assert!(
        none.objective_violations > tuned.objective_violations,
        "{summary}"
    );
    for report in [&none, &tuned, &all] {
        assert_eq!(report.lost, 0, "{summary}");
    }
}
