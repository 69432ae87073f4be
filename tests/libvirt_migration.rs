//! Draining a node through the [`Controller`] on two real QEMU/TCG
//! hypervisors (the libvirtd and its peer that
//! `bash scripts/backends.sh start libvirt` starts; URIs in
//! `LEPTON_LIBVIRT_URI` and `LEPTON_LIBVIRT_PEER_URI`): the running domain
//! moves by live migration where its backend has the other hypervisor as a
//! peer, and is restarted where it has not. A missing server fails the test.

#![cfg(feature = "libvirt")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lepton::adapters::libvirt::LibvirtBackend;
use lepton::backend::{Backend, Handle};
use lepton::policies::by_name;
use lepton::{Controller, ControllerConfig, CoreScheduler, NodeId, Resources, TaskId, TaskSpec};
use virt::connect::Connect;
use virt::sys;

const HOST: NodeId = NodeId(1);
const PEER: NodeId = NodeId(2);
const MARK_NS: &str = "urn:lepton-test:mark";

/// Marks the live domain from outside Lepton: only the same machine, moved
/// live, carries the mark to another hypervisor.
fn mark(connection: &Connect, handle: &Handle) {
    connection
        .lookup_domain_by_name(&handle.id)
        .unwrap()
        .set_metadata(
            sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some("<mark/>"),
            Some("test"),
            Some(MARK_NS),
            sys::VIR_DOMAIN_AFFECT_LIVE,
        )
        .unwrap();
}

fn is_marked(connection: &Connect, handle: &Handle) -> bool {
    connection
        .lookup_domain_by_name(&handle.id)
        .unwrap()
        .metadata(
            sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some(MARK_NS),
            sys::VIR_DOMAIN_AFFECT_LIVE,
        )
        .is_ok()
}

fn domains_of(connection: &Connect, task: TaskId) -> Vec<String> {
    let prefix = format!("lepton-t{}-", task.0);
    connection
        .list_all_domains(0)
        .unwrap()
        .iter()
        .filter_map(|d| d.name().ok())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

#[tokio::test]
async fn libvirt_qemu_drain_migrates_live_to_a_peer_and_restarts_otherwise() {
    let host_uri = support::server_env("LEPTON_LIBVIRT_URI", "libvirt");
    let peer_uri = support::server_env("LEPTON_LIBVIRT_PEER_URI", "libvirt");
    let host = Connect::open(Some(&host_uri)).unwrap();
    let peer = Connect::open(Some(&peer_uri)).unwrap();
    // The host can migrate to the peer; the peer has no peer of its own.
    let backends: Vec<Arc<dyn Backend>> = vec![
        Arc::new(LibvirtBackend::new(&host_uri, HOST).with_peer(
            PEER,
            &peer_uri,
            Some("tcp://127.0.0.1"),
        )),
        Arc::new(LibvirtBackend::new(&peer_uri, PEER)),
    ];
    let config = ControllerConfig {
        tick: Duration::from_millis(100),
        ..ControllerConfig::default()
    };
    let scheduler = CoreScheduler::new(by_name("bestfit").unwrap());
    let mut controller = Controller::new(scheduler, backends, config).await.unwrap();

    // Starts on the host (the peer is cordoned meanwhile).
    let task = TaskId(870_001);
    for connection in [&host, &peer] {
        for name in domains_of(connection, task) {
            let domain = connection.lookup_domain_by_name(&name).unwrap();
            let _ = domain.destroy();
            domain.undefine().unwrap();
        }
    }
    controller.scheduler_mut().cordon(PEER).unwrap();
    controller
        .submit(&TaskSpec::new(task, Resources::new(1_000, 64)))
        .unwrap();
    let started = Instant::now();
    let first = loop {
        let report = controller.step().await;
        if let Some(handle) = report.launched.first() {
            break handle.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never launched"
        );
    };
    assert_eq!(first.node, HOST);
    mark(&host, &first);

    // Drained: moved live to the peer, under its next run.
    controller.scheduler_mut().uncordon(PEER).unwrap();
    let report = controller.drain(HOST).await.unwrap();
    assert_eq!(report.migrated.len(), 1, "{report:?}");
    assert!(
        report.launched.is_empty() && report.evicted.is_empty(),
        "{report:?}"
    );
    let moved = report.migrated[0].clone();
    assert_eq!((moved.node, moved.run.attempt), (PEER, 2));
    assert_eq!(controller.handle(task), Some(&moved));
    assert!(is_marked(&peer, &moved), "the same machine, not a new one");
    assert!(domains_of(&host, task).is_empty());
    // Still running there: the controller sees no ending.
    for _ in 0..5 {
        assert!(controller.step().await.ended.is_empty());
    }

    // The peer cannot migrate: draining it restarts the task on the host.
    controller.scheduler_mut().uncordon(HOST).unwrap();
    let report = controller.drain(PEER).await.unwrap();
    assert!(report.migrated.is_empty(), "{report:?}");
    assert_eq!(report.evicted, std::slice::from_ref(&moved));
    assert_eq!(report.launched.len(), 1, "{report:?}");
    let restarted = report.launched[0].clone();
    assert_eq!((restarted.node, restarted.run.attempt), (HOST, 3));
    assert!(!is_marked(&host, &restarted), "a new machine");
    assert!(domains_of(&peer, task).is_empty());

    controller.shutdown().await;
    assert!(domains_of(&host, task).is_empty());
    assert!(domains_of(&peer, task).is_empty());
}
