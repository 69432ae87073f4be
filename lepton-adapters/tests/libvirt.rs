//! The libvirt backend against real hypervisors: libvirt's built-in test
//! driver (`test:///default`, in memory, no daemon) and QEMU/TCG through
//! the libvirtd that `scripts/backends.sh` starts (tests named
//! `libvirt_qemu_…`, slower: a domain takes seconds to start).
//!
//! Before running:
//! `bash scripts/backends.sh start libvirt && eval "$(bash scripts/backends.sh env)"`.
//! Without the environment the tests fail, they never skip.
#![cfg(feature = "libvirt")]

mod support;

use std::time::{Duration, Instant};

use lepton_adapters::libvirt::{domain_name, LibvirtBackend};
use lepton_core::backend::{Backend, BackendError, Handle, Launch, RunStatus};
use lepton_core::{NodeId, Resources, Run, TaskId, TaskSpec};
use virt::connect::Connect;

const NODE: NodeId = NodeId(41);

/// The in-memory test hypervisor, and a backend on that same connection.
///
/// Its state lives in this process: connections open at the same time share
/// it (it is reset when the last one closes). Tests run in parallel, so each
/// uses task ids of its own and looks only at its own runs.
fn test_driver() -> (Connect, LibvirtBackend) {
    let uri = support::server_env("LEPTON_LIBVIRT_TEST_URI", "libvirt");
    let connection = Connect::open(Some(&uri)).expect("open the test driver");
    let backend = LibvirtBackend::with_connection(connection.clone(), NODE);
    (connection, backend)
}

fn qemu_uri() -> String {
    support::server_env("LEPTON_LIBVIRT_URI", "libvirt")
}

/// The second QEMU libvirtd, another host to libvirt (live migration).
fn peer_uri() -> String {
    support::server_env("LEPTON_LIBVIRT_PEER_URI", "libvirt")
}

const PEER: NodeId = NodeId(42);

/// A backend on the QEMU libvirtd, and a connection of the test's own to act
/// from outside Lepton.
fn qemu() -> (Connect, LibvirtBackend) {
    let uri = qemu_uri();
    let connection = Connect::open(Some(&uri)).unwrap_or_else(|e| {
        panic!("cannot reach libvirtd at {uri} ({e}): run `bash scripts/backends.sh start libvirt`")
    });
    (connection, LibvirtBackend::new(uri, NODE))
}

fn task(id: u64) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(500, 64)).with_name(format!("task {id}"))
}

fn launch_of(task: TaskSpec, attempt: u32) -> Launch {
    Launch {
        run: Run {
            task: task.id,
            attempt,
        },
        node: NODE,
        task,
        gpus: Default::default(),
    }
}

/// The runs of `tasks` among `listed`.
fn only(listed: Vec<Handle>, tasks: &[u64]) -> Vec<Handle> {
    listed
        .into_iter()
        .filter(|h| tasks.contains(&h.run.task.0))
        .collect()
}

fn handle_of(task: u64, attempt: u32) -> Handle {
    let run = Run {
        task: TaskId(task),
        attempt,
    };
    Handle {
        run,
        node: NODE,
        id: domain_name(run),
    }
}

/// Domains on `connection` with this exact name.
fn domains_named(connection: &Connect, name: &str) -> usize {
    connection
        .list_all_domains(0)
        .expect("list domains")
        .iter()
        .filter(|d| d.name().expect("a name") == name)
        .count()
}

fn defined_xml(connection: &Connect, name: &str) -> String {
    connection
        .lookup_domain_by_name(name)
        .expect("the domain")
        .xml_desc(0)
        .expect("its XML")
}

fn destroy_outside(connection: &Connect, handle: &Handle) {
    connection
        .lookup_domain_by_name(&handle.id)
        .expect("the domain")
        .destroy()
        .expect("destroy from outside");
}

/// Stops whatever an earlier, failed run of a QEMU test left under `tasks`.
async fn clean(backend: &LibvirtBackend, tasks: &[u64]) {
    for &task in tasks {
        for attempt in 1..=3 {
            backend
                .stop(&handle_of(task, attempt))
                .await
                .expect("clean up");
        }
    }
}

async fn wait_for(backend: &LibvirtBackend, handle: &Handle, want: &RunStatus) {
    let started = Instant::now();
    loop {
        let status = backend.status(handle).await.expect("status");
        if &status == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{handle}: still {status:?}, waiting for {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------ scenarios
// Each runs against both hypervisors.

async fn inventory_has_capacity(backend: &LibvirtBackend, hypervisor: &str) {
    let nodes = backend.inventory().await.expect("inventory");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let node = &nodes[0];
    node.validate().expect("a valid node");
    assert_eq!(node.id, NODE);
    assert!(node.capacity.cpu_milli >= 1000, "{node:?}");
    assert_eq!(node.capacity.cpu_milli % 1000, 0, "{node:?}");
    assert!(node.capacity.memory_mib >= 64, "{node:?}");
    assert_eq!(node.labels["lepton.backend"], "libvirt");
    assert_eq!(node.labels["libvirt.hypervisor"], hypervisor);
    assert!(node.labels.contains_key("libvirt.arch"), "{node:?}");
}

async fn launch_running_stop_gone(backend: &LibvirtBackend, connection: &Connect, id: u64) {
    let launch = launch_of(task(id), 1);
    let handle = backend.launch(&launch).await.expect("launch");
    assert_eq!(handle, handle_of(id, 1));
    wait_for(backend, &handle, &RunStatus::Running).await;
    let listed = backend.running().await.expect("running");
    assert!(listed.contains(&handle), "{listed:?}");
    assert!(
        listed.iter().all(|h| h.id.starts_with("lepton-t")),
        "{listed:?}"
    );

    let usage = backend.usage(&handle).await.expect("usage");
    assert!(usage.cpu_milli.is_some(), "{usage:?}");
    assert!(usage.memory_mib.is_some_and(|m| m > 0), "{usage:?}");
    assert_eq!(usage.network_rx_bytes, None);

    backend.stop(&handle).await.expect("stop");
    assert_eq!(
        backend.status(&handle).await.expect("status"),
        RunStatus::Gone
    );
    assert_eq!(domains_named(connection, &handle.id), 0, "not undefined");
    let listed = backend.running().await.expect("running");
    assert!(!listed.contains(&handle), "{listed:?}");
    backend.stop(&handle).await.expect("a second stop");
    let error = backend
        .usage(&handle)
        .await
        .expect_err("usage of a gone run");
    assert!(matches!(error, BackendError::NotFound { .. }), "{error:?}");
}

async fn launch_twice_one_domain(backend: &LibvirtBackend, connection: &Connect, id: u64) {
    let launch = launch_of(task(id), 1);
    let first = backend.launch(&launch).await.expect("launch");
    let second = backend.launch(&launch).await.expect("launch again");
    assert_eq!(first, second);
    assert_eq!(domains_named(connection, &first.id), 1);
    let listed = backend.running().await.expect("running");
    assert_eq!(
        listed.iter().filter(|h| h.run == launch.run).count(),
        1,
        "{listed:?}"
    );
    backend.stop(&first).await.expect("stop");
}

async fn destroyed_outside_reads_failed(backend: &LibvirtBackend, connection: &Connect, id: u64) {
    let handle = backend
        .launch(&launch_of(task(id), 1))
        .await
        .expect("launch");
    wait_for(backend, &handle, &RunStatus::Running).await;
    destroy_outside(connection, &handle);
    let status = backend.status(&handle).await.expect("status");
    assert_eq!(
        status,
        RunStatus::Failed {
            reason: "shut off: destroyed".to_owned()
        }
    );
    // Still listed, so that the control loop sees it failed and cleans up.
    assert!(backend.running().await.expect("running").contains(&handle));
    let usage = backend.usage(&handle).await.expect("usage");
    assert_eq!(usage.cpu_milli, Some(0));
    backend.stop(&handle).await.expect("stop");
    assert_eq!(
        backend.status(&handle).await.expect("status"),
        RunStatus::Gone
    );
    assert_eq!(domains_named(connection, &handle.id), 0);
}

async fn injection_is_escaped(backend: &LibvirtBackend, connection: &Connect, id: u64) {
    let evil = r#"</name><evil/>"'&<description>"#;
    let launch = launch_of(task(id).with_name(evil), 1);
    let handle = backend.launch(&launch).await.expect("launch");
    let xml = defined_xml(connection, &handle.id);
    assert!(!xml.contains("<evil"), "{xml}");
    assert!(
        xml.contains(&format!("<name>{}</name>", handle.id)),
        "{xml}"
    );
    assert!(xml.contains("&lt;/name&gt;&lt;evil/&gt;"), "{xml}");
    assert!(xml.contains("https://lepton.dev/run"), "{xml}");
    backend.stop(&handle).await.expect("stop");

    // Control characters are refused before anything is defined.
    let launch = launch_of(task(id).with_name("line\nbreak"), 2);
    let error = backend
        .launch(&launch)
        .await
        .expect_err("a control character");
    assert!(
        matches!(
            error,
            BackendError::Invalid {
                what: "task name",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(domains_named(connection, &domain_name(launch.run)), 0);
}

// ------------------------------------------------------------ test driver

#[tokio::test]
async fn libvirt_inventory_has_capacity() {
    let (_connection, backend) = test_driver();
    inventory_has_capacity(&backend, "test").await;
}

#[tokio::test]
async fn libvirt_launch_running_stop_gone() {
    let (connection, backend) = test_driver();
    launch_running_stop_gone(&backend, &connection, 1).await;
    // The test driver's own domain is not Lepton's.
    assert_eq!(domains_named(&connection, "test"), 1);
    assert_eq!(only(backend.running().await.expect("running"), &[1]), []);
}

#[tokio::test]
async fn libvirt_launch_twice_one_domain() {
    let (connection, backend) = test_driver();
    launch_twice_one_domain(&backend, &connection, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libvirt_concurrent_launches_of_one_run_make_one_domain() {
    let (connection, backend) = test_driver();
    let backend = std::sync::Arc::new(backend);
    let launch = launch_of(task(3), 1);
    let tries: Vec<_> = (0..6)
        .map(|_| {
            let backend = std::sync::Arc::clone(&backend);
            let launch = launch.clone();
            tokio::spawn(async move { backend.launch(&launch).await })
        })
        .collect();
    for attempt in tries {
        let handle = attempt.await.expect("joined").expect("launch");
        assert_eq!(handle, handle_of(3, 1));
    }
    assert_eq!(domains_named(&connection, "lepton-t3-1"), 1);
    assert_eq!(
        backend.status(&handle_of(3, 1)).await.expect("status"),
        RunStatus::Running
    );
}

#[tokio::test]
async fn libvirt_destroyed_outside_reads_failed() {
    let (connection, backend) = test_driver();
    destroyed_outside_reads_failed(&backend, &connection, 4).await;
}

#[tokio::test]
async fn libvirt_launch_restarts_a_defined_domain() {
    let (connection, backend) = test_driver();
    let launch = launch_of(task(5), 1);
    let handle = backend.launch(&launch).await.expect("launch");
    destroy_outside(&connection, &handle);
    assert!(matches!(
        backend.status(&handle).await.expect("status"),
        RunStatus::Failed { .. }
    ));
    assert_eq!(backend.launch(&launch).await.expect("launch again"), handle);
    assert_eq!(
        backend.status(&handle).await.expect("status"),
        RunStatus::Running
    );
    assert_eq!(domains_named(&connection, &handle.id), 1);
}

#[tokio::test]
async fn libvirt_guest_shutdown_reads_exited() {
    let (connection, backend) = test_driver();
    let handle = backend
        .launch(&launch_of(task(6), 1))
        .await
        .expect("launch");
    connection
        .lookup_domain_by_name(&handle.id)
        .expect("the domain")
        .shutdown()
        .expect("shut down");
    assert_eq!(
        backend.status(&handle).await.expect("status"),
        RunStatus::Exited { code: 0 }
    );
}

#[tokio::test]
async fn libvirt_xml_injection_is_escaped() {
    let (connection, backend) = test_driver();
    injection_is_escaped(&backend, &connection, 7).await;
}

#[tokio::test]
async fn libvirt_domain_follows_the_request() {
    let (connection, backend) = test_driver();
    let spec = TaskSpec::new(TaskId(8), Resources::new(2_500, 300));
    let handle = backend.launch(&launch_of(spec, 3)).await.expect("launch");
    let domain = connection
        .lookup_domain_by_name("lepton-t8-3")
        .expect("domain");
    let info = domain.info().expect("info");
    assert_eq!(info.nr_virt_cpu, 3);
    assert_eq!(info.max_mem, 300 * 1024);
    let xml = defined_xml(&connection, &handle.id);
    assert!(xml.contains("<title>Lepton run t-8#3</title>"), "{xml}");
    assert!(!xml.contains("<description>"), "{xml}");
}

#[tokio::test]
async fn libvirt_a_restarted_backend_finds_its_runs() {
    let (connection, backend) = test_driver();
    let mut launched = Vec::new();
    for (id, attempt) in [(11, 1), (10, 2)] {
        launched.push(
            backend
                .launch(&launch_of(task(id), attempt))
                .await
                .expect("launch"),
        );
    }
    launched.sort_by_key(|h| h.run);
    drop(backend);
    // A restarted Lepton: a new backend, the hypervisor's state kept.
    let again = LibvirtBackend::with_connection(connection.clone(), NODE);
    assert_eq!(
        only(again.running().await.expect("running"), &[10, 11]),
        launched
    );
    for handle in &launched {
        assert_eq!(
            again.status(handle).await.expect("status"),
            RunStatus::Running
        );
        let tag = connection
            .lookup_domain_by_name(&handle.id)
            .expect("domain")
            .metadata(2, Some("https://lepton.dev/run"), 0)
            .expect("the run tag");
        assert!(
            tag.contains(&format!("task=\"{}\"", handle.run.task.0)),
            "{tag}"
        );
        assert!(tag.contains(&format!("node=\"{}\"", NODE.0)), "{tag}");
    }
}

#[tokio::test]
async fn libvirt_foreign_and_mislabelled_domains_are_not_listed() {
    let (connection, backend) = test_driver();
    let define = |name: &str, tag: &str| {
        let xml = format!(
            "<domain type='test'><name>{name}</name><memory unit='MiB'>8</memory>\
             <metadata>{tag}</metadata><os><type>hvm</type></os></domain>"
        );
        connection.define_domain_xml(&xml).expect("define");
    };
    define("lepton-tfoo-1", "");
    define("lepton-t01-1", "");
    // Copied by hand from another run: the tag disagrees with the name.
    define(
        "lepton-t20-1",
        r#"<l:run xmlns:l="https://lepton.dev/run" task="21" attempt="1" node="41"/>"#,
    );
    // Named like a run, without a tag: still Lepton's by name.
    define("lepton-t22-1", "");
    let listed = backend.running().await.expect("running");
    assert!(
        listed
            .iter()
            .all(|h| h.id != "lepton-tfoo-1" && h.id != "lepton-t01-1"),
        "{listed:?}"
    );
    assert_eq!(only(listed, &[20, 21, 22]), [handle_of(22, 1)]);
}

#[tokio::test]
async fn libvirt_refuses_what_it_cannot_run() {
    let (connection, backend) = test_driver();
    let mut elsewhere = launch_of(task(30), 1);
    elsewhere.node = NodeId(99);
    let error = backend.launch(&elsewhere).await.expect_err("another node");
    assert!(matches!(error, BackendError::NotFound { .. }), "{error:?}");

    let mut gpu = launch_of(task(31), 1);
    gpu.gpus = [0].into_iter().collect();
    let error = backend.launch(&gpu).await.expect_err("a GPU");
    assert!(
        matches!(error, BackendError::Unsupported { .. }),
        "{error:?}"
    );

    let forged = Handle {
        id: "test".to_owned(),
        ..handle_of(32, 1)
    };
    let error = backend.stop(&forged).await.expect_err("a forged handle");
    assert!(matches!(error, BackendError::Invalid { .. }), "{error:?}");
    assert_eq!(
        domains_named(&connection, "test"),
        1,
        "stopped a foreign domain"
    );

    let bad_type =
        LibvirtBackend::with_connection(connection.clone(), NODE).with_domain_type("test'/><evil");
    let error = bad_type
        .launch(&launch_of(task(33), 1))
        .await
        .expect_err("a bad domain type");
    assert!(matches!(error, BackendError::Invalid { .. }), "{error:?}");
    let listed = backend.running().await.expect("running");
    assert_eq!(only(listed, &[30, 31, 32, 33]), []);
}

#[tokio::test]
async fn libvirt_unreachable_uri_is_retryable() {
    let backend = LibvirtBackend::new("qemu:///system?socket=/nonexistent/sock", NODE);
    let error = backend.inventory().await.expect_err("no daemon there");
    assert!(
        matches!(error, BackendError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    let error = backend
        .launch(&launch_of(task(40), 1))
        .await
        .expect_err("no daemon there");
    assert!(error.is_retryable(), "{error:?}");
    let error = backend.running().await.expect_err("no daemon there");
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn libvirt_credentials_never_appear_in_errors() {
    for uri in [
        "qemu+tcp://admin:hunter2@127.0.0.1:1/system",
        "qemu+unix://admin:hunter2@/system?socket=/nonexistent/sock",
    ] {
        let backend = LibvirtBackend::new(uri, NODE);
        let error = backend.inventory().await.expect_err("no daemon there");
        let shown = format!("{error} {error:?} {backend:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(error.is_retryable(), "{uri}: {error:?}");
    }
}

#[tokio::test]
async fn libvirt_a_server_that_never_answers_times_out() {
    // A socket that accepts connections and never says a word.
    let dir = std::env::temp_dir().join(format!("lepton-libvirt-mute-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let socket = dir.join("sock");
    let _ = std::fs::remove_file(&socket);
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let uri = format!("qemu:///system?socket={}", socket.display());
    let backend = LibvirtBackend::new(uri, NODE).with_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let error = backend.inventory().await.expect_err("no answer");
    assert!(matches!(error, BackendError::Timeout { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------------ QEMU/TCG

#[tokio::test]
async fn libvirt_qemu_inventory_has_capacity() {
    let (_connection, backend) = qemu();
    inventory_has_capacity(&backend, "qemu").await;
}

#[tokio::test]
async fn libvirt_qemu_launch_running_stop_gone() {
    let (connection, backend) = qemu();
    clean(&backend, &[9001]).await;
    launch_running_stop_gone(&backend, &connection, 9001).await;
}

#[tokio::test]
async fn libvirt_qemu_launch_twice_one_domain() {
    let (connection, backend) = qemu();
    clean(&backend, &[9002]).await;
    launch_twice_one_domain(&backend, &connection, 9002).await;
}

#[tokio::test]
async fn libvirt_qemu_destroyed_outside_reads_failed() {
    let (connection, backend) = qemu();
    clean(&backend, &[9003]).await;
    destroyed_outside_reads_failed(&backend, &connection, 9003).await;
}

#[tokio::test]
async fn libvirt_qemu_xml_injection_is_escaped() {
    let (connection, backend) = qemu();
    clean(&backend, &[9004]).await;
    injection_is_escaped(&backend, &connection, 9004).await;
}

#[tokio::test]
async fn libvirt_qemu_small_memory_is_raised_and_runs_survive_a_restart() {
    let (connection, backend) = qemu();
    clean(&backend, &[9005]).await;
    let spec = TaskSpec::new(TaskId(9005), Resources::new(100, 16));
    let handle = backend.launch(&launch_of(spec, 1)).await.expect("launch");
    let info = connection
        .lookup_domain_by_name(&handle.id)
        .expect("domain")
        .info()
        .expect("info");
    assert_eq!(info.max_mem, 64 * 1024, "raised to the 64 MiB minimum");
    assert_eq!(info.nr_virt_cpu, 1);
    drop(backend);
    // A restarted Lepton, on a connection of its own.
    let again = LibvirtBackend::new(qemu_uri(), NODE);
    let listed = again.running().await.expect("running");
    assert!(listed.contains(&handle), "{listed:?}");
    wait_for(&again, &handle, &RunStatus::Running).await;
    again.stop(&handle).await.expect("stop");
    assert_eq!(
        again.status(&handle).await.expect("status"),
        RunStatus::Gone
    );
}

#[tokio::test]
async fn libvirt_qemu_refused_definition_is_rejected_and_leaves_nothing() {
    let (connection, backend) = qemu();
    let backend = backend.with_domain_type("xen");
    clean(&backend, &[9006]).await;
    let launch = launch_of(task(9006), 1);
    let error = backend
        .launch(&launch)
        .await
        .expect_err("QEMU runs no xen domain");
    assert!(matches!(error, BackendError::Rejected { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(domains_named(&connection, &domain_name(launch.run)), 0);
}

// ------------------------------------------------------------ live migration

#[tokio::test]
async fn libvirt_qemu_live_migration_moves_the_running_domain() {
    let (connection, source) = qemu();
    let source = source.with_peer(PEER, &peer_uri(), Some("tcp://127.0.0.1"));
    let destination = LibvirtBackend::new(peer_uri(), PEER);
    let peer = Connect::open(Some(&peer_uri())).expect("open the peer");
    clean(&source, &[9007]).await;
    clean(&destination, &[9007]).await;
    assert!(source.can_migrate_to(PEER));
    assert!(!source.can_migrate_to(NODE));
    assert!(!destination.can_migrate_to(NODE));

    let handle = source
        .launch(&launch_of(task(9007), 1))
        .await
        .expect("launch");
    wait_for(&source, &handle, &RunStatus::Running).await;
    // A mark set on the live domain from outside: only the very same
    // machine, moved, carries it to the peer; a domain booted afresh there
    // would not have it.
    connection
        .lookup_domain_by_name(&handle.id)
        .expect("the domain")
        .set_metadata(
            virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some("<mark boot=\"first\"/>"),
            Some("test"),
            Some("urn:lepton-test:mark"),
            virt::sys::VIR_DOMAIN_AFFECT_LIVE,
        )
        .expect("mark the domain");

    let to = Launch {
        node: PEER,
        ..launch_of(task(9007), 2)
    };
    let moved = source.migrate(&handle, &to).await.expect("migrate");
    assert_eq!(
        moved,
        Handle {
            run: to.run,
            node: PEER,
            id: domain_name(to.run),
        }
    );
    assert_eq!(domains_named(&connection, &handle.id), 0, "left the source");
    assert_eq!(
        destination.status(&moved).await.expect("status"),
        RunStatus::Running
    );
    let migrated = peer.lookup_domain_by_name(&moved.id).expect("on the peer");
    let mark = migrated
        .metadata(
            virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some("urn:lepton-test:mark"),
            virt::sys::VIR_DOMAIN_AFFECT_LIVE,
        )
        .expect("the mark moved with the machine");
    assert!(mark.contains("first"), "{mark}");
    assert!(migrated.is_persistent().expect("persistent"));
    // Tagged as the new run: a restarted Lepton adopts it there.
    assert_eq!(
        only(destination.running().await.expect("running"), &[9007]),
        std::slice::from_ref(&moved)
    );
    // Asked again (an answer lost), it finds the run already moved.
    assert_eq!(source.migrate(&handle, &to).await.expect("again"), moved);

    destination.stop(&moved).await.expect("stop");
    assert_eq!(domains_named(&peer, &moved.id), 0);
}

#[tokio::test]
async fn libvirt_migration_is_refused_where_it_cannot_be_done() {
    let (_connection, backend) = test_driver();
    let handle = handle_of(9101, 1);
    let to = Launch {
        node: PEER,
        ..launch_of(task(9101), 2)
    };
    let error = backend.migrate(&handle, &to).await.expect_err("no peers");
    assert!(
        matches!(error, BackendError::Unsupported { .. }),
        "{error:?}"
    );

    let backend = backend.with_peer(PEER, "test:///default", None);
    let other_task = Launch {
        node: PEER,
        ..launch_of(task(9102), 2)
    };
    let error = backend
        .migrate(&handle, &other_task)
        .await
        .expect_err("another task's run");
    assert!(
        matches!(error, BackendError::Invalid { ref value, .. } if value == "t-9102#2"),
        "{error:?}"
    );
    let error = backend.migrate(&handle, &to).await.expect_err("no domain");
    assert!(matches!(error, BackendError::NotFound { .. }), "{error:?}");
}
