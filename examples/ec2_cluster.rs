//! Lepton on AWS EC2 (or moto, its local stand-in): one node per instance
//! type, each task an instance tagged with its run; one task asks for spot.
//! Instances boot no workload here, so the example prints where each task
//! runs and then terminates them.
//!
//! ```sh
//! bash scripts/backends.sh start aws && eval "$(bash scripts/backends.sh env)"
//! cargo run --example ec2_cluster --features aws
//! ```

use std::sync::Arc;
use std::time::Duration;

use lepton::adapters::aws::AwsBackend;
use lepton::policies::by_name;
use lepton::{Backend, Controller, ControllerConfig, CoreScheduler, Resources, TaskId, TaskSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::var("LEPTON_AWS_ENDPOINT").ok();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let backend: Arc<dyn Backend> = Arc::new(AwsBackend::connect(endpoint.as_deref(), &region)?);
    let scheduler = CoreScheduler::new(by_name("bestfit")?);
    let mut controller =
        Controller::new(scheduler, vec![backend], ControllerConfig::default()).await?;

    // (cores in milli, memory MiB, market)
    let tasks = [
        (1_000, 512, "on-demand"),
        (2_000, 4_096, "spot"),
        (4_000, 8_192, "on-demand"),
    ];
    for (i, (cpu, memory, market)) in (1..).zip(tasks) {
        let task = TaskSpec::new(TaskId(i), Resources::new(cpu, memory))
            .with_name(format!("job-{i}"))
            .with_config("market", market);
        controller.submit(&task)?;
    }
    for _ in 0..10 {
        for handle in controller.step().await.launched {
            println!(
                "{} runs on {} as instance {}",
                handle.run, handle.node, handle.id
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    controller.shutdown().await;
    println!("all instances terminated");
    Ok(())
}
