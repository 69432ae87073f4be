//! Lepton on a Docker Engine API host (Docker or Podman): a handful of
//! tasks of different sizes, placed, run as containers with CPU and memory
//! limits, watched to the end.
//!
//! ```sh
//! bash scripts/backends.sh start docker && eval "$(bash scripts/backends.sh env)"
//! cargo run --example docker_cluster --features docker
//! ```

use std::sync::Arc;
use std::time::Duration;

use lepton::adapters::docker::DockerBackend;
use lepton::backend::Backend;
use lepton::policies::by_name;
use lepton::{Controller, ControllerConfig, CoreScheduler, Resources, TaskId, TaskSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let socket =
        std::env::var("LEPTON_DOCKER_SOCKET").unwrap_or_else(|_| "/var/run/docker.sock".to_owned());
    let image = std::env::var("LEPTON_IMAGE").unwrap_or_else(|_| "localhost/busybox:latest".into());
    let backend: Arc<dyn Backend> = Arc::new(DockerBackend::connect_unix(&socket)?);
    let scheduler = CoreScheduler::new(by_name("bestfit")?);
    let mut controller =
        Controller::new(scheduler, vec![backend], ControllerConfig::default()).await?;

    // (cores in milli, memory MiB, command)
    let tasks = [
        (250, 16, "sleep 1"),
        (500, 32, "sleep 2"),
        (1_000, 64, "sleep 3"),
        (100, 16, "false"), // fails: retried, then given up
        (750, 48, "echo hello"),
    ];
    for (i, (cpu, memory, command)) in (1..).zip(tasks) {
        let task = TaskSpec::new(TaskId(i), Resources::new(cpu, memory))
            .with_name(format!("demo-{i}"))
            .with_config("image", &image)
            .with_config("command", command);
        controller.submit(&task)?;
    }
    for (handle, status) in controller.run_until_idle(Duration::from_secs(120)).await? {
        println!(
            "{} ran on {} as container {:.12}: {status:?}",
            handle.run, handle.node, handle.id
        );
    }
    let report = lepton::Scheduler::report(controller.scheduler());
    println!(
        "{} completed, {} failed (after retries)",
        report.tasks.completed, report.tasks.failed
    );
    Ok(())
}
