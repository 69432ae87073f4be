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
use lepton::backend::Backend;
use lepton::policies::by_name;
use lepton::{Controller, ControllerConfig, CoreScheduler, Resources, TaskId, TaskSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::var("LEPTON_AWS_ENDPOINT").ok();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let mut backend =
        AwsBackend::connect(endpoint.as_deref(), &region)?.with_cluster("lepton-example")?;
    if endpoint.is_some() {
        // moto's built-in image; on AWS, give each task an `image` in its config.
        backend = backend.with_default_image("ami-12c6146b");
    }
    let backend: Arc<dyn Backend> = Arc::new(backend);
    let scheduler = CoreScheduler::new(by_name("bestfit")?);
    let mut controller =
        Controller::new(scheduler, vec![backend], ControllerConfig::default()).await?;

    // (cores in milli, memory MiB, instance type, market): a node is a pool
    // of instances of one type, and a task fits a pool when it fits one
    // instance, so the scheduler finds a type big enough by itself; a task
    // may still name its type.
    let tasks = [
        (1_000, 512, Some("t3.micro"), "on-demand"),
        (2_000, 4_096, Some("t3.large"), "spot"),
        (4_000, 8_192, None, "on-demand"),
    ];
    for (i, (cpu, memory, instance_type, market)) in (1..).zip(tasks) {
        let mut task = TaskSpec::new(TaskId(i), Resources::new(cpu, memory))
            .with_name(format!("job-{i}"))
            .with_config("market", market);
        if let Some(instance_type) = instance_type {
            task = task.with_node_selector("aws.instance-type", instance_type);
        }
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
    for id in 1..=3 {
        let task = TaskId(id);
        let scheduler = controller.scheduler();
        println!(
            "{task}: {:?} {:?}",
            scheduler.task_state(task),
            scheduler.failures(task)
        );
    }
    controller.shutdown().await;
    println!("all instances terminated");
    Ok(())
}
