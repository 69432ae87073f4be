//! Lepton as a service: `lepton serve`. An HTTP API over the scheduler and
//! its [`Controller`](lepton::Controller), the local backend running each
//! task as a process, and state that survives a crash.
//!
//! - [`serve`] starts the service on a [`ServiceConfig`] and runs until its
//!   shutdown signal; docs/SERVICE.md describes the API and the config.
//! - [`Store`] keeps what was accepted and decided; [`EmbeddedStore`] (a
//!   redb file) is the default. A task is acknowledged only once it is
//!   stored, durably unless `durable = false`.
//! - After a crash, a restart loads the store, adopts the runs the backend
//!   still holds (and learns how those that ended meanwhile ended), and
//!   carries on: nothing acknowledged is lost, and no run id is started
//!   twice.

mod api;
mod browser;
mod config;
mod engine;
#[cfg(feature = "etcd")]
mod etcd;
mod http;
mod metrics;
mod store;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lepton::adapters::local::{LocalBackend, LocalConfig};
use lepton::backend::Backend;
use tracing::{info, warn};

pub use config::{
    AwsSection, ConfigError, DockerSection, EtcdSection, LibvirtSection, LocalSection,
    ServiceConfig, StoreKind, TlsSection,
};
pub use engine::{NodeView, QueueView, TaskView};
pub use store::{Change, EmbeddedStore, Finished, Store, StoreError, Stored};

/// What the service answers with, or fails to start with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed: `field` names what is wrong.
    #[error("{field}: {message}")]
    BadRequest {
        /// The field at fault (`body`, `[3]` for the fourth task, `state`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No or a wrong bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// A request a web page could have sent: to a name that is not
    /// loopback (without a token), or a write from another origin.
    #[error("{0}")]
    Forbidden(String),
    /// A write whose body is not declared `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An unknown task, node or route.
    #[error("{0}")]
    NotFound(String),
    /// A task id already submitted.
    #[error("{0}")]
    Conflict(String),
    /// A body over the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// A route that does not answer this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A body that did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    /// The scheduler refused the request (an ended task cancelled, say).
    #[error(transparent)]
    Scheduler(#[from] lepton::Error),
    /// The store could not write: nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service cannot start.
    #[error("{0}")]
    Start(String),
    /// Something the service did not expect.
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let status = match &self {
            ServiceError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ServiceError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
            ServiceError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::Conflict(_) | ServiceError::Scheduler(_) => StatusCode::CONFLICT,
            ServiceError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ServiceError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ServiceError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Start(_) | ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let field = match &self {
            ServiceError::BadRequest { field, .. } => Some(field.clone()),
            _ => None,
        };
        let body = serde_json::json!({"error": self.to_string(), "field": field});
        (status, axum::Json(body)).into_response()
    }
}

/// Runs the service until `shutdown` resolves: the backends, the store, the
/// control loop and the API. Calls `ready` with the address it listens on
/// once it accepts requests. With `store = "etcd"` it is one of several
/// instances: it answers as a follower until elected, leads while its term
/// holds, and follows again when it loses it.
///
/// # Errors
/// [`ServiceError::Start`] when it cannot start: the address is taken or
/// not loopback without a token, the data directory or store cannot be
/// opened, the stored state cannot be read.
pub async fn serve(
    config: ServiceConfig,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let token = config
        .token
        .clone()
        .or_else(|| std::env::var("LEPTON_TOKEN").ok().filter(|t| !t.is_empty()));
    if token.is_none() && !config.listen.ip().is_loopback() {
        return Err(ServiceError::Start(format!(
            "listen = {}: without a token (token in the config or LEPTON_TOKEN) the service \
             listens on loopback only",
            config.listen
        )));
    }
    if token.is_none() {
        warn!("no token configured: anyone on this machine can use the API (loopback only)");
    }
    // Files first: a bad one should not wait for the store.
    let policies = lepton::policies::PolicyContext {
        rules: match &config.rules {
            Some(path) => Some(Arc::new(
                lepton::policies::RulePolicy::from_path(path)
                    .map_err(|e| ServiceError::Start(e.to_string()))?,
            )),
            None => None,
        },
        ..lepton::policies::PolicyContext::default()
    };
    let tls_acceptor = config.tls.as_ref().map(tls::acceptor).transpose()?;
    // Private: the state, runs and logs are the service's alone.
    std::fs::create_dir_all(&config.data_dir)
        .and_then(|()| {
            std::fs::set_permissions(
                &config.data_dir,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )
        })
        .map_err(|e| {
            ServiceError::Start(format!("cannot create {}: {e}", config.data_dir.display()))
        })?;
    let context = Arc::new(Context {
        config,
        policies,
        metrics: Arc::new(metrics::Metrics::new()),
        token: token.map(Arc::from),
    });
    match context.config.store {
        StoreKind::Embedded => {
            let store = Arc::new(EmbeddedStore::open(
                &context.config.data_dir.join("state.redb"),
                context.config.durable,
            )?);
            let leading = lead(&context, store)?;
            let (listener, address) = listen(context.config.listen, tls_acceptor.is_some()).await?;
            ready(address);
            http::serve(
                listener,
                tls_acceptor,
                leading.router.clone(),
                &context,
                shutdown,
            )
            .await;
            leading.stop();
            Ok(())
        }
        StoreKind::Etcd => replicated(context, tls_acceptor, ready, shutdown).await,
    }
}

#[cfg(feature = "etcd")]
async fn replicated(
    context: Arc<Context>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    etcd::replica::serve(context, tls, ready, shutdown).await
}

#[cfg(not(feature = "etcd"))]
async fn replicated(
    _: Arc<Context>,
    _: Option<tokio_rustls::TlsAcceptor>,
    _: impl FnOnce(SocketAddr),
    _: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    Err(ServiceError::Start(
        "store = \"etcd\": this build has no etcd store (build it with the `etcd` feature)".into(),
    ))
}

/// What every term of leadership starts from.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) config: ServiceConfig,
    policies: lepton::policies::PolicyContext,
    metrics: Arc<metrics::Metrics>,
    token: Option<Arc<str>>,
}

impl Context {
    /// The checks that keep web pages out, for this configuration.
    pub(crate) fn browser_guard(&self) -> browser::BrowserGuard {
        browser::BrowserGuard {
            token_required: self.token.is_some(),
        }
    }
}

/// The control loop of a leader (of the only instance, on the embedded
/// store) and the API over it.
pub(crate) struct Leading {
    pub(crate) router: axum::Router,
    stop: tokio::sync::watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

impl Leading {
    /// Stops the control loop and waits for it (a step under way ends
    /// first).
    pub(crate) fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.thread.join();
    }
}

/// Starts leading on `store`: the backends, the control loop (which loads
/// the state and adopts the backends' runs) and the API's routes.
pub(crate) fn lead(context: &Context, store: Arc<dyn Store>) -> Result<Leading, ServiceError> {
    let config = &context.config;
    let backends = backends(config)?;
    let validators = backends.iter().cloned().collect();
    let queues = Arc::new(config.queues().map_err(ServiceError::Start)?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (engine, thread) = engine::start(
        backends,
        Arc::clone(&store),
        Arc::clone(&context.metrics),
        engine::EngineConfig {
            scheduler: config.scheduler_config(),
            policies: context.policies.clone(),
            tick: std::time::Duration::from_millis(config.tick_ms),
            max_concurrent_launches: config.max_concurrent_launches,
            policy: config.policy.clone(),
            queues: Arc::clone(&queues),
        },
        stopped,
    )?;
    let claimed = engine.view.read().tasks.keys().copied().collect();
    let api = api::Api {
        engine,
        metrics: Arc::clone(&context.metrics),
        store,
        claimed: Arc::new(parking_lot::Mutex::new(claimed)),
        openapi: api::openapi_document(&context.policies, &queues)?,
        max_tasks_per_request: config.max_tasks_per_request,
        backends: validators,
        queues,
    };
    Ok(Leading {
        router: api::router(api, config.max_body_bytes),
        stop,
        thread,
    })
}

/// Listens on `address`; the listener and the address it got (port 0: a
/// free one).
pub(crate) async fn listen(
    address: SocketAddr,
    tls: bool,
) -> Result<(tokio::net::TcpListener, SocketAddr), ServiceError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| ServiceError::Start(format!("cannot listen on {address}: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| ServiceError::Start(e.to_string()))?;
    info!(%address, tls, "listening");
    Ok((listener, address))
}

/// The backends `config` names: the local one unless `local.enabled` is
/// false, and each `[[docker]]`, `[[libvirt]]` and `[[aws]]` section.
fn backends(config: &ServiceConfig) -> Result<Vec<Arc<dyn Backend>>, ServiceError> {
    let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
    if config.local.enabled {
        let mut local = LocalConfig::new(config.data_dir.join("local"));
        local.nodes = config.local.nodes;
        local.share = config.local.share;
        local.first_node = config.local.first_node;
        if !config.local.cgroups {
            local.cgroup_mount = None;
        }
        local.user = Some(config.local.user.clone());
        let backend = LocalBackend::new(local).map_err(|e| ServiceError::Start(e.to_string()))?;
        info!(isolation = %backend.isolation(), "local runs");
        match backend.cgroups() {
            Ok(version) => info!(cgroups = version, "local runs get CPU and memory limits"),
            Err(why) => warn!(%why, "local runs get no CPU or memory limits"),
        }
        backends.push(Arc::new(backend));
    }
    for docker in &config.docker {
        backends.push(docker_backend(docker)?);
    }
    for libvirt in &config.libvirt {
        backends.push(libvirt_backend(libvirt)?);
    }
    for aws in &config.aws {
        backends.push(aws_backend(aws)?);
    }
    if backends.is_empty() {
        return Err(ServiceError::Start(
            "no backend: local.enabled = false and no [[docker]], [[libvirt]] or [[aws]] section"
                .into(),
        ));
    }
    Ok(backends)
}

#[cfg(feature = "docker")]
fn docker_backend(section: &config::DockerSection) -> Result<Arc<dyn Backend>, ServiceError> {
    use lepton::adapters::docker::DockerBackend;
    let backend = match (&section.socket, &section.url) {
        (Some(socket), None) => DockerBackend::connect_unix(socket),
        (None, Some(url)) => DockerBackend::connect_http(url),
        _ => {
            return Err(ServiceError::Start(
                "[[docker]]: give one of `socket` and `url`".into(),
            ))
        }
    }
    .map_err(|e| ServiceError::Start(e.to_string()))?
    .with_node_id(lepton::NodeId(section.node));
    let backend = match &section.image {
        Some(image) => backend.with_default_image(image.clone()),
        None => backend,
    };
    Ok(Arc::new(backend))
}

#[cfg(not(feature = "docker"))]
fn docker_backend(_: &config::DockerSection) -> Result<Arc<dyn Backend>, ServiceError> {
    Err(not_built("docker"))
}

#[cfg(feature = "libvirt")]
fn libvirt_backend(section: &config::LibvirtSection) -> Result<Arc<dyn Backend>, ServiceError> {
    use lepton::adapters::libvirt::LibvirtBackend;
    Ok(Arc::new(LibvirtBackend::new(
        section.uri.clone(),
        lepton::NodeId(section.node),
    )))
}

#[cfg(not(feature = "libvirt"))]
fn libvirt_backend(_: &config::LibvirtSection) -> Result<Arc<dyn Backend>, ServiceError> {
    Err(not_built("libvirt"))
}

#[cfg(feature = "aws")]
fn aws_backend(section: &config::AwsSection) -> Result<Arc<dyn Backend>, ServiceError> {
    use lepton::adapters::aws::AwsBackend;
    let fail = |e: lepton::backend::BackendError| ServiceError::Start(format!("[[aws]]: {e}"));
    let mut backend =
        AwsBackend::connect(section.endpoint.as_deref(), &section.region).map_err(fail)?;
    if let Some(cluster) = &section.cluster {
        backend = backend.with_cluster(cluster.clone()).map_err(fail)?;
    }
    if let Some(types) = &section.instance_types {
        backend = backend.with_instance_types(types.clone()).map_err(fail)?;
    }
    if let Some(max) = section.max_instances_per_type {
        backend = backend.with_max_instances_per_type(max);
    }
    if let Some(image) = &section.image {
        backend = backend.with_default_image(image.clone());
    }
    Ok(Arc::new(backend))
}

#[cfg(not(feature = "aws"))]
fn aws_backend(_: &config::AwsSection) -> Result<Arc<dyn Backend>, ServiceError> {
    Err(not_built("aws"))
}

/// A section for a backend this build leaves out.
#[cfg(not(all(feature = "docker", feature = "libvirt", feature = "aws")))]
fn not_built(backend: &str) -> ServiceError {
    ServiceError::Start(format!(
        "[[{backend}]]: this build has no {backend} backend (build it with the `{backend}` feature)"
    ))
}

/// A service running on threads of its own (see [`start`]); stopped when
/// dropped (runs in progress keep going, and are adopted by the next start).
#[derive(Debug)]
pub struct RunningService {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServiceError>>>,
}

impl RunningService {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops it and waits until it has stopped.
    ///
    /// # Errors
    /// What the service failed with, if it failed.
    pub fn stop(mut self) -> Result<(), ServiceError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ServiceError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| ServiceError::Internal("the service's thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Starts [`serve`] on threads of its own (an embedder's way, and the
/// tests'): returns once it listens.
///
/// # Errors
/// What [`serve`] fails to start with.
pub fn start(config: ServiceConfig, worker_threads: usize) -> Result<RunningService, ServiceError> {
    let (ready, listening) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("lepton-service".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(worker_threads.max(1))
                .enable_all()
                .build()
                .map_err(|e| ServiceError::Start(format!("runtime: {e}")))?;
            runtime.block_on(serve(
                config,
                move |address| {
                    let _ = ready.send(address);
                },
                async {
                    let _ = stopped.await;
                },
            ))
        })
        .map_err(|e| ServiceError::Start(format!("cannot start a thread: {e}")))?;
    match listening.recv() {
        Ok(address) => Ok(RunningService {
            address,
            stop: Some(stop),
            thread: Some(thread),
        }),
        // It stopped before listening: its error says why.
        Err(_) => Err(thread
            .join()
            .map_err(|_| ServiceError::Internal("the service's thread panicked".into()))?
            .err()
            .unwrap_or_else(|| ServiceError::Start("stopped before listening".into()))),
    }
}
