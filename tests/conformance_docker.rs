//! The conformance suite against a real Docker Engine API server (podman,
//! started by `bash scripts/backends.sh start docker`; its socket in
//! `LEPTON_DOCKER_SOCKET`). A missing server fails the tests.

#![cfg(feature = "docker")]
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::sync::Arc;

use lepton::adapters::docker::DockerBackend;
use lepton::{Backend, Handle, TaskId, TaskSpec};
use support::conformance::{self, Target};

struct Docker {
    socket: String,
}

fn docker() -> Docker {
    let socket = std::env::var("LEPTON_DOCKER_SOCKET").expect(
        "LEPTON_DOCKER_SOCKET is not set: run `bash scripts/backends.sh start docker` and \
         `eval \"$(bash scripts/backends.sh env)\"` first",
    );
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
