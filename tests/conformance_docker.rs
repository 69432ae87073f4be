//! The conformance suite against a real Docker Engine API server (podman,
//! started by `bash scripts/backends.sh start docker`; its socket in
//! `LEPTON_DOCKER_SOCKET`). A missing server fails the tests.

#![cfg(feature = "docker")]
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::sync::Arc;

use lepton::adapters::docker::DockerBackend;
use lepton::backend::{Backend, Handle};
use lepton::{TaskId, TaskSpec};
use support::conformance::{self, Target};

struct Docker {
    socket: String,
}

fn docker() -> Docker {
    let socket = support::server_env("LEPTON_DOCKER_SOCKET", "docker");
    Docker { socket }
}

#[async_trait::async_trait]
impl Target for Docker {
    async fn backend(&self) -> Arc<dyn Backend> {
        let backend = DockerBackend::connect_unix(&self.socket).unwrap();
        // Runs of an earlier test of this file go; other files' runs are
        // not this test's business, but ids are unique per file anyway.
        Arc::new(backend)
    }

    fn unreachable(&self) -> Arc<dyn Backend> {
        Arc::new(DockerBackend::connect_unix("/nonexistent/lepton/docker.sock").unwrap())
    }

    fn long_task(&self, id: u64) -> TaskSpec {
        // Distinct ids per test: tests of one file run in parallel on one server.
        TaskSpec::new(TaskId(900_000 + id), lepton::Resources::new(100, 16))
            .with_config("image", "localhost/busybox:latest")
            .with_config("command", "sleep 600")
    }

    async fn kill_outside(&self, _backend: &Arc<dyn Backend>, handle: &Handle) {
        // SIGKILL through the server's API, as `docker kill` does.
        let url = format!("http://d/v1.41/containers/{}/kill", handle.id);
        let status = Command::new("curl")
            .args(["-sf", "-X", "POST", "--unix-socket", &self.socket, &url])
            .status()
            .unwrap();
        assert!(status.success(), "kill {handle}");
    }
}

#[tokio::test]
async fn conformance_docker_inventory_has_capacity() {
    conformance::inventory_has_capacity(&docker()).await;
}

#[tokio::test]
async fn conformance_docker_launch_then_stop() {
    conformance::launch_then_stop(&docker()).await;
}

#[tokio::test]
async fn conformance_docker_launch_twice_creates_one() {
    conformance::launch_twice_creates_one(&docker()).await;
}

#[tokio::test]
async fn conformance_docker_killed_outside_is_rescheduled() {
    conformance::killed_outside_is_rescheduled(&docker()).await;
}

#[tokio::test]
async fn conformance_docker_unreachable_keeps_the_task() {
    conformance::unreachable_keeps_the_task(&docker()).await;
}

/// Container stats reach the scheduler's view, beside what is reserved.
#[tokio::test]
async fn docker_usage_reaches_the_scheduler_view() {
    use std::time::Duration;

    use lepton::policies::by_name;
    use lepton::{Controller, ControllerConfig, CoreScheduler};

    let target = docker();
    let config = ControllerConfig {
        usage_every: 1,
        ..ControllerConfig::default()
    };
    let scheduler = CoreScheduler::new(by_name("bestfit").unwrap());
    let mut controller = Controller::new(scheduler, vec![target.backend().await], config)
        .await
        .unwrap();
    let task = controller.submit(&target.long_task(10)).unwrap();
    let mut measured = None;
    for _ in 0..100 {
        controller.step().await;
        let node = controller.handle(task).map(|h| h.node);
        let cluster = controller.scheduler().cluster();
        measured = node.and_then(|n| cluster.node(n)?.usage().cloned());
        // CPU needs two samples; memory comes with the first.
        if measured.as_ref().is_some_and(|u| u.cpu_milli.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let usage = measured.expect("no usage reached the scheduler");
    assert!(usage.memory_mib.is_some(), "{usage:?}");
    // A sleeping container uses far less than the 100 milli-cores reserved.
    assert!(usage.cpu_milli.is_some_and(|cpu| cpu < 100), "{usage:?}");
    controller.shutdown().await;
}
