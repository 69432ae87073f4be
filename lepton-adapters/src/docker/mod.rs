//! The Docker Engine API backend: one Docker (or Podman) host is one node,
//! and every run is one container.
//!
//! # Design
//! [`DockerBackend`] talks to the daemon through [`bollard`], over a unix
//! socket or plain TCP. It connects lazily: the first call opens the client
//! and negotiates the API version down to the server's, so a backend can be
//! built before its daemon is up, and a missing socket is reported as
//! [`BackendError::Unreachable`] (retryable), not as a construction error.
//!
//! A run's container is named `lepton-t<task>-<attempt>`, built from numbers
//! only, and carries the labels [`LABEL_TASK`], [`LABEL_ATTEMPT`] and
//! [`LABEL_NODE`] (decimal numbers) and, when the task has a name,
//! [`LABEL_NAME`]. [`launch`](Backend::launch) first looks for a container
//! with the run's labels and returns it (starting it if it was created but
//! not started), so launching twice — or again after a crash between
//! "create" and "start" — never makes a second container. Two launches
//! racing on the same run meet on the container name: the loser's create is
//! refused (409 from Docker, 500 "name is already in use" from Podman), and
//! it returns the winner's container.
//! [`running`](Backend::running) lists every container with a
//! [`LABEL_TASK`] label, stopped ones included, so a restarted control loop
//! adopts them all.
//!
//! What to run comes from the task's `config`: `image` (required unless the
//! backend has a [default image](DockerBackend::with_default_image)) and
//! `command` (optional, split on whitespace and passed as the argument
//! vector; no shell is involved). Other keys are ignored, so one task can
//! carry the settings of several backends. The task's request becomes the
//! container's limits: `NanoCpus = cpu_milli × 10⁶`, `Memory = memory_mib ×
//! 1 MiB`; a request of 0 sets no limit. Images are not pulled: they must be
//! on the host already.
//!
//! # Status mapping
//! [`status`](Backend::status) inspects the container:
//!
//! | Docker state                               | [`RunStatus`]                        |
//! |--------------------------------------------|--------------------------------------|
//! | `running`, `paused`, `stopping`            | `Running`                            |
//! | `created`, `restarting`                    | `Starting`                           |
//! | `created` with an error (start failed)     | `Failed { reason: the error }`       |
//! | `exited`, `OOMKilled` set                  | `Failed { reason: "…out-of-memory…" }` |
//! | `exited` 137 or 143, not stopped by Lepton | `Failed { reason: "killed by SIGKILL/SIGTERM…" }` |
//! | `exited` with an error message             | `Failed { reason: the error }`       |
//! | `exited` otherwise                         | `Exited { code }`                    |
//! | `dead`                                     | `Failed { reason }`                  |
//! | `removing`, or 404 from the daemon         | `Gone`                               |
//!
//! Exit codes 137 and 143 are how Docker reports death by SIGKILL and
//! SIGTERM, the signals something outside the task uses (`docker kill`,
//! `docker stop`, the kernel); other signal deaths (a segfault, 139) are the
//! task's own doing and stay `Exited`. A container this backend is stopping
//! itself is never reported as killed; that memory lives in the backend
//! value, so after a restart a container killed during a half-done stop
//! reads as `Failed`, which is harmless: the run was being stopped anyway.
//!
//! Names and labels are not namespaced per Lepton instance: a Docker host
//! belongs to one Lepton control plane, which adopts every `lepton.task`
//! container on it.
//!
//! # Podman
//! Podman's Docker-compatible service works, with three differences the
//! backend absorbs: a taken name is refused with 500 (not 409); a container
//! whose process has just ended is briefly `stopped`, a state outside the
//! Docker API that bollard cannot read, or fails inspection with a 500 (its
//! process's cgroup is gone), so an inspection or a list that meets either is
//! repeated for up to 5 s until it reads `exited`; and its one-shot
//! statistics carry no previous sample, so CPU use is measured between two
//! `usage` calls.
//!
//! # Errors
//! Connection failures (socket missing, connection refused or reset) map to
//! [`BackendError::Unreachable`], request timeouts to
//! [`BackendError::Timeout`], both retryable; HTTP 404 to
//! [`BackendError::NotFound`] (or to `Gone` / success where the trait says
//! so), 502 and 503 to `Unreachable`, 408 and 504 to `Timeout`, every other
//! refusal to [`BackendError::Rejected`] with the daemon's message. Values
//! from the task that would end up in a label, an image reference or an API
//! path are checked first and refused with [`BackendError::Invalid`]. A TCP
//! URL's user and password are dropped when the backend is built, so they
//! can appear in no error and no `Debug` output. The daemon's messages
//! pass through the crate's one redaction rule (user information, secret
//! query values and AWS access key ids become `***`).
//!
//! # Runtime
//! The futures must run inside a tokio runtime with the I/O and time drivers
//! enabled (`#[tokio::main]` does that): bollard uses tokio's sockets and
//! timers.
//!
//! # Quick start
//! ```no_run
//! use lepton_adapters::docker::DockerBackend;
//! use lepton_core::backend::{Backend, Launch};
//! use lepton_core::{NodeId, Resources, Run, TaskId, TaskSpec};
//!
//! # async fn demo() -> Result<(), lepton_core::backend::BackendError> {
//! let docker = DockerBackend::connect_unix("/var/run/docker.sock")?
//!     .with_node_id(NodeId(1))
//!     .with_price_per_hour(0.12);
//! let node = &docker.inventory().await?[0];
//!
//! let task = TaskSpec::new(TaskId(7), Resources::new(500, 64))
//!     .with_config("image", "busybox:latest")
//!     .with_config("command", "sleep 30");
//! let launch = Launch {
//!     run: Run { task: task.id, attempt: 1 },
//!     node: node.id,
//!     task,
//!     gpus: Default::default(),
//! };
//! let handle = docker.launch(&launch).await?;
//! println!("{handle}: {:?}", docker.status(&handle).await?);
//! docker.stop(&handle).await?;
//! # Ok(())
//! # }
//! ```

// One file per responsibility: `client` connects and maps errors,
// `inventory` sizes the node, `launch` creates and stops containers,
// `status` reads and adopts them, `usage` samples their statistics.
mod client;
mod inventory;
mod launch;
mod status;
mod usage;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use lepton_core::backend::{Backend, BackendError, Handle, Launch, RunStatus, Usage};
use lepton_core::model::NodeKind;
use lepton_core::{NodeId, NodeSpec, Resources, TaskSpec};
use tokio::sync::OnceCell;

use self::client::{parse_http_url, Endpoint};
pub use self::launch::container_name;
use self::usage::CpuReading;
use crate::shared::errors::invalid;
use crate::shared::node_labels::backend_node;

/// The backend's name in errors and logs.
const BACKEND: &str = "docker";

/// Label holding the run's task number (`7` for `t-7`).
pub const LABEL_TASK: &str = "lepton.task";
/// Label holding the run's attempt number.
pub const LABEL_ATTEMPT: &str = "lepton.attempt";
/// Label holding the number of the node the run was launched on.
pub const LABEL_NODE: &str = "lepton.node";
/// Label holding the task's human-readable name, when it has one.
pub const LABEL_NAME: &str = "lepton.name";

const MIB: u64 = 1024 * 1024;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// A [`Backend`] for one Docker Engine API host (Docker or Podman).
///
/// Built with [`connect_unix`](Self::connect_unix) or
/// [`connect_http`](Self::connect_http), then configured with the `with_*`
/// methods. See the [module documentation](self) for the design, the
/// labels, and how container states map to [`RunStatus`].
pub struct DockerBackend {
    endpoint: Endpoint,
    client: OnceCell<Docker>,
    /// The node this host is, as the `with_*` methods set it up:
    /// [`inventory`](Backend::inventory) adds the capacity and what the
    /// daemon reports.
    node: NodeSpec,
    default_image: Option<String>,
    timeout: Duration,
    stop_timeout: Duration,
    /// Containers this backend is stopping: their SIGTERM/SIGKILL exit is
    /// not a failure.
    stopping: Mutex<HashSet<String>>,
    /// The CPU time each container had used at the last `usage` call, for
    /// daemons whose statistics carry no previous sample (Podman).
    cpu_readings: Mutex<HashMap<String, CpuReading>>,
}

impl fmt::Debug for DockerBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerBackend")
            .field("endpoint", &self.endpoint.to_string())
            .field("connected", &self.client.initialized())
            .field("node", &self.node)
            .field("default_image", &self.default_image)
            .field("timeout", &self.timeout)
            .field("stop_timeout", &self.stop_timeout)
            .finish_non_exhaustive()
    }
}

impl DockerBackend {
    /// A backend for the daemon on the unix socket `path` (`/var/run/docker.sock`,
    /// or `unix:///var/run/docker.sock`).
    ///
    /// Nothing is opened yet: the first call connects, so a socket that does
    /// not exist yet shows up as [`BackendError::Unreachable`] then.
    ///
    /// # Errors
    /// [`BackendError::Invalid`] when the path is not UTF-8 or empty.
    pub fn connect_unix(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let raw = path.as_ref();
        let text = raw.to_str().ok_or_else(|| {
            invalid(
                BACKEND,
                "socket path",
                raw.display().to_string(),
                "is not UTF-8",
            )
        })?;
        let text = text.strip_prefix("unix://").unwrap_or(text);
        if text.is_empty() {
            return Err(invalid(BACKEND, "socket path", text, "is empty"));
        }
        Ok(Self::new(Endpoint::Unix(text.to_owned())))
    }

    /// A backend for a daemon on plain TCP: `tcp://host:port`,
    /// `http://host:port` or `host:port`.
    ///
    /// A user and password in the URL are dropped: the Docker API over
    /// plain HTTP takes no credentials, and they must not leak into errors.
    /// TLS (`https://`) is not built in. Nothing is opened yet: the first
    /// call connects.
    ///
    /// # Errors
    /// [`BackendError::Invalid`] when the URL has another scheme, a path, or
    /// no `host:port`; the value in the error has its user info removed.
    pub fn connect_http(url: &str) -> Result<Self, BackendError> {
        parse_http_url(url).map(|authority| Self::new(Endpoint::Http(authority)))
    }

    fn new(endpoint: Endpoint) -> Self {
        DockerBackend {
            endpoint,
            client: OnceCell::new(),
            node: backend_node(
                BACKEND,
                NodeId(0),
                Resources::new(0, 0),
                NodeKind::ContainerHost,
            ),
            default_image: None,
            timeout: DEFAULT_TIMEOUT,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            stopping: Mutex::new(HashSet::new()),
            cpu_readings: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the id of the node this host is (default `n-0`). Give every
    /// host its own when several backends feed one scheduler.
    pub fn with_node_id(mut self, id: NodeId) -> Self {
        self.node.id = id;
        self
    }

    /// Sets the node's human-readable name (default: the daemon's host name).
    pub fn with_node_name(mut self, name: impl Into<String>) -> Self {
        self.node.name = Some(name.into());
        self
    }

    /// Adds a label to the node, on top of `lepton.backend`, `lepton.os`
    /// and `lepton.arch` (which it may override).
    pub fn with_node_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.node.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the node's availability zone.
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.node.zone = Some(zone.into());
        self
    }

    /// Sets the node's price per hour (default 0, unknown).
    pub fn with_price_per_hour(mut self, price: f64) -> Self {
        self.node.price_per_hour = price;
        self
    }

    /// Sets the image for tasks whose `config` has no `image`. There is no
    /// default image otherwise: such a task is refused.
    pub fn with_default_image(mut self, image: impl Into<String>) -> Self {
        self.default_image = Some(image.into());
        self
    }

    /// Sets how long one request may take (default 60 s; whole seconds,
    /// rounded up).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long [`stop`](Backend::stop) lets a container exit after
    /// SIGTERM before the daemon kills it (default 2 s; whole seconds).
    pub fn with_stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// The node id this host reports.
    pub fn node_id(&self) -> NodeId {
        self.node.id
    }

    /// Where the daemon is, as `unix:///path` or `http://host:port` (never
    /// with credentials).
    pub fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &str {
        BACKEND
    }

    /// One node: this host, with its CPU count × 1000 and total memory.
    async fn inventory(&self) -> Result<Vec<NodeSpec>, BackendError> {
        Ok(vec![self.host_node().await?])
    }

    fn validate(&self, task: &TaskSpec) -> Result<(), BackendError> {
        self.check_task(task)
    }

    /// Creates and starts the run's container, or returns the one that
    /// exists (starting it if it was only created).
    ///
    /// # Errors
    /// [`BackendError::Invalid`] for a bad image, command or task name;
    /// [`BackendError::NotFound`] when `launch.node` is not this host;
    /// [`BackendError::Unsupported`] when GPUs are asked for;
    /// [`BackendError::Rejected`] when the image is missing, the daemon
    /// refuses the container, or the name is taken by a container that is
    /// not this run's.
    async fn launch(&self, launch: &Launch) -> Result<Handle, BackendError> {
        self.create_and_start(launch).await
    }

    /// Stops the container (SIGTERM, then SIGKILL after the stop timeout)
    /// and removes it with its anonymous volumes.
    ///
    /// # Errors
    /// [`BackendError::Rejected`] when the handle's container carries
    /// another run's labels (nothing is stopped then).
    async fn stop(&self, handle: &Handle) -> Result<(), BackendError> {
        self.stop_and_remove(handle).await
    }

    /// Inspects the container; see the [module documentation](self) for
    /// the mapping.
    ///
    /// # Errors
    /// [`BackendError::Rejected`] when the handle's container carries
    /// another run's labels.
    async fn status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        self.inspect_status(handle).await
    }

    /// Every container with a [`LABEL_TASK`] label, stopped ones included,
    /// sorted by run. Containers whose labels are not numbers written by
    /// this backend are skipped.
    async fn running(&self) -> Result<Vec<Handle>, BackendError> {
        self.list_runs().await
    }

    /// One sample of the container's statistics. CPU comes from the
    /// difference between the daemon's two samples (Docker waits about a
    /// second for the second one); Podman sends one, so there CPU is the
    /// average since this backend's previous `usage` call for the
    /// container (`None` on the first call, or within 200 ms of the last);
    /// memory excludes the inactive page cache,
    /// as `docker stats` does; network and block I/O are summed over
    /// interfaces and devices. What the daemon leaves empty is `None`.
    ///
    /// # Errors
    /// [`BackendError::NotFound`] when the container is gone.
    async fn usage(&self, handle: &Handle) -> Result<Usage, BackendError> {
        self.sample_usage(handle).await
    }
}

/// What the unit tests of this backend's modules build on.
#[cfg(test)]
mod testing {
    use lepton_core::backend::Launch;
    use lepton_core::cluster::GpuSlots;
    use lepton_core::{NodeId, Resources, Run, TaskId, TaskSpec};

    use super::DockerBackend;

    /// A backend whose daemon does not exist: for what sends nothing.
    pub(super) fn backend() -> DockerBackend {
        DockerBackend::connect_unix("/nonexistent/docker.sock").expect("a path")
    }

    /// A launch of `task`'s second attempt on node 0.
    pub(super) fn launch(task: TaskSpec) -> Launch {
        Launch {
            run: Run {
                task: task.id,
                attempt: 2,
            },
            node: NodeId(0),
            task,
            gpus: GpuSlots::new(),
        }
    }

    /// A named task that sleeps in busybox.
    pub(super) fn sleeper() -> TaskSpec {
        TaskSpec::new(TaskId(7), Resources::new(500, 64))
            .with_name("web frontend")
            .with_config("image", "localhost/busybox:latest")
            .with_config("command", "  sleep\t30 ")
    }
}
