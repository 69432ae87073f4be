//! The seed article's case, in Lepton: 10 VMs and 5 compute tasks, scheduled
//! once with a spreading policy and once with a packing one. The policy is
//! swapped at run time through `Box<dyn Policy>`, between two rounds of the
//! same scheduler.
//!
//! Run it with `cargo run --release` (the CLI's default job) or
//! `cargo run --example quickstart`.

use std::error::Error;

use lepton::article::article_utility;
use lepton::model::NodeKind;
use lepton::policies::{BestFit, Spread};
use lepton::{CoreScheduler, NodeId, NodeSpec, Policy, Resources, Scheduler, TaskId, TaskSpec};

/// Ten identical VMs: 4 cores and 8 GiB each.
const VMS: u64 = 10;
/// The five compute tasks: (cpu_milli, memory_mib).
const TASKS: [(u64, u64); 5] = [
    (1500, 2048),
    (1000, 1024),
    (2000, 4096),
    (500, 512),
    (1000, 2048),
];

/// Runs the scenario and prints what happened.
pub(crate) fn main() -> Result<(), Box<dyn Error>> {
    let mut scheduler = CoreScheduler::new(Box::new(Spread));
    for id in 1..=VMS {
        let vm = NodeSpec::new(NodeId(id), Resources::new(4_000, 8_192))
            .with_kind(NodeKind::Vm)
            .with_name(format!("vm-{id}"));
        scheduler.add_node(&vm)?;
    }

    println!("10 VMs (4 cores, 8 GiB each), 5 compute tasks\n");
    let spread = run_round(&mut scheduler, 0)?;

    // Same scheduler, same cluster: only the policy changes.
    let previous: Box<dyn Policy> = scheduler.set_policy(Box::new(BestFit));
    println!(
        "swapped policy: {} -> {}\n",
        previous.name(),
        scheduler.policy_name()
    );
    let packed = run_round(&mut scheduler, 100)?;

    println!("seed utility U(S,T,P) = 1/2[1/|S| + 1/|T|] - 1/2[(1/a)(|S|-1) + (1/b)(|T|-1)]");
    println!(
        "  article's spreading case, |S| = 10, |T| = 5, a = 10, b = 5: U = {:+.2} (the article prints +0.2)",
        article_utility(10, 5, 10.0, 5.0)?
    );
    println!(
        "  article's packing case,   |S| = 5,  |T| = 5, a = 5,  b = 5: U = {:+.2} (the article prints -0.2)",
        article_utility(5, 5, 5.0, 5.0)?
    );
    println!(
        "  this run: spreading used {spread} VMs, packing used {packed} VMs ({} fewer)",
        spread - packed
    );
    Ok(())
}

/// Submits the five tasks (ids from `first_id + 1`), schedules them once,
/// prints the placements and the cluster's figures, then completes them.
/// Returns how many VMs were in use.
fn run_round(scheduler: &mut CoreScheduler, first_id: u64) -> Result<usize, Box<dyn Error>> {
    for (offset, &(cpu_milli, memory_mib)) in (1..).zip(TASKS.iter()) {
        let task = TaskSpec::new(
            TaskId(first_id + offset),
            Resources::new(cpu_milli, memory_mib),
        );
        scheduler.submit(&task)?;
    }
    println!("policy {}:", scheduler.policy_name());
    let assignments = scheduler.schedule();
    for assignment in &assignments {
        let request = scheduler
            .task(assignment.task)
            .map(|task| task.request.to_string())
            .unwrap_or_default();
        println!(
            "  {} ({request}) -> vm-{}",
            assignment.task, assignment.node.0
        );
    }
    let report = scheduler.report();
    println!(
        "  VMs in use: {} of {}; CPU utilization {:.1}%, memory {:.1}%\n",
        report.nodes_in_use,
        VMS,
        report.utilization.cpu * 100.0,
        report.utilization.memory * 100.0
    );
    for assignment in assignments {
        scheduler.complete(assignment.run())?;
    }
    Ok(report.nodes_in_use)
}
