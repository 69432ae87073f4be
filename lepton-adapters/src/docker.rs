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
//! Docker API that bollard cannot read, so an inspection or a list that meets
//! it is repeated for up to 5 s until it reads `exited`; and its one-shot
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
//! can appear in no error and no `Debug` output.
//!
//! # Runtime
//! The futures must run inside a tokio runtime with the I/O and time drivers
//! enabled (`#[tokio::main]` does that): bollard uses tokio's sockets and
//! timers.
//!
//! # Quick start
//! ```no_run
//! use lepton_adapters::docker::DockerBackend;
//! use lepton_core::{Backend, Launch, NodeId, Resources, Run, TaskId, TaskSpec};
//!
//! # async fn demo() -> Result<(), lepton_core::BackendError> {
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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerState, ContainerStateStatusEnum, ContainerStatsResponse,
    ContainerSummary, ContainerSummaryStateEnum, HostConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StartContainerOptions, StatsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures_util::StreamExt;
use lepton_core::{
    Backend, BackendError, Handle, Labels, Launch, NodeId, NodeKind, NodeSpec, Resources, Run,
    RunStatus, TaskId, Usage,
};
use tokio::sync::OnceCell;

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

/// Longest label value accepted, in bytes.
const MAX_LABEL_BYTES: usize = 1024;
/// Longest image reference accepted, in bytes.
const MAX_IMAGE_BYTES: usize = 255;
/// Longest container id or name accepted in a handle, in bytes.
const MAX_CONTAINER_ID_BYTES: usize = 128;
const MIB: u64 = 1024 * 1024;

/// How often, and how far apart, an inspection that returns a state bollard
/// cannot read is repeated.
const UNKNOWN_STATE_RETRIES: u32 = 50;
const UNKNOWN_STATE_PAUSE: Duration = Duration::from_millis(100);

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The name of a run's container: `lepton-t<task>-<attempt>`, from numbers
/// only, so no user text ever reaches a container name.
pub fn container_name(run: Run) -> String {
    format!("lepton-t{}-{}", run.task.0, run.attempt)
}

/// Where the daemon listens. Holds no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// A unix socket path.
    Unix(String),
    /// `host:port` for plain HTTP, without user info.
    Http(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{path}"),
            Endpoint::Http(authority) => write!(f, "http://{authority}"),
        }
    }
}

/// A [`Backend`] for one Docker Engine API host (Docker or Podman).
///
/// Built with [`connect_unix`](Self::connect_unix) or
/// [`connect_http`](Self::connect_http), then configured with the `with_*`
/// methods. See the [module documentation](self) for the design, the
/// labels, and how container states map to [`RunStatus`].
pub struct DockerBackend {
    endpoint: Endpoint,
    client: OnceCell<Docker>,
    node_id: NodeId,
    node_name: Option<String>,
    node_labels: Labels,
    zone: Option<String>,
    price_per_hour: f64,
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
            .field("node_id", &self.node_id)
            .field("node_name", &self.node_name)
            .field("node_labels", &self.node_labels)
            .field("zone", &self.zone)
            .field("price_per_hour", &self.price_per_hour)
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
        let text = raw
            .to_str()
            .ok_or_else(|| invalid("socket path", raw.display().to_string(), "is not UTF-8"))?;
        let text = text.strip_prefix("unix://").unwrap_or(text);
        if text.is_empty() {
            return Err(invalid("socket path", text, "is empty"));
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
            node_id: NodeId(0),
            node_name: None,
            node_labels: Labels::new(),
            zone: None,
            price_per_hour: 0.0,
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
        self.node_id = id;
        self
    }

    /// Sets the node's human-readable name (default: the daemon's host name).
    pub fn with_node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = Some(name.into());
        self
    }

    /// Adds a label to the node, on top of `lepton.backend`, `lepton.os`
    /// and `lepton.arch` (which it may override).
    pub fn with_node_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.node_labels.insert(key.into(), value.into());
        self
    }

    /// Sets the node's availability zone.
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Sets the node's price per hour (default 0, unknown).
    pub fn with_price_per_hour(mut self, price: f64) -> Self {
        self.price_per_hour = price;
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
        self.node_id
    }

    /// Where the daemon is, as `unix:///path` or `http://host:port` (never
    /// with credentials).
    pub fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    /// The client, connected and version-negotiated on first use. A failed
    /// attempt is not cached: the next call tries again.
    async fn client(&self) -> Result<&Docker, BackendError> {
        self.client
            .get_or_try_init(|| async {
                let secs = whole_seconds(self.timeout).max(1);
                let docker = match &self.endpoint {
                    Endpoint::Unix(path) => {
                        Docker::connect_with_unix(path, secs, API_DEFAULT_VERSION)
                    }
                    Endpoint::Http(authority) => Docker::connect_with_http(
                        &format!("http://{authority}"),
                        secs,
                        API_DEFAULT_VERSION,
                    ),
                }
                .map_err(|e| self.error("connect to", &self.endpoint.to_string(), e))?;
                docker.negotiate_version().await.map_err(|e| {
                    self.error(
                        "negotiate the API version with",
                        &self.endpoint.to_string(),
                        e,
                    )
                })
            })
            .await
    }

    /// Maps a bollard error for `action` on `subject` ("inspect",
    /// "container 1f2e…").
    fn error(&self, action: &str, subject: &str, err: DockerError) -> BackendError {
        let operation = format!("{action} {subject}");
        match err {
            DockerError::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                404 => BackendError::NotFound {
                    backend: BACKEND.to_owned(),
                    what: subject.to_owned(),
                },
                408 | 504 => BackendError::Timeout {
                    backend: BACKEND.to_owned(),
                    operation,
                },
                502 | 503 => BackendError::Unreachable {
                    backend: BACKEND.to_owned(),
                    detail: format!("{}: HTTP {status_code}: {message}", self.endpoint),
                },
                _ => BackendError::Rejected {
                    backend: BACKEND.to_owned(),
                    operation,
                    detail: format!("HTTP {status_code}: {message}"),
                },
            },
            DockerError::RequestTimeoutError => BackendError::Timeout {
                backend: BACKEND.to_owned(),
                operation,
            },
            DockerError::SocketNotFoundError(_) => BackendError::Unreachable {
                backend: BACKEND.to_owned(),
                detail: format!("{}: socket does not exist", self.endpoint),
            },
            // Matched one by one: bollard's wrappers are `transparent`, so
            // their source chain skips the wrapped error itself.
            DockerError::IOError { err } => self.transport_error(operation, &err),
            DockerError::HyperLegacyError { err } => self.transport_error(operation, &err),
            DockerError::HyperResponseError { err } => self.transport_error(operation, &err),
            other => BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation,
                detail: error_chain(&other),
            },
        }
    }

    /// A failure below HTTP: a timeout somewhere in the chain is a
    /// [`BackendError::Timeout`], anything else [`BackendError::Unreachable`].
    fn transport_error(
        &self,
        operation: String,
        err: &(dyn std::error::Error + 'static),
    ) -> BackendError {
        if chain_has_io_timeout(err) {
            BackendError::Timeout {
                backend: BACKEND.to_owned(),
                operation,
            }
        } else {
            BackendError::Unreachable {
                backend: BACKEND.to_owned(),
                detail: format!("{}: {}", self.endpoint, error_chain(err)),
            }
        }
    }

    /// Everything `launch` sends, checked before any request is made.
    fn create_body(&self, launch: &Launch) -> Result<ContainerCreateBody, BackendError> {
        let task = &launch.task;
        let image = task
            .config
            .get("image")
            .or(self.default_image.as_ref())
            .ok_or_else(|| {
                invalid(
                    "image",
                    "",
                    "the task's config has no `image` and the backend no default image",
                )
            })?;
        validate_image(image)?;
        let command = match task.config.get("command") {
            Some(command) => parse_command(command)?,
            None => None,
        };

        let mut labels = HashMap::from([
            (LABEL_TASK.to_owned(), launch.run.task.0.to_string()),
            (LABEL_ATTEMPT.to_owned(), launch.run.attempt.to_string()),
            (LABEL_NODE.to_owned(), launch.node.0.to_string()),
        ]);
        if let Some(name) = &task.name {
            validate_label_value("task name", name)?;
            labels.insert(LABEL_NAME.to_owned(), name.clone());
        }

        let nano_cpus = nonzero_limit(task.request.cpu_milli, 1_000_000).map_err(|()| {
            invalid(
                "CPU request",
                task.request.cpu_milli.to_string(),
                "is too large for Docker's NanoCpus",
            )
        })?;
        let memory = nonzero_limit(task.request.memory_mib, MIB).map_err(|()| {
            invalid(
                "memory request",
                task.request.memory_mib.to_string(),
                "is too large for Docker's Memory limit",
            )
        })?;

        Ok(ContainerCreateBody {
            image: Some(image.clone()),
            cmd: command,
            labels: Some(labels),
            host_config: Some(HostConfig {
                nano_cpus,
                memory,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// The container holding `run`, if any, with its state. Labels are
    /// checked here too, not only by the daemon's filter.
    async fn find_run(
        &self,
        docker: &Docker,
        run: Run,
    ) -> Result<Option<(String, Option<ContainerSummaryStateEnum>)>, BackendError> {
        let task = format!("{LABEL_TASK}={}", run.task.0);
        let attempt = format!("{LABEL_ATTEMPT}={}", run.attempt);
        let filters = HashMap::from([("label", vec![task.as_str(), attempt.as_str()])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = through_podman_stopped(|| docker.list_containers(Some(options.clone())))
            .await
            .map_err(|e| self.error("list containers of", &run.to_string(), e))?;
        Ok(containers
            .into_iter()
            .find(|c| c.labels.as_ref().and_then(labels_run) == Some(run))
            .and_then(|c| c.id.map(|id| (id, c.state))))
    }

    /// Starts a created container. A start the daemon refuses leaves a
    /// container that can never run, so it is removed; one that failed for
    /// lack of an answer is kept for the next launch to start.
    async fn start(&self, docker: &Docker, id: &str, run: Run) -> Result<(), BackendError> {
        let result = docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| self.error("start", &format!("container {id} of {run}"), e));
        if let Err(err) = &result {
            if !err.is_retryable() {
                let _ = self.remove(docker, id).await;
            }
        }
        result
    }

    /// Removes a container and its anonymous volumes; gone already is fine.
    async fn remove(&self, docker: &Docker, id: &str) -> Result<(), BackendError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.error("remove", &format!("container {id}"), e)),
        }
    }

    /// Inspects the container of `handle`, checking it belongs to the run.
    /// `None` when the daemon does not know it.
    async fn inspect_owned(
        &self,
        docker: &Docker,
        handle: &Handle,
        action: &str,
    ) -> Result<Option<ContainerState>, BackendError> {
        validate_container_id(&handle.id)?;
        let subject = format!("container {} of {}", handle.id, handle.run);
        let result = through_podman_stopped(|| {
            docker.inspect_container(&handle.id, None::<InspectContainerOptions>)
        })
        .await;
        let inspected = match result {
            Ok(inspected) => inspected,
            Err(e) if status_code(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.error(action, &subject, e)),
        };
        let labels = inspected.config.and_then(|c| c.labels).unwrap_or_default();
        if labels_run(&labels) != Some(handle.run) {
            return Err(BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: format!("{action} {subject}"),
                detail: format!("the container does not carry the labels of {}", handle.run),
            });
        }
        Ok(Some(inspected.state.unwrap_or_default()))
    }

    fn forget_cpu_reading(&self, id: &str) {
        self.cpu_readings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    fn is_stopping(&self, id: &str) -> bool {
        self.stopping
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }

    fn set_stopping(&self, id: &str, stopping: bool) {
        let mut set = self.stopping.lock().unwrap_or_else(PoisonError::into_inner);
        if stopping {
            set.insert(id.to_owned());
        } else {
            set.remove(id);
        }
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &str {
        BACKEND
    }

    /// One node: this host, with its CPU count × 1000 and total memory.
    async fn inventory(&self) -> Result<Vec<NodeSpec>, BackendError> {
        let docker = self.client().await?;
        let info = docker
            .info()
            .await
            .map_err(|e| self.error("read system info of", &self.endpoint.to_string(), e))?;
        let cpus = info.ncpu.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        let memory_bytes = info
            .mem_total
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        if cpus == 0 || memory_bytes == 0 {
            return Err(BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: format!("read system info of {}", self.endpoint),
                detail: format!(
                    "the daemon reports NCPU {:?} and MemTotal {:?}",
                    info.ncpu, info.mem_total
                ),
            });
        }
        let capacity = Resources::new(cpus.saturating_mul(1000), memory_bytes / MIB);
        let mut node = NodeSpec::new(self.node_id, capacity)
            .with_kind(NodeKind::ContainerHost)
            .with_label("lepton.backend", BACKEND)
            .with_price_per_hour(self.price_per_hour);
        if let Some(os) = info.os_type.filter(|s| !s.is_empty()) {
            node = node.with_label("lepton.os", os);
        }
        if let Some(arch) = info.architecture.filter(|s| !s.is_empty()) {
            node = node.with_label("lepton.arch", arch);
        }
        for (key, value) in &self.node_labels {
            node = node.with_label(key.clone(), value.clone());
        }
        if let Some(name) = self
            .node_name
            .clone()
            .or(info.name.filter(|s| !s.is_empty()))
        {
            node = node.with_name(name);
        }
        if let Some(zone) = &self.zone {
            node = node.with_zone(zone.clone());
        }
        Ok(vec![node])
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
        if launch.node != self.node_id {
            return Err(BackendError::NotFound {
                backend: BACKEND.to_owned(),
                what: format!(
                    "node {} (this Docker host is {})",
                    launch.node, self.node_id
                ),
            });
        }
        if !launch.gpus.is_empty() {
            return Err(BackendError::Unsupported {
                backend: BACKEND.to_owned(),
                operation: "GPU devices",
            });
        }
        let body = self.create_body(launch)?;
        let run = launch.run;
        let name = container_name(run);
        let handle = |id: String| Handle {
            run,
            node: launch.node,
            id,
        };
        let docker = self.client().await?;

        // Three rounds: a 409 means someone created the name between our
        // look-up and our create; the next look-up finds it.
        for _ in 0..3 {
            if let Some((id, state)) = self.find_run(docker, run).await? {
                if state == Some(ContainerSummaryStateEnum::CREATED) {
                    self.start(docker, &id, run).await?;
                }
                return Ok(handle(id));
            }
            let options = CreateContainerOptionsBuilder::new().name(&name).build();
            match docker.create_container(Some(options), body.clone()).await {
                Ok(created) => {
                    self.start(docker, &created.id, run).await?;
                    return Ok(handle(created.id));
                }
                Err(e) if is_name_conflict(&e) => continue,
                Err(DockerError::DockerResponseServerError {
                    status_code: 404,
                    message,
                }) => {
                    return Err(BackendError::Rejected {
                        backend: BACKEND.to_owned(),
                        operation: format!("create container {name} for {run}"),
                        detail: format!("image not on the host (it is not pulled): {message}"),
                    })
                }
                Err(e) => {
                    return Err(self.error("create", &format!("container {name} for {run}"), e))
                }
            }
        }
        Err(BackendError::Rejected {
            backend: BACKEND.to_owned(),
            operation: format!("create container {name} for {run}"),
            detail: "the name is taken by a container without this run's labels".to_owned(),
        })
    }

    /// Stops the container (SIGTERM, then SIGKILL after the stop timeout)
    /// and removes it with its anonymous volumes.
    ///
    /// # Errors
    /// [`BackendError::Rejected`] when the handle's container carries
    /// another run's labels (nothing is stopped then).
    async fn stop(&self, handle: &Handle) -> Result<(), BackendError> {
        let docker = self.client().await?;
        if self.inspect_owned(docker, handle, "stop").await?.is_none() {
            return Ok(());
        }
        let subject = format!("container {} of {}", handle.id, handle.run);
        self.set_stopping(&handle.id, true);
        let grace = whole_seconds(self.stop_timeout);
        // The request lasts as long as the grace period, plus the usual margin.
        let patient = docker.clone().with_timeout(Duration::from_secs(
            grace.saturating_add(whole_seconds(self.timeout).max(1)),
        ));
        let options = StopContainerOptionsBuilder::new()
            .t(i32::try_from(grace).unwrap_or(i32::MAX))
            .build();
        match patient.stop_container(&handle.id, Some(options)).await {
            Ok(()) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(self.error("stop", &subject, e)),
        }
        self.remove(docker, &handle.id).await?;
        self.set_stopping(&handle.id, false);
        self.forget_cpu_reading(&handle.id);
        Ok(())
    }

    /// Inspects the container; see the [module documentation](self) for
    /// the mapping.
    ///
    /// # Errors
    /// [`BackendError::Rejected`] when the handle's container carries
    /// another run's labels.
    async fn status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        let docker = self.client().await?;
        Ok(match self.inspect_owned(docker, handle, "inspect").await? {
            None => RunStatus::Gone,
            Some(state) => status_from_state(&state, self.is_stopping(&handle.id)),
        })
    }

    /// Every container with a [`LABEL_TASK`] label, stopped ones included,
    /// sorted by run. Containers whose labels are not numbers written by
    /// this backend are skipped.
    async fn running(&self) -> Result<Vec<Handle>, BackendError> {
        let docker = self.client().await?;
        let filters = HashMap::from([("label", vec![LABEL_TASK])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = through_podman_stopped(|| docker.list_containers(Some(options.clone())))
            .await
            .map_err(|e| self.error("list", "Lepton's containers", e))?;
        let mut handles: Vec<Handle> = containers
            .iter()
            .filter_map(|c| {
                let (run, node) = summary_run(c)?;
                Some(Handle {
                    run,
                    node,
                    id: c.id.clone()?,
                })
            })
            .collect();
        handles.sort_by(|a, b| (a.run, &a.id).cmp(&(b.run, &b.id)));
        Ok(handles)
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
        validate_container_id(&handle.id)?;
        let docker = self.client().await?;
        let subject = format!("container {} of {}", handle.id, handle.run);
        let options = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(false)
            .build();
        let mut stats = docker.stats(&handle.id, Some(options));
        let sample = match stats.next().await {
            Some(Ok(sample)) => sample,
            Some(Err(e)) => {
                if status_code(&e) == Some(404) {
                    self.forget_cpu_reading(&handle.id);
                }
                return Err(self.error("read statistics of", &subject, e));
            }
            None => return Ok(Usage::default()),
        };
        let now = Instant::now();
        let mut readings = self
            .cpu_readings
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = readings
            .get(&handle.id)
            .map(|r| (r.container_ns, now.saturating_duration_since(r.at)));
        let usage = usage_from_stats(&sample, previous);
        // A reading too close to the last one would give a noisy figure
        // next time: keep the older one.
        let fresh = previous.is_none_or(|(_, elapsed)| elapsed >= MIN_CPU_INTERVAL);
        if let (Some(container_ns), true) = (container_cpu_ns(&sample), fresh) {
            readings.insert(
                handle.id.clone(),
                CpuReading {
                    container_ns,
                    at: now,
                },
            );
        }
        Ok(usage)
    }
}

// ---------------------------------------------------------------- checks

fn invalid(what: &'static str, value: impl Into<String>, why: &'static str) -> BackendError {
    BackendError::Invalid {
        backend: BACKEND.to_owned(),
        what,
        value: value.into(),
        why,
    }
}

/// An image reference: `[A-Za-z0-9._/:@-]`, 1 to 255 bytes.
fn validate_image(image: &str) -> Result<(), BackendError> {
    if image.is_empty() {
        return Err(invalid("image", image, "is empty"));
    }
    if image.len() > MAX_IMAGE_BYTES {
        return Err(invalid("image", image, "is longer than 255 bytes"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._/:@-".contains(c);
    if !image.chars().all(allowed) {
        return Err(invalid(
            "image",
            image,
            "may hold only letters, digits and . _ / : @ -",
        ));
    }
    Ok(())
}

/// A label value: free text without control characters, at most 1024 bytes.
fn validate_label_value(what: &'static str, value: &str) -> Result<(), BackendError> {
    if value.len() > MAX_LABEL_BYTES {
        return Err(invalid(what, value, "is longer than 1024 bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(what, value, "contains a control character"));
    }
    Ok(())
}

/// The command's argument vector: whitespace-separated words, none holding
/// a control character. An empty command means the image's own.
fn parse_command(command: &str) -> Result<Option<Vec<String>>, BackendError> {
    if command
        .chars()
        .any(|c| c.is_control() && !c.is_whitespace())
    {
        return Err(invalid("command", command, "contains a control character"));
    }
    let argv: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    Ok((!argv.is_empty()).then_some(argv))
}

/// A container id or name as it goes into an API path: `[A-Za-z0-9_.-]`,
/// not starting with `.` or `-`.
fn validate_container_id(id: &str) -> Result<(), BackendError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CONTAINER_ID_BYTES
        && !id.starts_with(['.', '-'])
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "container id",
            id,
            "is not a container id or name (letters, digits, _ . -)",
        ))
    }
}

/// `amount × unit` as a Docker limit; 0 means no limit.
fn nonzero_limit(amount: u64, unit: u64) -> Result<Option<i64>, ()> {
    if amount == 0 {
        return Ok(None);
    }
    amount
        .checked_mul(unit)
        .and_then(|v| i64::try_from(v).ok())
        .map(Some)
        .ok_or(())
}

/// `host:port` from `tcp://`, `http://` or bare URLs, user info dropped.
fn parse_http_url(url: &str) -> Result<String, BackendError> {
    let shown = redact_userinfo(url);
    let rest = match url.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("tcp") || scheme.eq_ignore_ascii_case("http") =>
        {
            rest
        }
        Some(_) => {
            return Err(invalid(
                "Docker URL",
                shown,
                "must be tcp://, http:// or host:port (TLS is not built in)",
            ))
        }
        None => url,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let authority = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| invalid("Docker URL", shown.clone(), "has no port"))?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
        && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
    if !host_ok {
        return Err(invalid(
            "Docker URL",
            shown,
            "has no valid host (or has a path)",
        ));
    }
    if port.parse::<u16>().is_err() {
        return Err(invalid("Docker URL", shown, "has no valid port"));
    }
    Ok(authority.to_owned())
}

/// The URL with anything between `://` and `@` replaced, for messages.
fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let shown = match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => format!("***@{host}{}", &rest[authority_end..]),
        None => rest.to_owned(),
    };
    if scheme.is_empty() {
        shown
    } else {
        format!("{scheme}://{shown}")
    }
}

// ---------------------------------------------------------------- mapping

fn whole_seconds(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// Sends `request` again while its answer is unreadable because a container
/// in it is in Podman's transient `stopped` state (a process ended, cleanup
/// not run yet). That state is outside the Docker API, so bollard refuses the
/// whole answer, a list included; it turns `exited` within about half a
/// second (longer on a loaded machine), so the request is repeated for up to
/// 5 s.
async fn through_podman_stopped<T, F, Fut>(mut request: F) -> Result<T, DockerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DockerError>>,
{
    let mut reads = 0;
    loop {
        match request().await {
            Err(DockerError::JsonDataError { message, .. })
                if message.contains("unknown variant") && reads < UNKNOWN_STATE_RETRIES =>
            {
                reads += 1;
                tokio::time::sleep(UNKNOWN_STATE_PAUSE).await;
            }
            result => return result,
        }
    }
}

fn status_code(err: &DockerError) -> Option<u16> {
    match err {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Docker answers a taken name with 409; Podman with 500 and this message.
fn is_name_conflict(err: &DockerError) -> bool {
    match err {
        DockerError::DockerResponseServerError {
            status_code: 409, ..
        } => true,
        DockerError::DockerResponseServerError {
            status_code: 500,
            message,
        } => message.contains("is already in use"),
        _ => false,
    }
}

/// The error and its sources, joined by `: `, repeated messages skipped.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

fn chain_has_io_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        current = e.source();
    }
    false
}

/// The run and node in a container's labels, if they are this backend's.
fn labels_run(labels: &HashMap<String, String>) -> Option<Run> {
    Some(Run {
        task: TaskId(labels.get(LABEL_TASK)?.parse().ok()?),
        attempt: labels.get(LABEL_ATTEMPT)?.parse().ok()?,
    })
}

fn summary_run(container: &ContainerSummary) -> Option<(Run, NodeId)> {
    let labels = container.labels.as_ref()?;
    let node = NodeId(labels.get(LABEL_NODE)?.parse().ok()?);
    Some((labels_run(labels)?, node))
}

/// A container's state as a [`RunStatus`]; `stopped_by_us` when this backend
/// asked for the stop, so a SIGTERM/SIGKILL exit is not a failure. The table
/// is in the module documentation.
fn status_from_state(state: &ContainerState, stopped_by_us: bool) -> RunStatus {
    use ContainerStateStatusEnum as S;
    let error = state.error.as_deref().filter(|e| !e.is_empty());
    match state.status {
        Some(S::RUNNING | S::PAUSED | S::STOPPING) => RunStatus::Running,
        Some(S::CREATED | S::RESTARTING) => match error {
            Some(e) => RunStatus::Failed {
                reason: format!("the container did not start: {e}"),
            },
            None => RunStatus::Starting,
        },
        Some(S::EXITED) => exited_status(state, error, stopped_by_us),
        Some(S::DEAD) => RunStatus::Failed {
            reason: match error {
                Some(e) => format!("the container is dead: {e}"),
                None => "the container is dead (the daemon failed to stop or remove it)".to_owned(),
            },
        },
        Some(S::REMOVING) => RunStatus::Gone,
        // No status string (very old daemons): fall back on the flags.
        Some(S::EMPTY) | None => {
            if state.running == Some(true) {
                RunStatus::Running
            } else if state
                .finished_at
                .as_deref()
                .is_some_and(|f| !f.is_empty() && !f.starts_with("0001-"))
            {
                exited_status(state, error, stopped_by_us)
            } else {
                RunStatus::Starting
            }
        }
    }
}

fn exited_status(state: &ContainerState, error: Option<&str>, stopped_by_us: bool) -> RunStatus {
    let Some(code) = state.exit_code else {
        return RunStatus::Failed {
            reason: "the container exited without an exit code".to_owned(),
        };
    };
    if state.oom_killed == Some(true) {
        return RunStatus::Failed {
            reason: format!("killed by the out-of-memory killer (exit code {code})"),
        };
    }
    if let Some(e) = error {
        return RunStatus::Failed {
            reason: format!("{e} (exit code {code})"),
        };
    }
    let signal = match code {
        137 => Some("SIGKILL"),
        143 => Some("SIGTERM"),
        _ => None,
    };
    match signal {
        Some(signal) if !stopped_by_us => RunStatus::Failed {
            reason: format!("killed by {signal} from outside Lepton (exit code {code})"),
        },
        _ => RunStatus::Exited { code },
    }
}

/// The CPU time a container had used when this backend last read it.
#[derive(Debug, Clone, Copy)]
struct CpuReading {
    container_ns: u64,
    at: Instant,
}

/// The shortest time between two readings that gives a CPU figure.
const MIN_CPU_INTERVAL: Duration = Duration::from_millis(200);

fn container_cpu_ns(stats: &ContainerStatsResponse) -> Option<u64> {
    stats.cpu_stats.as_ref()?.cpu_usage.as_ref()?.total_usage
}

/// CPU use from the daemon's two samples, as `docker stats` computes it:
/// the container's share of the host's CPU time, times the CPU count.
fn daemon_cpu_milli(stats: &ContainerStatsResponse) -> Option<u64> {
    let cpu = stats.cpu_stats.as_ref()?;
    let pre = stats.precpu_stats.as_ref()?;
    let cpu_delta = cpu
        .cpu_usage
        .as_ref()?
        .total_usage?
        .checked_sub(pre.cpu_usage.as_ref()?.total_usage?)?;
    let system_delta = cpu
        .system_cpu_usage?
        .checked_sub(pre.system_cpu_usage.filter(|n| *n > 0)?)
        .filter(|d| *d > 0)?;
    let cpus = cpu
        .online_cpus
        .map(u64::from)
        .filter(|n| *n > 0)
        .or_else(|| {
            let n = cpu.cpu_usage.as_ref()?.percpu_usage.as_ref()?.len();
            u64::try_from(n).ok().filter(|n| *n > 0)
        })?;
    // In f64: the product of nanosecond counters overflows u64.
    let milli = cpu_delta as f64 / system_delta as f64 * cpus as f64 * 1000.0;
    Some(milli.round() as u64)
}

/// One statistics sample as [`Usage`]. CPU use comes from the daemon's
/// previous sample when it sent one (Docker); otherwise (Podman) from
/// `previous`: the container's CPU time at this backend's last reading and
/// the wall-clock time since.
fn usage_from_stats(stats: &ContainerStatsResponse, previous: Option<(u64, Duration)>) -> Usage {
    let cpu_milli = daemon_cpu_milli(stats).or_else(|| {
        let (before_ns, elapsed) = previous.filter(|(_, e)| *e >= MIN_CPU_INTERVAL)?;
        let delta = container_cpu_ns(stats)?.checked_sub(before_ns)?;
        Some((delta as f64 / elapsed.as_nanos() as f64 * 1000.0).round() as u64)
    });

    let memory_mib = stats.memory_stats.as_ref().and_then(|m| {
        let usage = m.usage?;
        let inactive = m
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
            })
            .copied()
            .unwrap_or(0);
        // Rounded up, so a container that uses anything shows it.
        Some(usage.saturating_sub(inactive).div_ceil(MIB))
    });

    let networks = stats.networks.as_ref().filter(|n| !n.is_empty());
    let network_sum = |pick: fn(&bollard::models::ContainerNetworkStats) -> Option<u64>| {
        networks.and_then(|n| n.values().map(pick).sum::<Option<u64>>())
    };

    let blkio = stats
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .filter(|entries| !entries.is_empty());
    let blkio_sum = |op: &str| {
        blkio.map(|entries| {
            entries
                .iter()
                .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
                .filter_map(|e| e.value)
                .fold(0u64, u64::saturating_add)
        })
    };

    Usage {
        cpu_milli,
        memory_mib,
        network_rx_bytes: network_sum(|n| n.rx_bytes),
        network_tx_bytes: network_sum(|n| n.tx_bytes),
        storage_read_bytes: blkio_sum("read"),
        storage_write_bytes: blkio_sum("write"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerBlkioStatEntry, ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage,
        ContainerMemoryStats, ContainerNetworkStats,
    };
    use lepton_core::{GpuSlots, TaskSpec};

    fn launch(task: TaskSpec) -> Launch {
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

    fn backend() -> DockerBackend {
        DockerBackend::connect_unix("/nonexistent/docker.sock").expect("a path")
    }

    fn sleeper() -> TaskSpec {
        TaskSpec::new(TaskId(7), Resources::new(500, 64))
            .with_name("web frontend")
            .with_config("image", "localhost/busybox:latest")
            .with_config("command", "  sleep\t30 ")
    }

    fn state(status: ContainerStateStatusEnum, exit_code: i64) -> ContainerState {
        ContainerState {
            status: Some(status),
            exit_code: Some(exit_code),
            oom_killed: Some(false),
            error: Some(String::new()),
            ..Default::default()
        }
    }

    fn is_invalid(result: Result<impl fmt::Debug, BackendError>, expected: &str) {
        match result {
            Err(BackendError::Invalid { what, .. }) => assert_eq!(what, expected),
            other => panic!("expected Invalid {expected}, got {other:?}"),
        }
    }

    #[test]
    fn container_names_hold_only_numbers() {
        let run = Run {
            task: TaskId(7),
            attempt: 2,
        };
        assert_eq!(container_name(run), "lepton-t7-2");
        assert_eq!(run.to_string(), "t-7#2");
    }

    #[test]
    fn create_body_carries_labels_limits_and_argv() {
        let body = backend().create_body(&launch(sleeper())).expect("valid");
        assert_eq!(body.image.as_deref(), Some("localhost/busybox:latest"));
        assert_eq!(body.cmd, Some(vec!["sleep".to_owned(), "30".to_owned()]));
        let labels = body.labels.expect("labels");
        assert_eq!(labels[LABEL_TASK], "7");
        assert_eq!(labels[LABEL_ATTEMPT], "2");
        assert_eq!(labels[LABEL_NODE], "0");
        assert_eq!(labels[LABEL_NAME], "web frontend");
        let host = body.host_config.expect("host config");
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
    }

    #[test]
    fn zero_requests_set_no_limit_and_no_command_keeps_the_images() {
        let task = TaskSpec::new(TaskId(1), Resources::new(0, 0));
        let body = backend()
            .with_default_image("busybox")
            .create_body(&launch(task))
            .expect("valid");
        assert_eq!(body.image.as_deref(), Some("busybox"));
        assert_eq!(body.cmd, None);
        let host = body.host_config.expect("host config");
        assert_eq!((host.nano_cpus, host.memory), (None, None));
    }

    #[test]
    fn a_missing_image_without_default_is_invalid() {
        let task = TaskSpec::new(TaskId(1), Resources::new(100, 0));
        is_invalid(backend().create_body(&launch(task)), "image");
    }

    #[test]
    fn images_are_checked() {
        for good in [
            "busybox",
            "localhost/busybox:latest",
            "registry.example.com:5000/team/app@sha256:0123abcd",
        ] {
            assert!(validate_image(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "busy box",
            "busybox;rm -rf /",
            "busybox\n",
            "bück",
            &"a".repeat(256),
        ] {
            is_invalid(validate_image(bad), "image");
        }
    }

    #[test]
    fn task_names_are_checked() {
        for bad in ["two\nlines", "nul\0", "bell\x07", &"x".repeat(1025)] {
            let task = sleeper().with_name(bad);
            is_invalid(backend().create_body(&launch(task)), "task name");
        }
        let free_text = sleeper().with_name("Ünïcode, spaces & \"quotes\" = fine");
        assert!(backend().create_body(&launch(free_text)).is_ok());
        assert!(validate_label_value("task name", &"x".repeat(1024)).is_ok());
    }

    #[test]
    fn commands_are_split_and_checked() {
        assert_eq!(parse_command("   ").expect("valid"), None);
        assert_eq!(
            parse_command("sh -c 'echo hi'").expect("valid"),
            Some(
                vec!["sh", "-c", "'echo", "hi'"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )
        );
        is_invalid(parse_command("sleep\u{0}30"), "command");
    }

    #[test]
    fn oversized_requests_are_invalid() {
        let task =
            TaskSpec::new(TaskId(1), Resources::new(u64::MAX, 1)).with_config("image", "busybox");
        is_invalid(backend().create_body(&launch(task)), "CPU request");
        let task = TaskSpec::new(TaskId(1), Resources::new(1, u64::MAX / 2))
            .with_config("image", "busybox");
        is_invalid(backend().create_body(&launch(task)), "memory request");
    }

    #[test]
    fn container_ids_are_checked_before_reaching_a_path() {
        assert!(validate_container_id("2cd0bf619b65cf39").is_ok());
        assert!(validate_container_id("lepton-t7-2").is_ok());
        for bad in ["", "..", "../images/json", "a/b", "a?b", "-x", "a b"] {
            is_invalid(validate_container_id(bad), "container id");
        }
    }

    #[test]
    fn http_urls_lose_their_credentials() {
        assert_eq!(
            parse_http_url("tcp://10.0.0.5:2375").expect("ok"),
            "10.0.0.5:2375"
        );
        assert_eq!(
            parse_http_url("http://docker.local:2375/").expect("ok"),
            "docker.local:2375"
        );
        assert_eq!(
            parse_http_url("localhost:2375").expect("ok"),
            "localhost:2375"
        );
        assert_eq!(
            parse_http_url("tcp://[::1]:2375").expect("ok"),
            "[::1]:2375"
        );
        assert_eq!(
            parse_http_url("http://admin:s3cret@docker.local:2375").expect("ok"),
            "docker.local:2375"
        );
        let backend =
            DockerBackend::connect_http("http://admin:s3cret@docker.local:2375").expect("ok");
        assert!(!format!("{backend:?}").contains("s3cret"));
        assert_eq!(backend.endpoint(), "http://docker.local:2375");

        for bad in [
            "https://admin:s3cret@docker.local:2376",
            "http://admin:s3cret@docker.local",
            "http://admin:s3cret@docker.local:2375/v1.41",
            "http://admin:s3cret@:2375",
            "ssh://admin:s3cret@host:22",
        ] {
            let err = parse_http_url(bad).expect_err(bad);
            let text = err.to_string();
            assert!(!text.contains("s3cret"), "{text}");
            assert!(matches!(err, BackendError::Invalid { .. }), "{text}");
        }
    }

    #[test]
    fn launching_on_another_node_or_with_gpus_is_refused_before_any_request() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let backend = backend().with_node_id(NodeId(3));
        let mut other_node = launch(sleeper());
        other_node.node = NodeId(4);
        let err = rt
            .block_on(backend.launch(&other_node))
            .expect_err("wrong node");
        assert!(matches!(err, BackendError::NotFound { .. }), "{err}");

        let mut with_gpu = launch(sleeper());
        with_gpu.node = NodeId(3);
        with_gpu.gpus.push(0);
        let err = rt.block_on(backend.launch(&with_gpu)).expect_err("gpus");
        assert!(matches!(err, BackendError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn a_missing_socket_is_unreachable_and_retryable() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let err = rt
            .block_on(backend().launch(&launch(sleeper())))
            .expect_err("no daemon");
        assert!(matches!(err, BackendError::Unreachable { .. }), "{err}");
        assert!(err.is_retryable());
    }

    #[test]
    fn daemon_errors_map_to_backend_errors() {
        let backend = backend();
        let server = |status_code: u16| DockerError::DockerResponseServerError {
            status_code,
            message: "said so".to_owned(),
        };
        let map = |err| backend.error("inspect", "container abc", err);
        assert!(
            matches!(map(server(404)), BackendError::NotFound { what, .. } if what == "container abc")
        );
        for code in [400, 409, 500] {
            assert!(
                matches!(map(server(code)), BackendError::Rejected { .. }),
                "{code}"
            );
        }
        for code in [502, 503] {
            assert!(
                matches!(map(server(code)), BackendError::Unreachable { .. }),
                "{code}"
            );
        }
        for code in [408, 504] {
            assert!(
                matches!(map(server(code)), BackendError::Timeout { .. }),
                "{code}"
            );
        }
        assert!(matches!(
            map(DockerError::RequestTimeoutError),
            BackendError::Timeout { .. }
        ));
        let io = |kind| DockerError::IOError {
            err: std::io::Error::new(kind, "boom"),
        };
        assert!(matches!(
            map(io(std::io::ErrorKind::ConnectionRefused)),
            BackendError::Unreachable { .. }
        ));
        assert!(matches!(
            map(io(std::io::ErrorKind::TimedOut)),
            BackendError::Timeout { .. }
        ));
        assert!(matches!(
            map(DockerError::APIVersionParseError {}),
            BackendError::Rejected { .. }
        ));
    }

    #[test]
    fn a_silent_server_times_out() {
        // Accepts connections and never answers.
        let dir = std::env::temp_dir().join(format!("lepton-silent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("docker.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                held.push(stream);
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let backend = DockerBackend::connect_unix(&path)
            .expect("path")
            .with_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = rt.block_on(backend.inventory()).expect_err("silent");
        assert!(matches!(err, BackendError::Timeout { .. }), "{err}");
        assert!(err.is_retryable());
        assert!(started.elapsed() < Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn live_states_map_to_running_or_starting() {
        use ContainerStateStatusEnum as S;
        assert_eq!(
            status_from_state(&state(S::RUNNING, 0), false),
            RunStatus::Running
        );
        assert_eq!(
            status_from_state(&state(S::PAUSED, 0), false),
            RunStatus::Running
        );
        assert_eq!(
            status_from_state(&state(S::CREATED, 0), false),
            RunStatus::Starting
        );
        assert_eq!(
            status_from_state(&state(S::RESTARTING, 0), false),
            RunStatus::Starting
        );
        assert_eq!(
            status_from_state(&state(S::REMOVING, 0), false),
            RunStatus::Gone
        );
    }

    #[test]
    fn exits_map_to_exited_unless_killed() {
        use ContainerStateStatusEnum as S;
        for code in [0, 1, 2, 139] {
            assert_eq!(
                status_from_state(&state(S::EXITED, code), false),
                RunStatus::Exited { code }
            );
        }
        for code in [137, 143] {
            assert!(matches!(
                status_from_state(&state(S::EXITED, code), false),
                RunStatus::Failed { reason } if reason.contains("from outside")
            ));
            // Our own stop ends with the same codes: not a failure.
            assert_eq!(
                status_from_state(&state(S::EXITED, code), true),
                RunStatus::Exited { code }
            );
        }
    }

    #[test]
    fn oom_errors_and_dead_containers_are_failures() {
        use ContainerStateStatusEnum as S;
        let oom = ContainerState {
            oom_killed: Some(true),
            ..state(S::EXITED, 137)
        };
        assert!(matches!(
            status_from_state(&oom, true),
            RunStatus::Failed { reason } if reason.contains("out-of-memory")
        ));
        let not_started = ContainerState {
            error: Some("exec: \"nope\": executable file not found".to_owned()),
            ..state(S::CREATED, 127)
        };
        assert!(matches!(
            status_from_state(&not_started, false),
            RunStatus::Failed { reason } if reason.contains("executable file not found")
        ));
        assert!(matches!(
            status_from_state(&state(S::DEAD, 0), false),
            RunStatus::Failed { .. }
        ));
        let no_code = ContainerState {
            exit_code: None,
            ..state(S::EXITED, 0)
        };
        assert!(matches!(
            status_from_state(&no_code, false),
            RunStatus::Failed { .. }
        ));
    }

    #[test]
    fn stats_become_usage() {
        let cpu = |total: u64, system: u64| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(4),
            ..Default::default()
        };
        let network = |rx: u64, tx: u64| ContainerNetworkStats {
            rx_bytes: Some(rx),
            tx_bytes: Some(tx),
            ..Default::default()
        };
        let io = |op: &str, value: u64| ContainerBlkioStatEntry {
            op: Some(op.to_owned()),
            value: Some(value),
            ..Default::default()
        };
        let stats = ContainerStatsResponse {
            // Half of one of four CPUs: 1/8 of the system's time.
            cpu_stats: Some(cpu(1_500_000_000, 20_000_000_000)),
            precpu_stats: Some(cpu(1_000_000_000, 16_000_000_000)),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(10 * MIB + 1),
                stats: Some(HashMap::from([("inactive_file".to_owned(), 2 * MIB)])),
                ..Default::default()
            }),
            networks: Some(HashMap::from([
                ("eth0".to_owned(), network(100, 10)),
                ("eth1".to_owned(), network(20, 2)),
            ])),
            blkio_stats: Some(ContainerBlkioStats {
                io_service_bytes_recursive: Some(vec![
                    io("Read", 4096),
                    io("read", 4096),
                    io("Write", 512),
                    io("Total", 8704),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            usage_from_stats(&stats, None),
            Usage {
                cpu_milli: Some(500),
                memory_mib: Some(9),
                network_rx_bytes: Some(120),
                network_tx_bytes: Some(12),
                storage_read_bytes: Some(8192),
                storage_write_bytes: Some(512),
            }
        );
    }

    #[test]
    fn empty_stats_are_none() {
        let stats = ContainerStatsResponse {
            // One sample only: no CPU delta.
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(5),
                    ..Default::default()
                }),
                system_cpu_usage: Some(5),
                online_cpus: Some(1),
                ..Default::default()
            }),
            networks: Some(HashMap::new()),
            blkio_stats: Some(ContainerBlkioStats {
                io_service_bytes_recursive: Some(Vec::new()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(usage_from_stats(&stats, None), Usage::default());
        // Podman: no previous sample from the daemon, but our own reading
        // from two seconds ago; half a second of CPU time since then is a
        // quarter of a CPU.
        let mut stats = stats;
        if let Some(cpu) = stats.cpu_stats.as_mut() {
            cpu.cpu_usage = Some(ContainerCpuUsage {
                total_usage: Some(1 + 500_000_000),
                ..Default::default()
            });
        }
        let two_seconds = Duration::from_secs(2);
        assert_eq!(
            usage_from_stats(&stats, Some((1, two_seconds))).cpu_milli,
            Some(250)
        );
        // Readings too close together give no figure.
        let too_soon = Duration::from_millis(10);
        assert_eq!(
            usage_from_stats(&stats, Some((1, too_soon))).cpu_milli,
            None
        );
    }
}
