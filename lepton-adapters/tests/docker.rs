//! The Docker backend against a real Docker Engine API server.
//!
//! Start one first: `bash scripts/backends.sh start docker`, then
//! `eval "$(bash scripts/backends.sh env)"` (exports `LEPTON_DOCKER_SOCKET`).
//! A missing server fails these tests; it never skips them.
#![cfg(feature = "docker")]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use lepton_adapters::docker::{container_name, DockerBackend, LABEL_ATTEMPT, LABEL_TASK};
use lepton_core::backend::{Backend, BackendError, Handle, Launch, RunStatus};
use lepton_core::cluster::GpuSlots;
use lepton_core::model::NodeKind;
use lepton_core::{NodeId, Resources, Run, TaskId, TaskSpec};

/// The image `scripts/backends.sh` builds locally (busybox: `sh`, `sleep`…).
const IMAGE: &str = "localhost/busybox:latest";
const NODE: NodeId = NodeId(1);

fn socket() -> String {
    support::server_env("LEPTON_DOCKER_SOCKET", "docker")
}

fn backend() -> DockerBackend {
    DockerBackend::connect_unix(socket())
        .expect("socket path")
        .with_node_id(NODE)
        .with_stop_timeout(Duration::from_secs(1))
}

/// bollard itself, for what a test does behind the backend's back.
fn raw_docker() -> Docker {
    Docker::connect_with_unix(&socket(), 60, API_DEFAULT_VERSION).expect("docker socket")
}

/// A task number no other test, and no earlier run of this test, uses.
fn task_id(slot: u64) -> TaskId {
    TaskId(u64::from(std::process::id()) * 100 + slot)
}

fn sleeper(slot: u64) -> Launch {
    let task = TaskSpec::new(task_id(slot), Resources::new(250, 32))
        .with_name(format!("sleeper {slot}"))
        .with_config("image", IMAGE)
        .with_config("command", "sleep 300");
    Launch {
        run: Run {
            task: task.id,
            attempt: 1,
        },
        node: NODE,
        task,
        gpus: GpuSlots::new(),
    }
}

/// Containers carrying `run`'s labels, found with bollard directly. A list
/// that meets a container in Podman's transient `stopped` state cannot be
/// read by bollard; it is asked again (for up to 5 s).
async fn containers_of(run: Run) -> Vec<String> {
    let task = format!("{LABEL_TASK}={}", run.task.0);
    let attempt = format!("{LABEL_ATTEMPT}={}", run.attempt);
    let filters = HashMap::from([("label", vec![task.as_str(), attempt.as_str()])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let docker = raw_docker();
    let mut tries = 0;
    loop {
        match docker.list_containers(Some(options.clone())).await {
            Ok(containers) => return containers.into_iter().filter_map(|c| c.id).collect(),
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("list containers: {e}; asking again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("list containers: {e}"),
        }
    }
}

/// Removes the containers of the given tasks when dropped, even when the
/// test panicked halfway, so no test leaves a container behind.
struct Cleanup(Vec<TaskId>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let tasks = std::mem::take(&mut self.0);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let docker = raw_docker();
                let labels: Vec<String> = tasks
                    .iter()
                    .map(|t| format!("{LABEL_TASK}={}", t.0))
                    .collect();
                // Podman refuses to remove a container while its cleanup
                // runs: try again for a few seconds.
                for _ in 0..10 {
                    let mut left = 0;
                    for label in &labels {
                        let filters = HashMap::from([("label", vec![label.as_str()])]);
                        let options = ListContainersOptionsBuilder::new()
                            .all(true)
                            .filters(&filters)
                            .build();
                        let Ok(ids) = docker.list_containers(Some(options)).await else {
                            // Unreadable while a container is `stopped`.
                            left += 1;
                            continue;
                        };
                        for id in ids.into_iter().filter_map(|c| c.id) {
                            left += 1;
                            let force = RemoveContainerOptionsBuilder::new().force(true).build();
                            let _ = docker.remove_container(&id, Some(force)).await;
                        }
                    }
                    if left == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            });
        })
        .join();
    }
}

/// Polls `status` until `done` accepts it (10 s at most).
async fn wait_status(
    backend: &DockerBackend,
    handle: &Handle,
    done: impl Fn(&RunStatus) -> bool,
) -> RunStatus {
    let mut last = RunStatus::Gone;
    for _ in 0..100 {
        last = backend.status(handle).await.expect("status");
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{handle} never reached the expected status; last {last:?}");
}

#[tokio::test]
async fn docker_inventory_reports_one_container_host_with_capacity() {
    let nodes = backend()
        .with_price_per_hour(0.25)
        .with_node_label("rack", "r1")
        .inventory()
        .await
        .expect("inventory");
    assert_eq!(nodes.len(), 1);
    let node = &nodes[0];
    assert_eq!(node.id, NODE);
    assert_eq!(node.kind, NodeKind::ContainerHost);
    assert!(node.capacity.cpu_milli >= 1000, "{:?}", node.capacity);
    assert_eq!(node.capacity.cpu_milli % 1000, 0);
    assert!(node.capacity.memory_mib >= 64, "{:?}", node.capacity);
    assert_eq!(node.labels["lepton.backend"], "docker");
    assert_eq!(node.labels["rack"], "r1");
    assert!(node.labels.contains_key("lepton.os"), "{:?}", node.labels);
    assert_eq!(node.price_per_hour, 0.25);
    node.validate().expect("a valid node");
}

#[tokio::test]
async fn docker_launch_runs_then_stop_leaves_it_gone() {
    let _cleanup = Cleanup(vec![task_id(1)]);
    let backend = backend();
    let launch = sleeper(1);
    let handle = backend.launch(&launch).await.expect("launch");
    assert_eq!(handle.run, launch.run);
    assert_eq!(handle.node, NODE);

    let status = wait_status(&backend, &handle, |s| *s != RunStatus::Starting).await;
    assert_eq!(status, RunStatus::Running);

    // The limits and labels reached the daemon.
    let inspected = raw_docker()
        .inspect_container(&handle.id, None)
        .await
        .expect("inspect");
    let host = inspected.host_config.expect("host config");
    assert_eq!(host.nano_cpus, Some(250_000_000));
    assert_eq!(host.memory, Some(32 * 1024 * 1024));
    assert_eq!(
        inspected.name.as_deref().map(|n| n.trim_start_matches('/')),
        Some(container_name(launch.run).as_str())
    );
    let labels = inspected.config.and_then(|c| c.labels).expect("labels");
    assert_eq!(labels["lepton.name"], "sleeper 1");

    assert!(backend.running().await.expect("running").contains(&handle));

    backend.stop(&handle).await.expect("stop");
    assert_eq!(
        backend.status(&handle).await.expect("status"),
        RunStatus::Gone
    );
    assert!(containers_of(launch.run).await.is_empty());
    assert!(!backend.running().await.expect("running").contains(&handle));
    // Stopping what is gone succeeds.
    backend.stop(&handle).await.expect("stop again");
}

#[tokio::test]
async fn docker_launch_twice_returns_the_same_container() {
    let _cleanup = Cleanup(vec![task_id(2)]);
    let backend = backend();
    let launch = sleeper(2);
    let first = backend.launch(&launch).await.expect("first launch");
    let second = backend.launch(&launch).await.expect("second launch");
    assert_eq!(first, second);
    // A second backend value (a restarted control loop) finds it too.
    let third = self::backend().launch(&launch).await.expect("third launch");
    assert_eq!(first, third);
    assert_eq!(containers_of(launch.run).await, vec![first.id.clone()]);
    backend.stop(&first).await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_concurrent_launches_make_one_container() {
    let _cleanup = Cleanup(vec![task_id(3)]);
    let launch = sleeper(3);
    // Separate backends (separate control loops) racing on one run.
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let launch = launch.clone();
            tokio::spawn(async move { backend().launch(&launch).await })
        })
        .collect();
    let mut handles = Vec::new();
    for racer in racers {
        handles.push(racer.await.expect("join").expect("launch"));
    }
    assert!(handles.windows(2).all(|w| w[0] == w[1]), "{handles:?}");
    assert_eq!(containers_of(launch.run).await, vec![handles[0].id.clone()]);
    backend().stop(&handles[0]).await.expect("stop");
}

#[tokio::test]
async fn docker_created_but_not_started_is_started_by_launch() {
    let _cleanup = Cleanup(vec![task_id(4)]);
    let backend = backend();
    let launch = sleeper(4);
    // What a crash between "create" and "start" leaves behind.
    let labels = HashMap::from([
        (LABEL_TASK.to_owned(), launch.run.task.0.to_string()),
        (LABEL_ATTEMPT.to_owned(), launch.run.attempt.to_string()),
        ("lepton.node".to_owned(), NODE.0.to_string()),
    ]);
    let body = bollard::models::ContainerCreateBody {
        image: Some(IMAGE.to_owned()),
        cmd: Some(vec!["sleep".to_owned(), "300".to_owned()]),
        labels: Some(labels),
        ..Default::default()
    };
    let name = container_name(launch.run);
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    let created = raw_docker()
        .create_container(Some(options), body)
        .await
        .expect("create");
    let handle = Handle {
        run: launch.run,
        node: NODE,
        id: created.id.clone(),
    };
    assert_eq!(
        backend.status(&handle).await.expect("status"),
        RunStatus::Starting
    );

    assert_eq!(backend.launch(&launch).await.expect("launch"), handle);
    let status = wait_status(&backend, &handle, |s| *s != RunStatus::Starting).await;
    assert_eq!(status, RunStatus::Running);
    backend.stop(&handle).await.expect("stop");
}

#[tokio::test]
async fn docker_name_taken_by_a_foreign_container_is_rejected() {
    let _cleanup = Cleanup(vec![task_id(5)]);
    let launch = sleeper(5);
    let name = container_name(launch.run);
    let body = bollard::models::ContainerCreateBody {
        image: Some(IMAGE.to_owned()),
        cmd: Some(vec!["true".to_owned()]),
        // Found by the cleanup, but without the attempt label launch needs.
        labels: Some(HashMap::from([(
            LABEL_TASK.to_owned(),
            launch.run.task.0.to_string(),
        )])),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    raw_docker()
        .create_container(Some(options), body)
        .await
        .expect("create");
    let err = backend().launch(&launch).await.expect_err("name taken");
    assert!(
        matches!(&err, BackendError::Rejected { detail, .. } if detail.contains("name is taken")),
        "{err}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn docker_kill_from_outside_is_failed() {
    let _cleanup = Cleanup(vec![task_id(6)]);
    let backend = backend();
    let handle = backend.launch(&sleeper(6)).await.expect("launch");
    wait_status(&backend, &handle, |s| *s == RunStatus::Running).await;

    let sigkill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
    raw_docker()
        .kill_container(&handle.id, Some(sigkill))
        .await
        .expect("kill");
    let status = wait_status(&backend, &handle, |s| *s != RunStatus::Running).await;
    assert!(
        matches!(&status, RunStatus::Failed { reason } if reason.contains("SIGKILL")),
        "{status:?}"
    );
    backend.stop(&handle).await.expect("stop");
    assert_eq!(
        backend.status(&handle).await.expect("status"),
        RunStatus::Gone
    );
}

#[tokio::test]
async fn docker_exit_code_is_reported() {
    let _cleanup = Cleanup(vec![task_id(7)]);
    let backend = backend();
    let mut launch = sleeper(7);
    launch
        .task
        .config
        .insert("command".to_owned(), "busybox false".to_owned());
    let handle = backend.launch(&launch).await.expect("launch");
    let status = wait_status(&backend, &handle, |s| {
        !matches!(s, RunStatus::Starting | RunStatus::Running)
    })
    .await;
    assert_eq!(status, RunStatus::Exited { code: 1 });
    // An ended run is still adopted after a restart, for its status.
    assert!(self::backend()
        .running()
        .await
        .expect("running")
        .contains(&handle));
    backend.stop(&handle).await.expect("stop");
}

/// Podman shows a container whose process just ended as `stopped` for a
/// moment, a state bollard cannot read; listing and inspecting must read
/// through that window instead of failing the whole answer.
#[tokio::test]
async fn docker_lists_and_inspects_while_containers_exit() {
    let slots: Vec<u64> = (20..26).collect();
    let _cleanup = Cleanup(slots.iter().map(|&s| task_id(s)).collect());
    let backend = backend();
    let mut handles = Vec::new();
    for &slot in &slots {
        let mut launch = sleeper(slot);
        launch
            .task
            .config
            .insert("command".to_owned(), format!("sleep 0.{slot}"));
        handles.push(backend.launch(&launch).await.expect("launch"));
    }
    let mut ended = 0;
    for _ in 0..200 {
        let listed = backend.running().await.expect("running");
        assert!(handles.iter().all(|h| listed.contains(h)), "{listed:?}");
        ended = 0;
        for handle in &handles {
            match backend.status(handle).await.expect("status") {
                RunStatus::Exited { code: 0 } => ended += 1,
                RunStatus::Starting | RunStatus::Running => {}
                other => panic!("{handle}: {other:?}"),
            }
        }
        if ended == handles.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ended, handles.len());
    for handle in &handles {
        backend.stop(handle).await.expect("stop");
    }
}

#[tokio::test]
async fn docker_missing_socket_is_unreachable_and_retryable() {
    let dir = std::env::temp_dir().join(format!("lepton-no-docker-{}", std::process::id()));
    let backend = DockerBackend::connect_unix(dir.join("docker.sock"))
        .expect("path")
        .with_node_id(NODE);
    let err = backend.launch(&sleeper(8)).await.expect_err("no daemon");
    assert!(matches!(err, BackendError::Unreachable { .. }), "{err}");
    assert!(err.is_retryable(), "{err}");
    let err = backend.inventory().await.expect_err("no daemon");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn docker_refused_tcp_port_is_unreachable_without_credentials() {
    // Port 1 on loopback: nothing listens there.
    let backend = DockerBackend::connect_http("tcp://lepton:s3cret@127.0.0.1:1")
        .expect("url")
        .with_node_id(NODE);
    let err = backend.inventory().await.expect_err("no daemon");
    assert!(matches!(err, BackendError::Unreachable { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
}

#[tokio::test]
async fn docker_usage_reports_figures_for_a_sleeping_container() {
    let _cleanup = Cleanup(vec![task_id(9)]);
    let backend = backend();
    let handle = backend.launch(&sleeper(9)).await.expect("launch");
    wait_status(&backend, &handle, |s| *s == RunStatus::Running).await;
    let usage = backend.usage(&handle).await.expect("usage");
    assert!(usage.memory_mib.is_some(), "{usage:?}");
    assert!(usage.memory_mib <= Some(32), "{usage:?}");
    assert!(usage.network_rx_bytes.is_some(), "{usage:?}");
    if let Some(cpu) = usage.cpu_milli {
        assert!(cpu <= 250, "a sleeping container uses {cpu} milli-cores");
    }
    backend.stop(&handle).await.expect("stop");
    let err = backend.usage(&handle).await.expect_err("gone");
    assert!(matches!(err, BackendError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn docker_usage_measures_cpu_within_the_limit() {
    let _cleanup = Cleanup(vec![task_id(14)]);
    let backend = backend();
    let mut launch = sleeper(14);
    // Busy without output: hashes an endless stream of zeros.
    launch
        .task
        .config
        .insert("command".to_owned(), "busybox md5sum /dev/zero".to_owned());
    let handle = backend.launch(&launch).await.expect("launch");
    wait_status(&backend, &handle, |s| *s == RunStatus::Running).await;
    // Docker measures over its own two samples; Podman needs a second call.
    let mut cpu = backend.usage(&handle).await.expect("usage").cpu_milli;
    if cpu.is_none() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cpu = backend.usage(&handle).await.expect("usage").cpu_milli;
    }
    let cpu = cpu.expect("CPU use on the second sample");
    // The request (250 milli-cores) is the container's hard limit.
    assert!((50..=300).contains(&cpu), "{cpu} milli-cores");
    backend.stop(&handle).await.expect("stop");
}

#[tokio::test]
async fn docker_name_with_a_newline_is_invalid() {
    let _cleanup = Cleanup(vec![task_id(10)]);
    let mut launch = sleeper(10);
    launch.task.name = Some("evil\nname".to_owned());
    let err = backend().launch(&launch).await.expect_err("invalid");
    assert!(
        matches!(
            err,
            BackendError::Invalid {
                what: "task name",
                ..
            }
        ),
        "{err}"
    );
    assert!(containers_of(launch.run).await.is_empty());
}

#[tokio::test]
async fn docker_image_with_a_space_is_invalid() {
    let _cleanup = Cleanup(vec![task_id(11)]);
    let mut launch = sleeper(11);
    launch
        .task
        .config
        .insert("image".to_owned(), "busybox latest".to_owned());
    let err = backend().launch(&launch).await.expect_err("invalid");
    assert!(
        matches!(err, BackendError::Invalid { what: "image", .. }),
        "{err}"
    );
    assert!(containers_of(launch.run).await.is_empty());
}

#[tokio::test]
async fn docker_image_not_on_the_host_is_rejected() {
    let _cleanup = Cleanup(vec![task_id(12)]);
    let mut launch = sleeper(12);
    launch.task.config.insert(
        "image".to_owned(),
        "localhost/lepton-no-such-image:1".to_owned(),
    );
    let err = backend().launch(&launch).await.expect_err("no image");
    assert!(matches!(err, BackendError::Rejected { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(containers_of(launch.run).await.is_empty());
}

#[tokio::test]
async fn docker_command_missing_from_the_image_is_rejected_and_leaves_nothing() {
    let _cleanup = Cleanup(vec![task_id(15)]);
    let mut launch = sleeper(15);
    launch
        .task
        .config
        .insert("command".to_owned(), "/no/such/program --flag".to_owned());
    let err = backend().launch(&launch).await.expect_err("cannot start");
    assert!(matches!(err, BackendError::Rejected { .. }), "{err}");
    assert!(containers_of(launch.run).await.is_empty());
}

#[tokio::test]
async fn docker_handle_of_another_run_is_not_stopped() {
    let _cleanup = Cleanup(vec![task_id(13)]);
    let backend = backend();
    let handle = backend.launch(&sleeper(13)).await.expect("launch");
    let wrong = Handle {
        run: Run {
            task: handle.run.task,
            attempt: 99,
        },
        ..handle.clone()
    };
    let err = backend.stop(&wrong).await.expect_err("not its container");
    assert!(matches!(err, BackendError::Rejected { .. }), "{err}");
    assert_eq!(containers_of(handle.run).await, vec![handle.id.clone()]);
    backend.stop(&handle).await.expect("stop");
}
