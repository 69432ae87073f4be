//! Lepton on libvirt hypervisors: a handful of tasks of different sizes,
//! each run as a domain with its vCPUs and memory. Virtual machines do not
//! end by themselves here (they boot no OS), so the example lets them run a
//! few seconds and prints where each one runs. With a second hypervisor
//! (`LEPTON_LIBVIRT_PEER_URI`, which `scripts/backends.sh` starts), it then
//! drains the first: its domains move to the peer by live migration. Then
//! it shuts down.
//!
//! ```sh
//! bash scripts/backends.sh start libvirt && eval "$(bash scripts/backends.sh env)"
//! cargo run --example libvirt_cluster --features libvirt    # QEMU/TCG, two hosts
//! LEPTON_LIBVIRT_URI=test:///default LEPTON_LIBVIRT_PEER_URI= \
//!     cargo run --example libvirt_cluster --features libvirt
//! ```

use std::sync::Arc;
use std::time::Duration;

use lepton::adapters::libvirt::LibvirtBackend;
use lepton::backend::Backend;
use lepton::policies::by_name;
use lepton::{Controller, ControllerConfig, CoreScheduler, NodeId, Resources, TaskId, TaskSpec};

const HOST: NodeId = NodeId(1);
const PEER: NodeId = NodeId(2);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::var("LEPTON_LIBVIRT_URI").unwrap_or_else(|_| "test:///default".into());
    let peer_uri = std::env::var("LEPTON_LIBVIRT_PEER_URI")
        .ok()
        .filter(|u| !u.is_empty());
    let mut host = LibvirtBackend::new(uri, HOST);
    let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
    if let Some(peer_uri) = &peer_uri {
        // Both hypervisors on this machine: the migration stream stays on loopback.
        host = host.with_peer(PEER, peer_uri, Some("tcp://127.0.0.1"));
        backends.push(Arc::new(LibvirtBackend::new(peer_uri.clone(), PEER)));
    }
    backends.insert(0, Arc::new(host));
    let scheduler = CoreScheduler::new(by_name("bestfit")?);
    let mut controller = Controller::new(scheduler, backends, ControllerConfig::default()).await?;
    if peer_uri.is_some() {
        // Everything starts on the first host, to be drained below.
        controller.scheduler_mut().cordon(PEER)?;
    }

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
    if peer_uri.is_some() {
        controller.scheduler_mut().uncordon(PEER)?;
        let started = std::time::Instant::now();
        let drained = controller.drain(HOST).await?;
        println!("drained n-1 in {:.1} s", started.elapsed().as_secs_f64());
        for handle in &drained.migrated {
            println!(
                "{} migrated live to {} as domain {}",
                handle.run, handle.node, handle.id
            );
        }
        for handle in &drained.launched {
            println!(
                "{} restarted on {} as domain {}",
                handle.run, handle.node, handle.id
            );
        }
    }
    let running = controller.scheduler().task_counts().running;
    controller.shutdown().await;
    println!("{running} domains were running; all stopped and undefined at shutdown");
    Ok(())
}
