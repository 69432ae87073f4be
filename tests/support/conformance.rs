//! The conformance suite every backend must pass, run against its real
//! server. A backend's test file implements [`Target`] and calls each check
//! from a test named `conformance_<backend>_<check>`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lepton::backend::{Backend, Handle, Launch, RunStatus};
use lepton::policies::by_name;
use lepton::scheduler::TaskState;
use lepton::{
    Controller, ControllerConfig, CoreScheduler, NodeSpec, Run, Scheduler, TaskId, TaskSpec,
};

/// One backend under test, against its real server.
#[async_trait::async_trait]
pub(crate) trait Target: Send + Sync {
    /// A backend connected to the server, with no run of an earlier test left.
    async fn backend(&self) -> Arc<dyn Backend>;
    /// The same kind of backend, configured for a server that is not there.
    fn unreachable(&self) -> Arc<dyn Backend>;
    /// A task that runs until it is stopped.
    fn long_task(&self, id: u64) -> TaskSpec;
    /// Kills a run through the server's own API, as an operator would.
    async fn kill_outside(&self, backend: &Arc<dyn Backend>, handle: &Handle);
}

/// How long a check waits for the server to get somewhere.
const PATIENCE: Duration = Duration::from_secs(60);

async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(
            started.elapsed() < PATIENCE,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn first_node(backend: &Arc<dyn Backend>) -> NodeSpec {
    let nodes = backend.inventory().await.expect("inventory");
    nodes.into_iter().next().expect("at least one node")
}

fn launch_of(node: &NodeSpec, task: TaskSpec, attempt: u32) -> Launch {
    Launch {
        run: Run {
            task: task.id,
            attempt,
        },
        node: node.id,
        task,
        gpus: Default::default(),
    }
}

async fn status(backend: &Arc<dyn Backend>, handle: &Handle) -> RunStatus {
    backend.status(handle).await.expect("status")
}

/// The inventory is not empty and every node offers capacity.
pub(crate) async fn inventory_has_capacity(target: &dyn Target) {
    let backend = target.backend().await;
    let nodes = backend.inventory().await.expect("inventory");
    assert!(!nodes.is_empty(), "{} reports no node", backend.name());
    for node in &nodes {
        node.validate().expect("a valid node");
        assert!(node.capacity.cpu_milli > 0, "{node:?}");
        assert!(node.capacity.memory_mib > 0, "{node:?}");
    }
}

/// Launch → running → stop → gone, and the run is no longer listed.
pub(crate) async fn launch_then_stop(target: &dyn Target) {
    let backend = target.backend().await;
    let node = first_node(&backend).await;
    let launch = launch_of(&node, target.long_task(1), 1);
    let handle = backend.launch(&launch).await.expect("launch");
    assert_eq!((handle.run, handle.node), (launch.run, node.id));
    eventually("the run is running", || async {
        status(&backend, &handle).await == RunStatus::Running
    })
    .await;
    backend.stop(&handle).await.expect("stop");
    assert_eq!(status(&backend, &handle).await, RunStatus::Gone);
    let listed = backend.running().await.expect("running");
    assert!(!listed.contains(&handle), "{listed:?}");
    // Stopping again is fine.
    backend.stop(&handle).await.expect("a second stop");
}

/// Launching the same run twice starts it once.
pub(crate) async fn launch_twice_creates_one(target: &dyn Target) {
    let backend = target.backend().await;
    let node = first_node(&backend).await;
    let launch = launch_of(&node, target.long_task(2), 1);
    let first = backend.launch(&launch).await.expect("launch");
    let second = backend.launch(&launch).await.expect("launch again");
    assert_eq!(first, second);
    let listed = backend.running().await.expect("running");
    let copies = listed.iter().filter(|h| h.run == launch.run).count();
    assert_eq!(copies, 1, "{listed:?}");
    backend.stop(&first).await.expect("stop");
}

/// A run killed outside Lepton is reported failed and the task runs again.
pub(crate) async fn killed_outside_is_rescheduled(target: &dyn Target) {
    let backend = target.backend().await;
    let mut controller = controller(vec![Arc::clone(&backend)]).await;
    let task = controller.submit(&target.long_task(3)).expect("submit");
    let first = step_until_running(&mut controller, task, 1).await;
    target.kill_outside(&backend, &first).await;
    let second = step_until_running(&mut controller, task, 2).await;
    assert_ne!(first.id, second.id);
    let reasons = controller.scheduler().failures(task).to_vec();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].starts_with("attempt 1 on"), "{reasons:?}");
    assert_eq!(status(&backend, &second).await, RunStatus::Running);
    // The killed run left nothing behind.
    let listed = backend.running().await.expect("running");
    let mine: Vec<&Handle> = listed.iter().filter(|h| h.run.task == task).collect();
    assert_eq!(mine, [&second]);
    controller.shutdown().await;
    assert_eq!(status(&backend, &second).await, RunStatus::Gone);
}

/// With the server unreachable: a typed, retryable error, and the task is
/// kept and tried again, never lost.
pub(crate) async fn unreachable_keeps_the_task(target: &dyn Target) {
    let backend = target.unreachable();
    let error = backend.inventory().await.expect_err("no server there");
    assert!(error.is_retryable(), "{error:?}");
    let mut controller = controller(vec![backend]).await;
    let task = controller.submit(&target.long_task(4)).expect("submit");
    let mut tries = Vec::new();
    for _ in 0..3 {
        let report = controller.step().await;
        assert_eq!(report.unreachable_backends, 1);
        tries.push(controller.scheduler().report().unschedulable);
        // Past the scheduler's backoff (1 s, then 2 s).
        tokio::time::sleep(Duration::from_millis(2_100)).await;
    }
    let state = controller.scheduler().task_state(task).cloned();
    assert!(
        matches!(
            state,
            Some(TaskState::BackingOff { .. } | TaskState::Queued)
        ),
        "{state:?}"
    );
    assert!(
        tries.windows(2).all(|w| w[1] > w[0]),
        "not retried: {tries:?}"
    );
}

async fn controller(backends: Vec<Arc<dyn Backend>>) -> Controller {
    let policy = by_name("bestfit").expect("known policy");
    let config = ControllerConfig {
        tick: Duration::from_millis(100),
        ..ControllerConfig::default()
    };
    Controller::new(CoreScheduler::new(policy), backends, config)
        .await
        .expect("controller")
}

/// Steps until `task` runs as `attempt`; its handle.
async fn step_until_running(controller: &mut Controller, task: TaskId, attempt: u32) -> Handle {
    let started = Instant::now();
    loop {
        controller.step().await;
        if let Some(handle) = controller.handle(task) {
            if handle.run.attempt == attempt {
                return handle.clone();
            }
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{task} not running as attempt {attempt}: {:?}, failures {:?}",
            controller.scheduler().task_state(task),
            controller.scheduler().failures(task)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
