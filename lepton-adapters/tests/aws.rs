//! The AWS EC2 backend against moto, a local EC2 look-alike.
//!
//! Start it first: `bash scripts/backends.sh start aws`, then
//! `eval "$(bash scripts/backends.sh env)"` exports `LEPTON_AWS_ENDPOINT`,
//! the dummy credentials and the region. Without them every test here fails
//! and says so: nothing is skipped. Each test works in a cluster of its own
//! (the `lepton:cluster` tag), so tests run in parallel and again against
//! the same moto without seeing each other's instances.
#![cfg(feature = "aws")]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_ec2::types::{Instance, InstanceLifecycleType};
use lepton_adapters::aws::{
    instance_name, node_id_for, AwsBackend, DEFAULT_INSTANCE_TYPES, TAG_ATTEMPT, TAG_CLUSTER,
    TAG_NAME, TAG_NODE, TAG_TASK,
};
use lepton_core::backend::{Backend, BackendError, Handle, Launch, RunStatus};
use lepton_core::model::NodeKind;
use lepton_core::{NodeId, Resources, Run, TaskId, TaskSpec};

/// moto's built-in AMI.
const AMI: &str = "ami-12c6146b";
const PATIENCE: Duration = Duration::from_secs(60);

/// moto's endpoint; the dummy credentials moto takes must be set too.
fn endpoint() -> String {
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        support::server_env(var, "aws");
    }
    support::server_env("LEPTON_AWS_ENDPOINT", "aws")
}

fn region() -> String {
    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned())
}

/// A cluster name no other test and no earlier run uses.
fn unique_cluster(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{test}-{:x}{n}", nanos ^ std::process::id())
}

fn backend(test: &str) -> AwsBackend {
    AwsBackend::connect(Some(&endpoint()), &region())
        .expect("connect")
        .with_cluster(unique_cluster(test))
        .expect("a valid cluster")
        .with_default_image(AMI)
}

fn micro(backend: &AwsBackend) -> NodeId {
    node_id_for(backend.region(), "t3.micro")
}

fn long_task(id: u64) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(500, 256)).with_name(format!("sleeper {id}"))
}

fn launch_of(node: NodeId, task: TaskSpec, attempt: u32) -> Launch {
    Launch {
        run: Run {
            task: task.id,
            attempt,
        },
        node,
        task,
        gpus: Default::default(),
    }
}

async fn status(backend: &AwsBackend, handle: &Handle) -> RunStatus {
    backend.status(handle).await.expect("status")
}

async fn wait_for(
    backend: &AwsBackend,
    handle: &Handle,
    what: &str,
    done: impl Fn(&RunStatus) -> bool,
) -> RunStatus {
    let started = Instant::now();
    loop {
        let now = status(backend, handle).await;
        if done(&now) {
            return now;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{handle}: waiting until {what}, still {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn describe(backend: &AwsBackend, id: &str) -> Instance {
    let output = backend
        .client()
        .await
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("describe");
    output
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
        .cloned()
        .expect("the instance")
}

fn tag<'a>(instance: &'a Instance, key: &str) -> Option<&'a str> {
    instance
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

#[tokio::test]
async fn inventory_offers_one_pool_per_instance_type() {
    let backend = backend("inv").with_max_instances_per_type(3);
    let nodes = backend.inventory().await.expect("inventory");
    assert_eq!(nodes.len(), DEFAULT_INSTANCE_TYPES.len());
    for (node, name) in nodes.iter().zip(DEFAULT_INSTANCE_TYPES) {
        node.validate().expect("a valid node");
        assert_eq!(node.id, node_id_for(backend.region(), name));
        assert_eq!(node.kind, NodeKind::Vm);
        assert!(
            node.capacity.cpu_milli > 0 && node.capacity.memory_mib > 0,
            "{node:?}"
        );
        assert!(node.price_per_hour > 0.0, "{node:?}");
        assert_eq!(node.labels["lepton.backend"], "aws");
        assert_eq!(node.labels["aws.instance-type"], name);
        assert_eq!(node.labels["aws.region"], backend.region());
    }
    // t3.micro: 2 vCPUs and 1 GiB, three of them; a task gets one.
    assert_eq!(nodes[0].capacity, Resources::new(6000, 3072));
    assert_eq!(
        nodes[0].max_task.as_deref(),
        Some(&Resources::new(2000, 1024))
    );
    // c5.2xlarge: 8 vCPUs and 16 GiB.
    assert_eq!(nodes[3].capacity, Resources::new(24_000, 49_152));
    assert_eq!(
        nodes[3].max_task.as_deref(),
        Some(&Resources::new(8000, 16_384))
    );
}

#[tokio::test]
async fn launch_runs_then_stop_makes_it_gone() {
    let backend = backend("stop");
    let handle = backend
        .launch(&launch_of(micro(&backend), long_task(1), 1))
        .await
        .expect("launch");
    assert_eq!(
        handle.run,
        Run {
            task: TaskId(1),
            attempt: 1
        }
    );
    assert!(handle.id.starts_with("i-"), "{handle}");
    wait_for(&backend, &handle, "running", |s| *s == RunStatus::Running).await;
    assert_eq!(
        backend.running().await.expect("running"),
        std::slice::from_ref(&handle)
    );

    backend.stop(&handle).await.expect("stop");
    assert_eq!(status(&backend, &handle).await, RunStatus::Gone);
    assert_eq!(backend.running().await.expect("running"), []);
    backend.stop(&handle).await.expect("a second stop");
}

#[tokio::test]
async fn launching_twice_starts_one_instance() {
    let backend = backend("twice");
    let launch = launch_of(micro(&backend), long_task(2), 1);
    let first = backend.launch(&launch).await.expect("launch");
    let second = backend.launch(&launch).await.expect("launch again");
    assert_eq!(first, second);
    let listed = backend.running().await.expect("running");
    assert_eq!(listed, std::slice::from_ref(&first));

    // A restarted control loop (a new backend, same cluster) adopts it.
    let restarted = AwsBackend::connect(Some(&endpoint()), &region())
        .expect("connect")
        .with_cluster(backend.cluster())
        .expect("valid");
    assert_eq!(
        restarted.running().await.expect("running"),
        std::slice::from_ref(&first)
    );
    backend.stop(&first).await.expect("stop");
}

#[tokio::test]
async fn an_instance_stopped_outside_is_failed_and_still_listed() {
    let backend = backend("outside");
    let handle = backend
        .launch(&launch_of(micro(&backend), long_task(3), 1))
        .await
        .expect("launch");
    wait_for(&backend, &handle, "running", |s| *s == RunStatus::Running).await;

    // As an operator would, through EC2 itself.
    backend
        .client()
        .await
        .stop_instances()
        .instance_ids(&handle.id)
        .send()
        .await
        .expect("StopInstances");
    let failed = wait_for(&backend, &handle, "failed", |s| {
        matches!(s, RunStatus::Failed { .. })
    })
    .await;
    let RunStatus::Failed { reason } = failed else {
        unreachable!()
    };
    assert!(
        reason.contains(&handle.id) && reason.contains("stopped"),
        "{reason}"
    );

    // Stopped instances are still the cluster's: listed, so they get cleaned up.
    assert_eq!(
        backend.running().await.expect("running"),
        std::slice::from_ref(&handle)
    );
    backend.stop(&handle).await.expect("stop");
    assert_eq!(status(&backend, &handle).await, RunStatus::Gone);
    assert_eq!(backend.running().await.expect("running"), []);
}

#[tokio::test]
async fn a_closed_port_is_unreachable_and_retryable() {
    let backend = AwsBackend::connect(Some("http://127.0.0.1:9"), "us-east-1")
        .expect("connecting sends nothing")
        .with_default_image(AMI);
    let started = Instant::now();
    let error = backend
        .inventory()
        .await
        .expect_err("nothing listens on port 9");
    assert!(
        matches!(error, BackendError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(!error.to_string().contains("testing"), "{error}");

    let error = backend
        .launch(&launch_of(micro(&backend), long_task(4), 1))
        .await
        .expect_err("no server");
    assert!(error.is_retryable(), "{error:?}");
    let handle = Handle {
        run: Run {
            task: TaskId(4),
            attempt: 1,
        },
        node: micro(&backend),
        id: "i-0123456789abcdef0".to_owned(),
    };
    assert!(backend
        .status(&handle)
        .await
        .expect_err("no server")
        .is_retryable());
    assert!(backend
        .running()
        .await
        .expect_err("no server")
        .is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_spot_task_gets_a_spot_instance() {
    let backend = backend("spot");
    let spot = long_task(5).with_config("market", "spot");
    let handle = backend
        .launch(&launch_of(micro(&backend), spot, 1))
        .await
        .expect("launch");
    let instance = describe(&backend, &handle.id).await;
    assert_eq!(
        instance.instance_lifecycle(),
        Some(&InstanceLifecycleType::Spot)
    );

    let on_demand = long_task(6).with_config("market", "on-demand");
    let other = backend
        .launch(&launch_of(micro(&backend), on_demand, 1))
        .await
        .expect("launch");
    assert_eq!(
        describe(&backend, &other.id).await.instance_lifecycle(),
        None
    );
    backend.stop(&handle).await.expect("stop");
    backend.stop(&other).await.expect("stop");
}

#[tokio::test]
async fn the_instance_carries_the_run_in_its_tags() {
    let backend = backend("tags");
    let node = node_id_for(backend.region(), "m5.xlarge");
    let handle = backend
        .launch(&launch_of(node, long_task(7), 3))
        .await
        .expect("launch");
    assert_eq!(handle.node, node);
    let instance = describe(&backend, &handle.id).await;
    assert_eq!(
        instance.instance_type().map(|t| t.as_str()),
        Some("m5.xlarge")
    );
    assert_eq!(instance.image_id(), Some(AMI));
    let run = Run {
        task: TaskId(7),
        attempt: 3,
    };
    assert_eq!(tag(&instance, "Name"), Some(instance_name(run).as_str()));
    assert_eq!(tag(&instance, TAG_CLUSTER), Some(backend.cluster()));
    assert_eq!(tag(&instance, TAG_TASK), Some("7"));
    assert_eq!(tag(&instance, TAG_ATTEMPT), Some("3"));
    assert_eq!(tag(&instance, TAG_NODE), Some(node.0.to_string().as_str()));
    assert_eq!(tag(&instance, TAG_NAME), Some("sleeper 7"));
    backend.stop(&handle).await.expect("stop");
}

#[tokio::test]
async fn the_pool_limit_is_enforced() {
    let backend = backend("limit").with_max_instances_per_type(1);
    let first = backend
        .launch(&launch_of(micro(&backend), long_task(8), 1))
        .await
        .expect("launch");
    let error = backend
        .launch(&launch_of(micro(&backend), long_task(9), 1))
        .await
        .expect_err("the pool is full");
    assert!(
        matches!(&error, BackendError::Rejected { detail, .. } if detail.contains("limit")),
        "{error:?}"
    );
    backend.stop(&first).await.expect("stop");
    let second = backend
        .launch(&launch_of(micro(&backend), long_task(9), 1))
        .await
        .expect("room again");
    backend.stop(&second).await.expect("stop");
}

#[tokio::test]
async fn another_clusters_instance_is_refused() {
    let ours = backend("ours");
    let theirs = backend("theirs");
    let handle = ours
        .launch(&launch_of(micro(&ours), long_task(10), 1))
        .await
        .expect("launch");
    assert_eq!(theirs.running().await.expect("running"), []);
    let error = theirs.stop(&handle).await.expect_err("not theirs");
    assert!(matches!(error, BackendError::Rejected { .. }), "{error:?}");
    assert!(matches!(
        theirs.status(&handle).await,
        Err(BackendError::Rejected { .. })
    ));
    assert_ne!(status(&ours, &handle).await, RunStatus::Gone);
    ours.stop(&handle).await.expect("stop");
}

#[tokio::test]
async fn an_unknown_instance_is_gone() {
    let backend = backend("unknown");
    let handle = Handle {
        run: Run {
            task: TaskId(11),
            attempt: 1,
        },
        node: micro(&backend),
        id: "i-0123456789abcdef0".to_owned(),
    };
    assert_eq!(status(&backend, &handle).await, RunStatus::Gone);
    backend
        .stop(&handle)
        .await
        .expect("stopping what is gone is fine");
}
