//! Lepton on a libvirt hypervisor: a handful of tasks of different sizes,
//! each run as a domain with its vCPUs and memory. Virtual machines do not
//! end by themselves here (they boot no OS), so the example lets them run a
//! few seconds, prints where each one runs, and shuts down.
//!
//! ```sh
//! bash scripts/backends.sh start libvirt && eval "$(bash scripts/backends.sh env)"
//! cargo run --example libvirt_cluster --features libvirt    # QEMU/TCG
//! LEPTON_LIBVIRT_URI=test:///default cargo run --example libvirt_cluster --features libvirt
//! ```

use std::sync::Arc;
use std::time::Duration;

use lepton::adapters::libvirt::LibvirtBackend;
use lepton::policies::by_name;
use lepton::{
    Backend, Controller, ControllerConfig, CoreScheduler, NodeId, Resources, TaskId, TaskSpec,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::var("LEPTON_LIBVIRT_URI").unwrap_or_else(|_| "test:///default".into());
    let backend: Arc<dyn Backend> = Arc::new(LibvirtBackend::new(uri, NodeId(1)));
    let scheduler = CoreScheduler::new(by_name("bestfit")?);
    let mut controller =
        Controller::new(scheduler, vec![backend], ControllerConfig::default()).await?;

    // (cores in milli, memory MiB)
    for (i, (cpu, memory)) in (1..).zip([(500, 64), (1_000, 128), (250, 64), (250, 96)]) {
        let task =
            TaskSpec::new(TaskId(i), Resources::new(cpu, memory)).with_name(format!("vm-{i}"));
        controller.submit(&task)?;
    }
    for _ in 0..20 {
        for handle in controller.step().await.launched {
            println!(
                "{} runs on {} as domain {}",
                handle.run, handle.node, handle.id
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let running = controller.scheduler().task_counts().running;
    controller.shutdown().await;
    println!("{running} domains were running; all stopped and undefined at shutdown");
    Ok(())
}
