//! The conformance suite against EC2 as moto serves it (started by
//! `bash scripts/backends.sh start aws`; its URL in `LEPTON_AWS_ENDPOINT`).
//! A missing server fails the tests.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use lepton::adapters::aws::AwsBackend;
use lepton::backend::{Backend, Handle};
use lepton::{Resources, TaskId, TaskSpec};
use support::conformance::{self, Target};

/// moto's built-in Amazon Linux image.
const AMI: &str = "ami-12c6146b";

struct Ec2 {
    endpoint: String,
}

fn ec2() -> Ec2 {
    let endpoint = support::server_env("LEPTON_AWS_ENDPOINT", "aws");
    Ec2 { endpoint }
}

/// Each backend its own cluster tag: tests run side by side on one moto.
fn cluster() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "conf-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[async_trait::async_trait]
impl Target for Ec2 {
    async fn backend(&self) -> Arc<dyn Backend> {
        let backend = AwsBackend::connect(Some(&self.endpoint), "us-east-1")
            .unwrap()
            .with_cluster(cluster())
            .unwrap()
            .with_default_image(AMI);
        Arc::new(backend)
    }

    fn unreachable(&self) -> Arc<dyn Backend> {
        // Port 9 (discard) is closed on loopback.
        Arc::new(AwsBackend::connect(Some("http://127.0.0.1:9"), "us-east-1").unwrap())
    }

    fn long_task(&self, id: u64) -> TaskSpec {
        // Fits one t3.micro; an instance runs until it is stopped.
        TaskSpec::new(TaskId(600_000 + id), Resources::new(1_000, 512))
            .with_node_selector("aws.instance-type", "t3.micro")
    }

    async fn kill_outside(&self, _backend: &Arc<dyn Backend>, handle: &Handle) {
        // StopInstances through the EC2 API with the AWS CLI, as an operator would.
        let dir = std::env::var("LEPTON_BACKENDS_DIR").unwrap();
        let output = Command::new(format!("{dir}/venv/bin/aws"))
            .args(["ec2", "stop-instances", "--instance-ids", &handle.id])
            .args(["--endpoint-url", &self.endpoint, "--region", "us-east-1"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn conformance_aws_inventory_has_capacity() {
    conformance::inventory_has_capacity(&ec2()).await;
}

#[tokio::test]
async fn conformance_aws_launch_then_stop() {
    conformance::launch_then_stop(&ec2()).await;
}

#[tokio::test]
async fn conformance_aws_launch_twice_creates_one() {
    conformance::launch_twice_creates_one(&ec2()).await;
}

#[tokio::test]
async fn conformance_aws_killed_outside_is_rescheduled() {
    conformance::killed_outside_is_rescheduled(&ec2()).await;
}

#[tokio::test]
async fn conformance_aws_unreachable_keeps_the_task() {
    conformance::unreachable_keeps_the_task(&ec2()).await;
}
