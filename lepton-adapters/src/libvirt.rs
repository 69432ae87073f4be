//! The libvirt backend: one hypervisor is one Lepton node, and each run is
//! one domain (virtual machine) on it.
//!
//! # Design
//! Run `t-7#2` becomes the persistent domain `lepton-t7-2`, defined from XML
//! this module writes and then started. The run is recorded twice: in the
//! domain name (numbers only, so nothing from the task reaches it) and in a
//! namespaced element of the domain's `<metadata>`,
//! `<lepton:run task="7" attempt="2" node="3"/>` in [`METADATA_NAMESPACE`].
//! [`running`](Backend::running) lists the domains named `lepton-t…` and
//! reads the run back from both, so a restarted Lepton adopts them. The
//! task's name goes into the domain's `<description>`, escaped; every other
//! value in the XML is a number or comes from libvirt itself.
//!
//! Domains are persistent rather than transient so that one destroyed from
//! outside Lepton stays visible, shut off with reason "destroyed", and
//! [`status`](Backend::status) can report it as failed; Lepton's own
//! [`stop`](Backend::stop) destroys *and* undefines, leaving nothing.
//!
//! libvirt's API is blocking C. Every call runs on a thread of its own
//! under a timeout ([`DEFAULT_TIMEOUT`], see
//! [`with_timeout`](LibvirtBackend::with_timeout)), so the async control
//! loop never stalls on a slow hypervisor. A libvirt connection is
//! reference-counted and thread-safe, so the backend holds one
//! [`Connect`] for its life and hands clones of it to those calls.
//! Built from a URI ([`LibvirtBackend::new`]) it opens that connection on
//! first use and reopens it after it is found broken; built from a
//! connection ([`LibvirtBackend::with_connection`]) it uses that one, which
//! lets the caller keep its own clone of the very same connection. That is
//! the reliable way to act from outside on the domains of the in-memory
//! `test:///default` hypervisor: its state lives in the process, is shared
//! by the connections open at the same time, and is gone when the last one
//! closes.
//!
//! # Domains
//! The domain type is the connection's driver (`test`, `qemu`, …) unless set
//! with [`with_domain_type`](LibvirtBackend::with_domain_type) (`kvm`, say).
//! A domain gets ceil(`cpu_milli` / 1000) vCPUs (at least one) and
//! `memory_mib` MiB of memory (at least 64 MiB for `qemu` and `kvm`, which
//! boot a real machine). It is diskless, with no network and no graphics:
//! the task's `config` is not read. Runs asking for GPUs are refused, since
//! the inventory offers none.
//!
//! # Status mapping
//! | libvirt state (reason)                                   | [`RunStatus`]         |
//! |----------------------------------------------------------|-----------------------|
//! | no state; paused (starting up)                           | `Starting`            |
//! | running, blocked, shutting down, PM-suspended, paused (other reasons) | `Running` |
//! | paused (I/O error, crashed, post-copy failed)            | `Failed`              |
//! | shut off (shutdown: the guest powered itself off)        | `Exited { code: 0 }`  |
//! | shut off (destroyed, crashed, failed, migrated, saved, …) | `Failed { reason }` |
//! | crashed                                                  | `Failed`              |
//! | no such domain                                           | `Gone`                |
//!
//! A domain destroyed from outside Lepton reads as
//! `Failed { reason: "shut off: destroyed" }`. A paused domain still holds
//! its resources, hence `Running`.
//!
//! # Errors
//! libvirt errors map to [`BackendError`]: no domain → `NotFound`; failing
//! to connect (`VIR_ERR_NO_CONNECT`, `VIR_ERR_SYSTEM_ERROR`, RPC errors) or
//! a connection that broke → `Unreachable` (retryable); libvirt's own
//! timeout or ours → `Timeout`; anything else → `Rejected`. Credentials in
//! the URI (`user:password@`) never appear in an error.
//!
//! # Usage and migration
//! [`usage`](Backend::usage) reports CPU as a rate between two readings of
//! the domain's CPU time (the previous call's, if recent, else two readings
//! [`CPU_SAMPLE_GAP`] apart) and memory as the hypervisor process's resident
//! memory where the driver reports it, else the guest's current memory.
//! There is no network or storage figure (the domains have neither).
//!
//! One backend is one hypervisor; [`with_peer`](LibvirtBackend::with_peer)
//! names other hypervisors (offered by other `LibvirtBackend`s) that its
//! domains can live-migrate to. [`migrate`](Backend::migrate) then moves a
//! running domain there with QEMU's live migration (`VIR_MIGRATE_LIVE`,
//! persistent on the peer, undefined here), renamed to the new run's domain
//! name and retagged with it, so the peer's backend adopts it like any of
//! its own; the guest keeps running throughout. The domains are diskless,
//! so no storage has to move. Migrating to a node that is not a peer is
//! `Unsupported`; the control loop then restarts the run instead. The test
//! driver cannot migrate.
//!
//! # Quick start
//! ```
//! use lepton_adapters::libvirt::LibvirtBackend;
//! use lepton_core::{Backend, Launch, NodeId, Resources, Run, RunStatus, TaskId, TaskSpec};
//!
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # runtime.block_on(async {
//! // libvirt's built-in test hypervisor: no daemon needed.
//! let backend = LibvirtBackend::new("test:///default", NodeId(1));
//! let node = backend.inventory().await?.remove(0);
//! let task = TaskSpec::new(TaskId(7), Resources::new(1_500, 256)).with_name("render <frame 9>");
//! let launch = Launch {
//!     run: Run { task: task.id, attempt: 2 },
//!     node: node.id,
//!     task,
//!     gpus: Default::default(),
//! };
//! let handle = backend.launch(&launch).await?;
//! assert_eq!(handle.id, "lepton-t7-2");
//! assert_eq!(backend.status(&handle).await?, RunStatus::Running);
//! assert_eq!(backend.running().await?, [handle.clone()]);
//! backend.stop(&handle).await?;
//! assert_eq!(backend.status(&handle).await?, RunStatus::Gone);
//! # Ok::<(), lepton_core::BackendError>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lepton_core::{
    Backend, BackendError, Handle, Launch, NodeId, NodeKind, NodeSpec, Resources, Run, RunStatus,
    TaskId, Usage,
};
/// The `virt` crate this backend is built on, so that a caller passes a
/// [`Connect`] of the same version to [`LibvirtBackend::with_connection`].
pub use virt;
use virt::connect::Connect;
use virt::domain::{
    Domain, DomainPausedReason, DomainShutoffReason, DomainShutoffReasonEnum, DomainState,
    DomainStateEnum, DomainStateReason, DomainStateReasonEnum,
};
use virt::error::{Error as VirtError, ErrorDomain, ErrorNumber};
use virt::sys;

const BACKEND: &str = "libvirt";

/// Every domain Lepton defines is named `lepton-t<task>-<attempt>`.
pub const DOMAIN_PREFIX: &str = "lepton-t";

/// The XML namespace of the `<lepton:run>` element in a domain's metadata.
pub const METADATA_NAMESPACE: &str = "https://lepton.dev/run";

const METADATA_PREFIX: &str = "lepton";

/// How long one libvirt call may take before it counts as timed out.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The gap between the two CPU-time readings of a [`usage`](Backend::usage)
/// call that has no recent reading to compare with.
pub const CPU_SAMPLE_GAP: Duration = Duration::from_millis(100);

/// A CPU-time reading older than this is not used for a rate.
const CPU_SAMPLE_MAX_AGE: Duration = Duration::from_secs(10);

/// Hypervisors that boot a real machine need some memory to do it.
const MIN_MACHINE_MEMORY_MIB: u64 = 64;

/// The longest task name put into a domain's description.
pub const MAX_TASK_NAME_CHARS: usize = 256;

/// A [`Backend`] over one libvirt hypervisor (one node). See the
/// [module docs](self) for the design and the status mapping.
pub struct LibvirtBackend {
    node: NodeId,
    timeout: Duration,
    domain_type: Option<String>,
    shared: Arc<Shared>,
    peers: HashMap<NodeId, Peer>,
}

/// A hypervisor this backend live-migrates its domains to.
struct Peer {
    shared: Arc<Shared>,
    /// Where QEMU sends the migration stream; libvirt's default (the peer's
    /// hostname) when `None`.
    migration_uri: Option<String>,
}

/// What the blocking calls share with the backend.
struct Shared {
    /// The URI to (re)open; `None` for a connection the caller gave.
    uri: Option<String>,
    /// The URI as errors show it, credentials removed.
    shown_uri: String,
    /// The `user:password` part of the URI, scrubbed from libvirt's messages.
    userinfo: Option<String>,
    connection: Mutex<Slot>,
    /// Signalled when an opening attempt ends.
    opened: Condvar,
    /// The last CPU-time reading of each domain, for rates.
    cpu_samples: Mutex<HashMap<String, CpuSample>>,
}

/// The backend's connection.
enum Slot {
    /// None yet, or the last one broke.
    Closed,
    /// A call is opening it; the others wait for it.
    Opening,
    Open(Connect),
}

#[derive(Debug, Clone, Copy)]
struct CpuSample {
    at: Instant,
    cpu_time_ns: u64,
}

/// One reading of an active domain.
#[derive(Debug, Clone, Copy)]
struct Reading {
    cpu: CpuSample,
    memory_kib: u64,
}

impl LibvirtBackend {
    /// A backend for the hypervisor at `uri` (`qemu:///system`,
    /// `qemu+ssh://host/system`, `test:///default`), offered as node `node`.
    /// Nothing is opened yet: the connection is opened on first use, and
    /// reopened after it breaks, so a backend for a hypervisor that is down
    /// is created fine and reports
    /// [`Unreachable`](BackendError::Unreachable) until it is up.
    ///
    /// The state of `test:///default` lasts only while a connection to it is
    /// open; to act on its domains from outside the backend, use
    /// [`with_connection`](Self::with_connection) and keep a clone.
    pub fn new(uri: impl Into<String>, node: NodeId) -> Self {
        let uri = uri.into();
        Self::build(Some(uri.clone()), &uri, None, node)
    }

    /// A backend using `connection`, offered as node `node`. The caller may
    /// keep clones of `connection` (they share the one underlying libvirt
    /// connection); the backend never reopens it.
    pub fn with_connection(connection: Connect, node: NodeId) -> Self {
        let uri = connection
            .uri()
            .unwrap_or_else(|_| "(libvirt connection)".to_owned());
        Self::build(None, &uri, Some(connection), node)
    }

    fn build(uri: Option<String>, shown: &str, connection: Option<Connect>, node: NodeId) -> Self {
        quiet_libvirt();
        LibvirtBackend {
            node,
            timeout: DEFAULT_TIMEOUT,
            domain_type: None,
            shared: Arc::new(Shared::new(uri, shown, connection)),
            peers: HashMap::new(),
        }
    }

    /// Lets this backend live-migrate its domains to the hypervisor at
    /// `uri`, which another `LibvirtBackend` offers as node `node` (see
    /// [`migrate`](Backend::migrate)). `migration_uri` is where QEMU sends
    /// the migration stream (`tcp://10.0.0.2`); without it libvirt uses the
    /// peer's hostname, which must then resolve from this hypervisor. The
    /// connection to the peer is opened at the first migration.
    pub fn with_peer(mut self, node: NodeId, uri: &str, migration_uri: Option<&str>) -> Self {
        let peer = Peer {
            shared: Arc::new(Shared::new(Some(uri.to_owned()), uri, None)),
            migration_uri: migration_uri.map(str::to_owned),
        };
        self.peers.insert(node, peer);
        self
    }

    /// Sets how long one libvirt call may take (default
    /// [`DEFAULT_TIMEOUT`]). A call that takes longer returns
    /// [`Timeout`](BackendError::Timeout); the connection is then reopened
    /// for the next call when the backend was built from a URI.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the domain type of the domains launched (`kvm`, `qemu`, …)
    /// instead of the connection's driver name. Checked at launch: lower-case
    /// letters and digits only.
    pub fn with_domain_type(mut self, domain_type: impl Into<String>) -> Self {
        self.domain_type = Some(domain_type.into());
        self
    }

    /// The node this hypervisor is.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The URI of the hypervisor, without credentials.
    pub fn uri(&self) -> &str {
        &self.shared.shown_uri
    }

    /// Runs `call` with the connection on a thread of its own, under the
    /// timeout.
    ///
    /// A thread rather than tokio's blocking pool: a call stuck in libvirt
    /// (a hypervisor that accepted the connection and went silent) must not
    /// hold up the runtime's shutdown, which waits for its blocking tasks.
    /// A call that timed out is abandoned; its thread ends when libvirt
    /// returns.
    ///
    /// # Panics
    /// Outside a tokio runtime with time enabled.
    async fn call<T, F>(&self, operation: &'static str, call: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Shared, &Connect) -> Result<T, BackendError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let patience = self.timeout;
        let (done, result) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("libvirt-{operation}"))
            .spawn(move || {
                let outcome = shared.connection(patience).and_then(|connection| {
                    let outcome = call(&shared, &connection);
                    if matches!(outcome, Err(BackendError::Unreachable { .. })) {
                        shared.forget_connection();
                    }
                    outcome
                });
                // The caller may have given up waiting: nothing to do then.
                let _ = done.send(outcome);
            });
        if let Err(error) = spawned {
            return Err(BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: operation.to_owned(),
                detail: format!("cannot start a thread for the libvirt call: {error}"),
            });
        }
        match tokio::time::timeout(self.timeout, result).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: operation.to_owned(),
                detail: "the libvirt call panicked".to_owned(),
            }),
            Err(_elapsed) => {
                // A stuck connection should not be handed to the next call.
                self.shared.forget_connection();
                Err(BackendError::Timeout {
                    backend: BACKEND.to_owned(),
                    operation: operation.to_owned(),
                })
            }
        }
    }

    /// The domain name of `handle`, which must be the one of its run.
    fn domain_of(&self, handle: &Handle) -> Result<String, BackendError> {
        let name = domain_name(handle.run);
        if handle.id == name {
            Ok(name)
        } else {
            Err(BackendError::Invalid {
                backend: BACKEND.to_owned(),
                what: "handle id",
                value: handle.id.clone(),
                why: "is not the domain name of the handle's run",
            })
        }
    }

    /// The current reading of an active domain; `None` when it is not
    /// running.
    async fn read(&self, name: &str) -> Result<Option<Reading>, BackendError> {
        let name = name.to_owned();
        self.call("usage", move |shared, connection| {
            let what = format!("domain {name}");
            let domain = connection
                .lookup_domain_by_name(&name)
                .map_err(|e| shared.error("usage", &what, &e))?;
            let info = domain
                .info()
                .map_err(|e| shared.error("usage", &what, &e))?;
            let at = Instant::now();
            if !domain
                .is_active()
                .map_err(|e| shared.error("usage", &what, &e))?
            {
                return Ok(None);
            }
            // QEMU reports the resident memory of its process; the test
            // driver reports nothing, and then the guest's memory will do.
            let rss_kib = domain.memory_stats(0).ok().and_then(|stats| {
                stats
                    .iter()
                    .find(|s| s.tag == sys::VIR_DOMAIN_MEMORY_STAT_RSS)
                    .map(|s| s.val)
            });
            Ok(Some(Reading {
                cpu: CpuSample {
                    at,
                    cpu_time_ns: info.cpu_time,
                },
                memory_kib: rss_kib.unwrap_or(info.memory),
            }))
        })
        .await
    }
}

impl fmt::Debug for LibvirtBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LibvirtBackend")
            .field("uri", &self.shared.shown_uri)
            .field("node", &self.node)
            .field("timeout", &self.timeout)
            .field("domain_type", &self.domain_type)
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn new(uri: Option<String>, shown: &str, connection: Option<Connect>) -> Self {
        Shared {
            uri,
            shown_uri: redact_uri(shown),
            userinfo: uri_userinfo(shown).map(str::to_owned),
            connection: Mutex::new(connection.map_or(Slot::Closed, Slot::Open)),
            opened: Condvar::new(),
            cpu_samples: Mutex::new(HashMap::new()),
        }
    }

    /// The connection, opened now if there is none. While one call opens
    /// it, the others wait up to `patience` for the outcome, so that a
    /// hypervisor that never answers ties up one thread, not one per call.
    fn connection(&self, patience: Duration) -> Result<Connect, BackendError> {
        let mut slot = lock(&self.connection);
        loop {
            match &*slot {
                Slot::Open(connection) => return Ok(connection.clone()),
                Slot::Closed => break,
                Slot::Opening => {
                    let (guard, waited) = self
                        .opened
                        .wait_timeout(slot, patience)
                        .unwrap_or_else(PoisonError::into_inner);
                    slot = guard;
                    if waited.timed_out() && matches!(*slot, Slot::Opening) {
                        return Err(BackendError::Timeout {
                            backend: BACKEND.to_owned(),
                            operation: "connect".to_owned(),
                        });
                    }
                }
            }
        }
        let Some(uri) = &self.uri else {
            // Only a URI-built backend ever closes the slot.
            return Err(self.unreachable("the connection was closed".to_owned()));
        };
        *slot = Slot::Opening;
        drop(slot);
        let opened = Connect::open(Some(uri));
        let mut slot = lock(&self.connection);
        let outcome = match opened {
            Ok(connection) => {
                *slot = Slot::Open(connection.clone());
                Ok(connection)
            }
            Err(e) => {
                *slot = Slot::Closed;
                Err(self.open_error(&e))
            }
        };
        self.opened.notify_all();
        outcome
    }

    /// Drops a connection found broken, so that the next call reopens it
    /// (only when the backend was built from a URI; an opening attempt in
    /// progress is left to finish).
    fn forget_connection(&self) {
        if self.uri.is_some() {
            let mut slot = lock(&self.connection);
            if matches!(*slot, Slot::Open(_)) {
                let broken = std::mem::replace(&mut *slot, Slot::Closed);
                drop(slot);
                // Closing may talk to the hypervisor: not under the lock.
                drop(broken);
            }
        }
    }

    /// `error` with this URI's credentials removed from its detail too (for
    /// an error that involved two hypervisors).
    fn scrub_error(&self, mut error: BackendError) -> BackendError {
        if let BackendError::Unreachable { detail, .. } | BackendError::Rejected { detail, .. } =
            &mut error
        {
            *detail = self.scrub(detail);
        }
        error
    }

    /// libvirt's message with the URI's credentials removed.
    fn scrub(&self, message: &str) -> String {
        let mut message = message.to_owned();
        if let Some(uri) = &self.uri {
            message = message.replace(uri.as_str(), &self.shown_uri);
        }
        if let Some(userinfo) = self.userinfo.as_deref().filter(|u| !u.is_empty()) {
            message = message.replace(userinfo, "***");
        }
        message
    }

    fn unreachable(&self, detail: String) -> BackendError {
        BackendError::Unreachable {
            backend: BACKEND.to_owned(),
            detail: format!("{}: {detail}", self.shown_uri),
        }
    }

    /// An error from opening the connection.
    fn open_error(&self, error: &VirtError) -> BackendError {
        match error.code().known() {
            Some(ErrorNumber::OperationTimeout) => BackendError::Timeout {
                backend: BACKEND.to_owned(),
                operation: "connect".to_owned(),
            },
            Some(
                ErrorNumber::NoConnect
                | ErrorNumber::SystemError
                | ErrorNumber::Rpc
                | ErrorNumber::AuthUnavailable,
            ) => self.unreachable(self.scrub(error.message())),
            _ => BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: "connect".to_owned(),
                detail: format!("{}: {}", self.shown_uri, self.scrub(error.message())),
            },
        }
    }

    /// An error from `operation` on an open connection; `what` names the
    /// object looked for, for `NotFound`.
    fn error(&self, operation: &str, what: &str, error: &VirtError) -> BackendError {
        let lost_connection = error.domain().is(ErrorDomain::Rpc)
            || error.domain().is(ErrorDomain::Remote)
            || error.code().is(ErrorNumber::InvalidConn)
            || error.code().is(ErrorNumber::NoConnect);
        match error.code().known() {
            Some(ErrorNumber::NoDomain) => BackendError::NotFound {
                backend: BACKEND.to_owned(),
                what: what.to_owned(),
            },
            Some(ErrorNumber::OperationTimeout) => BackendError::Timeout {
                backend: BACKEND.to_owned(),
                operation: operation.to_owned(),
            },
            Some(ErrorNumber::Rpc) => self.unreachable(self.scrub(error.message())),
            Some(ErrorNumber::SystemError) if lost_connection => {
                self.unreachable(self.scrub(error.message()))
            }
            _ if lost_connection => self.unreachable(self.scrub(error.message())),
            _ => BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: operation.to_owned(),
                detail: self.scrub(error.message()),
            },
        }
    }

    /// The domain named `name`, `None` if there is none.
    fn lookup(
        &self,
        connection: &Connect,
        operation: &str,
        name: &str,
    ) -> Result<Option<Domain>, BackendError> {
        match connection.lookup_domain_by_name(name) {
            Ok(domain) => Ok(Some(domain)),
            Err(e) if e.code().is(ErrorNumber::NoDomain) => Ok(None),
            Err(e) => Err(self.error(operation, &format!("domain {name}"), &e)),
        }
    }
}

#[async_trait]
impl Backend for LibvirtBackend {
    fn name(&self) -> &str {
        BACKEND
    }

    async fn inventory(&self) -> Result<Vec<NodeSpec>, BackendError> {
        let node = self.node;
        self.call("inventory", move |shared, connection| {
            let fail = |e: VirtError| shared.error("inventory", "node", &e);
            let info = connection.node_info().map_err(fail)?;
            let driver = connection.driver_type().map_err(fail)?;
            let capacity = Resources::new(
                u64::from(info.cpus).saturating_mul(1000),
                info.memory / 1024,
            );
            let mut spec = NodeSpec::new(node, capacity)
                .with_name(
                    connection
                        .hostname()
                        .unwrap_or_else(|_| shared.shown_uri.clone()),
                )
                .with_kind(NodeKind::Server)
                .with_label("lepton.backend", BACKEND)
                .with_label("libvirt.hypervisor", driver.to_lowercase())
                .with_label("libvirt.arch", info.model);
            if let Ok(version) = connection.hyp_version() {
                spec = spec.with_label("libvirt.hypervisor-version", version_string(version));
            }
            Ok(vec![spec])
        })
        .await
    }

    async fn launch(&self, launch: &Launch) -> Result<Handle, BackendError> {
        if launch.node != self.node {
            return Err(BackendError::NotFound {
                backend: BACKEND.to_owned(),
                what: format!("node {}", launch.node),
            });
        }
        if !launch.gpus.is_empty() {
            return Err(BackendError::Unsupported {
                backend: BACKEND.to_owned(),
                operation: "GPU passthrough",
            });
        }
        let description = launch
            .task
            .name
            .as_deref()
            .map(validate_task_name)
            .transpose()?
            .map(str::to_owned);
        if let Some(domain_type) = &self.domain_type {
            validate_domain_type(domain_type)?;
        }
        let run = launch.run;
        let node = self.node;
        let requested_type = self.domain_type.clone();
        let request = launch.task.request.clone();
        let name = domain_name(run);
        self.call("launch", move |shared, connection| {
            let what = format!("domain {name}");
            let (domain, defined_now) = match shared.lookup(connection, "launch", &name)? {
                Some(domain) => (domain, false),
                None => {
                    let domain_type = match requested_type {
                        Some(domain_type) => domain_type,
                        None => connection
                            .driver_type()
                            .map_err(|e| shared.error("launch", &what, &e))?
                            .to_lowercase(),
                    };
                    let xml = domain_xml(&DomainDefinition {
                        domain_type: &domain_type,
                        run,
                        node,
                        description: description.as_deref(),
                        vcpus: vcpus_for(request.cpu_milli),
                        memory_mib: memory_for(&domain_type, request.memory_mib),
                    });
                    match connection.define_domain_xml(&xml) {
                        Ok(domain) => (domain, true),
                        // A concurrent launch of the same run defined it first.
                        Err(e) => match shared.lookup(connection, "launch", &name)? {
                            Some(domain) => (domain, false),
                            None => return Err(shared.error("launch", &what, &e)),
                        },
                    }
                }
            };
            if let Err(e) = start(&domain) {
                let error = shared.error("launch", &what, &e);
                // A domain this call defined and could not start is not
                // left behind (unless the connection is gone).
                if defined_now && !error.is_retryable() {
                    let _ = domain.undefine();
                }
                return Err(error);
            }
            Ok(Handle {
                run,
                node,
                id: name,
            })
        })
        .await
    }

    async fn stop(&self, handle: &Handle) -> Result<(), BackendError> {
        let name = self.domain_of(handle)?;
        lock(&self.shared.cpu_samples).remove(&name);
        self.call("stop", move |shared, connection| {
            let what = format!("domain {name}");
            let gone = |e: &VirtError| e.code().is(ErrorNumber::NoDomain);
            let Some(domain) = shared.lookup(connection, "stop", &name)? else {
                return Ok(());
            };
            match domain.is_active() {
                Ok(true) => {
                    if let Err(e) = domain.destroy() {
                        // Lost a race with its own end: fine.
                        if !gone(&e) && domain.is_active().unwrap_or(true) {
                            return Err(shared.error("stop", &what, &e));
                        }
                    }
                }
                Ok(false) => {}
                Err(e) if gone(&e) => return Ok(()),
                Err(e) => return Err(shared.error("stop", &what, &e)),
            }
            // A transient domain vanished when destroyed.
            match domain.is_persistent() {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) if gone(&e) => return Ok(()),
                Err(e) => return Err(shared.error("stop", &what, &e)),
            }
            let flags =
                sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
            match domain.undefine_flags(flags) {
                Ok(()) => Ok(()),
                Err(e) if gone(&e) => Ok(()),
                Err(e) => Err(shared.error("stop", &what, &e)),
            }
        })
        .await
    }

    async fn status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        let name = self.domain_of(handle)?;
        self.call("status", move |shared, connection| {
            let Some(domain) = shared.lookup(connection, "status", &name)? else {
                return Ok(RunStatus::Gone);
            };
            let (state, reason) = domain
                .state()
                .map_err(|e| shared.error("status", &format!("domain {name}"), &e))?;
            if state.is_unknown() {
                // `state()` swallows libvirt's error; `info()` reports it.
                match domain.info() {
                    Err(e) if e.code().is(ErrorNumber::NoDomain) => return Ok(RunStatus::Gone),
                    Err(e) => return Err(shared.error("status", &format!("domain {name}"), &e)),
                    Ok(info) => {
                        return Ok(status_of(info.state, DomainStateReasonEnum::Unknown(-1)))
                    }
                }
            }
            Ok(status_of(state, reason))
        })
        .await
    }

    async fn running(&self) -> Result<Vec<Handle>, BackendError> {
        let node = self.node;
        self.call("running", move |shared, connection| {
            let domains = connection
                .list_all_domains(0)
                .map_err(|e| shared.error("running", "domains", &e))?;
            let mut handles = Vec::new();
            for domain in domains {
                // A domain undefined meanwhile has no name to read: skip it.
                let Ok(name) = domain.name() else { continue };
                let Some(run) = parse_domain_name(&name) else {
                    continue;
                };
                let tag = domain
                    .metadata(
                        sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                        Some(METADATA_NAMESPACE),
                        0,
                    )
                    .ok();
                // A domain whose tag names another run was copied or renamed
                // by hand: not one Lepton started under that name.
                if let Some(tag) = tag.as_deref().and_then(parse_run_tag) {
                    if tag.run != run {
                        continue;
                    }
                }
                handles.push(Handle {
                    run,
                    node,
                    id: name,
                });
            }
            handles.sort_by_key(|h| h.run);
            Ok(handles)
        })
        .await
    }

    async fn usage(&self, handle: &Handle) -> Result<Usage, BackendError> {
        let name = self.domain_of(handle)?;
        let idle = Usage {
            cpu_milli: Some(0),
            memory_mib: Some(0),
            ..Usage::default()
        };
        let Some(latest) = self.read(&name).await? else {
            return Ok(idle);
        };
        let previous = lock(&self.shared.cpu_samples)
            .get(&name)
            .copied()
            .filter(|p| {
                let age = latest.cpu.at.saturating_duration_since(p.at);
                (CPU_SAMPLE_GAP..=CPU_SAMPLE_MAX_AGE).contains(&age)
                    && p.cpu_time_ns <= latest.cpu.cpu_time_ns
            });
        let (from, to) = match previous {
            Some(previous) => (previous, latest),
            None => {
                tokio::time::sleep(CPU_SAMPLE_GAP).await;
                let Some(second) = self.read(&name).await? else {
                    return Ok(idle);
                };
                (latest.cpu, second)
            }
        };
        {
            let mut samples = lock(&self.shared.cpu_samples);
            samples.retain(|_, s| to.cpu.at.saturating_duration_since(s.at) <= CPU_SAMPLE_MAX_AGE);
            samples.insert(name, to.cpu);
        }
        Ok(Usage {
            cpu_milli: cpu_rate_milli(from, to.cpu),
            memory_mib: Some(to.memory_kib.div_ceil(1024)),
            ..Usage::default()
        })
    }

    /// True for the nodes given with [`with_peer`](LibvirtBackend::with_peer).
    fn can_migrate_to(&self, to: NodeId) -> bool {
        self.peers.contains_key(&to)
    }

    /// Live-migrates the domain to the peer hypervisor `to.node`, renamed
    /// to `to.run`'s domain name and tagged with `to.run`; it stays
    /// persistent there and is undefined here. Migrating a run whose domain
    /// is already on the peer under the new name returns its handle.
    ///
    /// # Errors
    /// [`BackendError::Unsupported`] when `to.node` is not a peer,
    /// [`BackendError::Invalid`] when `to.run` is another task's,
    /// [`BackendError::NotFound`] when the domain is on neither side; what
    /// libvirt refuses otherwise (the domain then stays here).
    async fn migrate(&self, handle: &Handle, to: &Launch) -> Result<Handle, BackendError> {
        let name = self.domain_of(handle)?;
        let Some(peer) = self.peers.get(&to.node) else {
            return Err(BackendError::Unsupported {
                backend: BACKEND.to_owned(),
                operation: "live migration to a node that is not a peer",
            });
        };
        if to.run.task != handle.run.task {
            return Err(BackendError::Invalid {
                backend: BACKEND.to_owned(),
                what: "migration target run",
                value: to.run.to_string(),
                why: "is not a run of the migrated task",
            });
        }
        let new_name = domain_name(to.run);
        // Unprefixed: libvirt puts it in the namespace given beside it.
        let tag = format!("<run {}/>", run_tag_attributes(to.run, to.node));
        let title = run_title(to.run);
        let peer_shared = Arc::clone(&peer.shared);
        let migration_uri = peer.migration_uri.clone();
        let patience = self.timeout;
        let moved = Handle {
            run: to.run,
            node: to.node,
            id: new_name.clone(),
        };
        lock(&self.shared.cpu_samples).remove(&name);
        self.call("migrate", move |shared, connection| {
            let what = format!("domain {name}");
            let destination = peer_shared.connection(patience)?;
            let Some(domain) = shared.lookup(connection, "migrate", &name)? else {
                // Migrated already (an earlier answer was lost)?
                return match peer_shared.lookup(&destination, "migrate", &new_name)? {
                    Some(_) => Ok(moved),
                    None => Err(BackendError::NotFound {
                        backend: BACKEND.to_owned(),
                        what,
                    }),
                };
            };
            let flags = sys::VIR_MIGRATE_LIVE
                | sys::VIR_MIGRATE_PERSIST_DEST
                | sys::VIR_MIGRATE_UNDEFINE_SOURCE;
            let migrated = domain
                .migrate(
                    &destination,
                    flags,
                    Some(&new_name),
                    migration_uri.as_deref(),
                    0,
                )
                .map_err(|e| peer_shared.scrub_error(shared.error("migrate", &what, &e)))?;
            // The tag names the new run, so that `running` adopts it there.
            let affect = sys::VIR_DOMAIN_AFFECT_LIVE | sys::VIR_DOMAIN_AFFECT_CONFIG;
            let retag = migrated
                .set_metadata(
                    sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                    Some(&tag),
                    Some(METADATA_PREFIX),
                    Some(METADATA_NAMESPACE),
                    affect,
                )
                .and_then(|()| {
                    migrated.set_metadata(
                        sys::VIR_DOMAIN_METADATA_TITLE as i32,
                        Some(&title),
                        None,
                        None,
                        affect,
                    )
                });
            if let Err(e) = retag {
                // A domain the new run's tag is missing from would be left
                // unadopted after a restart: give it up; the run restarts.
                let _ = migrated.destroy();
                let _ = migrated.undefine();
                return Err(peer_shared.error(
                    "tag the migrated",
                    &format!("domain {new_name}"),
                    &e,
                ));
            }
            Ok(moved)
        })
        .await
    }
}

/// Starts `domain` unless it already runs.
fn start(domain: &Domain) -> Result<(), VirtError> {
    if domain.is_active()? {
        return Ok(());
    }
    match domain.create() {
        Ok(()) => Ok(()),
        // A concurrent launch started it first.
        Err(_) if domain.is_active().unwrap_or(false) => Ok(()),
        Err(e) => Err(e),
    }
}

/// libvirt prints every error to stderr by default; errors come back as
/// values anyway. The handler is process-wide, so this is done once.
fn quiet_libvirt() {
    static QUIET: Once = Once::new();
    QUIET.call_once(virt::error::clear_error_callback);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data (a connection, CPU samples) stays valid if a holder panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The domain name of `run`: `lepton-t<task>-<attempt>`.
pub fn domain_name(run: Run) -> String {
    format!("{DOMAIN_PREFIX}{}-{}", run.task.0, run.attempt)
}

/// The run a domain name stands for, if it is exactly the name
/// [`domain_name`] gives (so `lepton-t07-1` and `lepton-t+7-1` are not).
pub fn parse_domain_name(name: &str) -> Option<Run> {
    let (task, attempt) = name.strip_prefix(DOMAIN_PREFIX)?.split_once('-')?;
    let run = Run {
        task: TaskId(task.parse().ok()?),
        attempt: attempt.parse().ok()?,
    };
    (domain_name(run) == name).then_some(run)
}

/// Escapes `value` for XML text and attribute values (either quote).
fn xml_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn invalid(what: &'static str, value: &str, why: &'static str) -> BackendError {
    BackendError::Invalid {
        backend: BACKEND.to_owned(),
        what,
        value: value.to_owned(),
        why,
    }
}

/// A task name fit for a domain description: no control characters (XML
/// cannot hold most of them), nothing XML forbids, not too long.
fn validate_task_name(name: &str) -> Result<&str, BackendError> {
    if name.chars().any(char::is_control) {
        return Err(invalid("task name", name, "contains a control character"));
    }
    if name.chars().any(|c| matches!(c, '\u{FFFE}' | '\u{FFFF}')) {
        return Err(invalid(
            "task name",
            name,
            "contains a character XML cannot hold",
        ));
    }
    if name.chars().count() > MAX_TASK_NAME_CHARS {
        return Err(invalid("task name", name, "is longer than 256 characters"));
    }
    Ok(name)
}

fn validate_domain_type(domain_type: &str) -> Result<(), BackendError> {
    let plain = !domain_type.is_empty()
        && domain_type
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if plain {
        Ok(())
    } else {
        Err(invalid(
            "domain type",
            domain_type,
            "must be lower-case letters and digits",
        ))
    }
}

/// ceil(`cpu_milli` / 1000), at least one.
fn vcpus_for(cpu_milli: u64) -> u64 {
    cpu_milli.div_ceil(1000).max(1)
}

fn memory_for(domain_type: &str, memory_mib: u64) -> u64 {
    let minimum = match domain_type {
        "qemu" | "kvm" => MIN_MACHINE_MEMORY_MIB,
        _ => 1,
    };
    memory_mib.max(minimum)
}

/// What a domain is defined with.
#[derive(Debug)]
struct DomainDefinition<'a> {
    domain_type: &'a str,
    run: Run,
    node: NodeId,
    /// The task's name, already validated.
    description: Option<&'a str>,
    vcpus: u64,
    memory_mib: u64,
}

/// The domain XML: diskless, no network, no graphics; the run in the name,
/// the title and the metadata. Every value is escaped.
fn domain_xml(definition: &DomainDefinition<'_>) -> String {
    let run = definition.run;
    let description = definition
        .description
        .map(|d| format!("\n  <description>{}</description>", xml_escape(d)))
        .unwrap_or_default();
    format!(
        "<domain type='{domain_type}'>\n  \
           <name>{name}</name>\n  \
           <title>{title}</title>{description}\n  \
           <metadata>\n    \
             <{prefix}:run xmlns:{prefix}=\"{namespace}\" {tag}/>\n  \
           </metadata>\n  \
           <memory unit='MiB'>{memory}</memory>\n  \
           <vcpu>{vcpus}</vcpu>\n  \
           <os><type>hvm</type></os>\n  \
           <on_poweroff>destroy</on_poweroff>\n  \
           <on_reboot>restart</on_reboot>\n  \
           <on_crash>destroy</on_crash>\n\
         </domain>\n",
        domain_type = xml_escape(definition.domain_type),
        name = xml_escape(&domain_name(run)),
        title = xml_escape(&run_title(run)),
        prefix = METADATA_PREFIX,
        namespace = xml_escape(METADATA_NAMESPACE),
        tag = run_tag_attributes(run, definition.node),
        memory = definition.memory_mib,
        vcpus = definition.vcpus,
    )
}

/// A domain's title: `Lepton run t-7#2`.
fn run_title(run: Run) -> String {
    format!("Lepton run {run}")
}

/// The attributes of the `<lepton:run>` metadata element recording `run`
/// on `node`.
fn run_tag_attributes(run: Run, node: NodeId) -> String {
    format!(
        "task=\"{}\" attempt=\"{}\" node=\"{}\"",
        run.task.0, run.attempt, node.0
    )
}

/// The run recorded in a `<lepton:run>` element, as libvirt returns it.
#[derive(Debug, PartialEq, Eq)]
struct RunTag {
    run: Run,
    node: Option<NodeId>,
}

fn parse_run_tag(element: &str) -> Option<RunTag> {
    let run = Run {
        task: TaskId(xml_attr(element, "task")?.parse().ok()?),
        attempt: xml_attr(element, "attempt")?.parse().ok()?,
    };
    let node = xml_attr(element, "node")
        .and_then(|n| n.parse().ok())
        .map(NodeId);
    Some(RunTag { run, node })
}

/// The raw value of attribute `name` in the first element of `element`.
/// Enough for the numbers this module writes; it does not unescape.
fn xml_attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let tag_end = element.find('>').unwrap_or(element.len());
    let mut rest = &element[..tag_end];
    while let Some(at) = rest.find(name) {
        let preceded_by_space = rest[..at].ends_with(char::is_whitespace);
        let after = &rest[at + name.len()..];
        if preceded_by_space {
            if let Some(value) = after.trim_start().strip_prefix('=') {
                let value = value.trim_start();
                let quote = value.chars().next().filter(|q| matches!(q, '"' | '\''))?;
                let value = &value[1..];
                return value.find(quote).map(|end| &value[..end]);
            }
        }
        rest = after;
    }
    None
}

/// How a domain in `state` (for `reason`) is doing; see the table in the
/// module docs.
fn status_of(state: DomainStateEnum, reason: DomainStateReasonEnum) -> RunStatus {
    let failed = |reason: String| RunStatus::Failed { reason };
    // `DomainStateReason` has no raw form, so its `Enum` has no `known()`.
    let reason = match reason {
        DomainStateReasonEnum::Known(reason) => Some(reason),
        DomainStateReasonEnum::Unknown(_) => None,
    };
    match (state.known(), reason) {
        (Some(DomainState::Paused), Some(DomainStateReason::Paused(paused))) => {
            match paused.known() {
                Some(DomainPausedReason::StartingUp) => RunStatus::Starting,
                Some(
                    why @ (DomainPausedReason::IOError
                    | DomainPausedReason::Crashed
                    | DomainPausedReason::PostCopyFailed),
                ) => failed(format!("paused: {why}")),
                _ => RunStatus::Running,
            }
        }
        (Some(DomainState::Shutoff), Some(DomainStateReason::Shutoff(why))) => shutoff_status(why),
        (Some(DomainState::Shutoff), _) => shutoff_status(DomainShutoffReasonEnum::Unknown(0)),
        (Some(DomainState::NoState), _) | (None, _) => RunStatus::Starting,
        (
            Some(
                DomainState::Running
                | DomainState::Blocked
                | DomainState::Paused
                | DomainState::Shutdown
                | DomainState::PMSuspended,
            ),
            _,
        ) => RunStatus::Running,
        (Some(DomainState::Crashed), _) => failed("crashed".to_owned()),
    }
}

fn shutoff_status(reason: DomainShutoffReasonEnum) -> RunStatus {
    match reason.known() {
        Some(DomainShutoffReason::Shutdown) => RunStatus::Exited { code: 0 },
        Some(why) => RunStatus::Failed {
            reason: format!("shut off: {why}"),
        },
        None => RunStatus::Failed {
            reason: "shut off: unknown reason".to_owned(),
        },
    }
}

/// CPU use between two readings, in milli-cores.
fn cpu_rate_milli(from: CpuSample, to: CpuSample) -> Option<u64> {
    let elapsed_ns = to.at.checked_duration_since(from.at)?.as_nanos();
    if elapsed_ns == 0 {
        return None;
    }
    let used_ns = u128::from(to.cpu_time_ns.checked_sub(from.cpu_time_ns)?);
    u64::try_from(used_ns * 1000 / elapsed_ns).ok()
}

/// libvirt's version number (major × 1 000 000 + minor × 1000 + release)
/// as `major.minor.release`.
fn version_string(version: u32) -> String {
    format!(
        "{}.{}.{}",
        version / 1_000_000,
        version / 1000 % 1000,
        version % 1000
    )
}

/// The `user:password` part of a URI's authority, if any.
fn uri_userinfo(uri: &str) -> Option<&str> {
    let start = uri.find("://")? + 3;
    let rest = &uri[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rfind('@').map(|at| &authority[..at])
}

/// `uri` with its user information replaced by `***`.
fn redact_uri(uri: &str) -> String {
    match uri_userinfo(uri) {
        Some(userinfo) => {
            let start = uri.find("://").map_or(0, |i| i + 3);
            format!("{}***{}", &uri[..start], &uri[start + userinfo.len()..])
        }
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use virt::domain::{DomainCrashedReasonEnum, DomainPausedReasonEnum, DomainRunningReason};

    use super::*;

    fn run(task: u64, attempt: u32) -> Run {
        Run {
            task: TaskId(task),
            attempt,
        }
    }

    fn definition(description: Option<&str>) -> DomainDefinition<'_> {
        DomainDefinition {
            domain_type: "qemu",
            run: run(7, 2),
            node: NodeId(3),
            description,
            vcpus: 2,
            memory_mib: 256,
        }
    }

    #[test]
    fn escapes_the_five_xml_specials() {
        assert_eq!(
            xml_escape(r#"a<b>&"c"'d'"#),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;"
        );
        assert_eq!(xml_escape("&amp;"), "&amp;amp;");
        assert_eq!(xml_escape("plain é"), "plain é");
    }

    #[test]
    fn domain_xml_holds_the_run() {
        let xml = domain_xml(&definition(Some("render")));
        assert!(xml.starts_with("<domain type='qemu'>"), "{xml}");
        assert!(xml.contains("<name>lepton-t7-2</name>"), "{xml}");
        assert!(xml.contains("<title>Lepton run t-7#2</title>"), "{xml}");
        assert!(xml.contains("<description>render</description>"), "{xml}");
        assert!(xml.contains("<memory unit='MiB'>256</memory>"), "{xml}");
        assert!(xml.contains("<vcpu>2</vcpu>"), "{xml}");
        assert!(!xml.contains("<graphics"), "{xml}");
        assert!(!xml.contains("<disk"), "{xml}");
        let tag = xml
            .lines()
            .find(|l| l.contains("<lepton:run"))
            .expect("a run tag");
        assert!(
            tag.contains(r#"xmlns:lepton="https://lepton.dev/run""#),
            "{tag}"
        );
        assert_eq!(
            parse_run_tag(tag),
            Some(RunTag {
                run: run(7, 2),
                node: Some(NodeId(3))
            })
        );
    }

    #[test]
    fn domain_xml_escapes_the_task_name() {
        let name = r#"</name><evil/> & "x" 'y'"#;
        let xml = domain_xml(&definition(Some(validate_task_name(name).expect("valid"))));
        assert!(!xml.contains("<evil"), "{xml}");
        assert!(
            xml.contains(
                "<description>&lt;/name&gt;&lt;evil/&gt; &amp; &quot;x&quot; &apos;y&apos;</description>"
            ),
            "{xml}"
        );
        assert_eq!(xml.matches("<name>").count(), 1, "{xml}");
    }

    #[test]
    fn domain_xml_without_a_name_has_no_description() {
        let xml = domain_xml(&definition(None));
        assert!(!xml.contains("<description>"), "{xml}");
    }

    #[test]
    fn task_names_with_control_characters_are_invalid() {
        for name in [
            "a\nb",
            "tab\there",
            "nul\0",
            "bell\u{7}",
            "c1\u{85}",
            "\u{FFFE}",
        ] {
            let error = validate_task_name(name).expect_err(name);
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
        }
        assert!(validate_task_name(&"x".repeat(MAX_TASK_NAME_CHARS + 1)).is_err());
        assert!(validate_task_name(&"é".repeat(MAX_TASK_NAME_CHARS)).is_ok());
        assert!(validate_task_name("</name><evil/>").is_ok());
    }

    #[test]
    fn domain_types_are_plain_words() {
        assert!(validate_domain_type("kvm").is_ok());
        assert!(validate_domain_type("qemu").is_ok());
        for bad in ["", "KVM", "kvm'", "k vm", "x<y"] {
            assert!(validate_domain_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_round_up_and_have_minimums() {
        assert_eq!(vcpus_for(0), 1);
        assert_eq!(vcpus_for(1), 1);
        assert_eq!(vcpus_for(1000), 1);
        assert_eq!(vcpus_for(1001), 2);
        assert_eq!(vcpus_for(2500), 3);
        assert_eq!(memory_for("qemu", 16), 64);
        assert_eq!(memory_for("kvm", 0), 64);
        assert_eq!(memory_for("qemu", 512), 512);
        assert_eq!(memory_for("test", 0), 1);
        assert_eq!(memory_for("test", 16), 16);
    }

    #[test]
    fn domain_names_round_trip() {
        for r in [run(0, 0), run(7, 2), run(u64::MAX, u32::MAX)] {
            assert_eq!(parse_domain_name(&domain_name(r)), Some(r));
        }
        assert_eq!(domain_name(run(7, 2)), "lepton-t7-2");
    }

    #[test]
    fn foreign_domain_names_do_not_parse() {
        for name in [
            "test",
            "lepton-t",
            "lepton-t7",
            "lepton-t7-",
            "lepton-t-7-2",
            "lepton-t07-2",
            "lepton-t7-02",
            "lepton-t+7-2",
            "lepton-t7-+2",
            "lepton-t7-2-3",
            "lepton-t7-2 ",
            "lepton-tx-2",
            "lepton-t7-4294967296",
            "Lepton-t7-2",
        ] {
            assert_eq!(parse_domain_name(name), None, "{name}");
        }
    }

    #[test]
    fn run_tags_parse_as_libvirt_returns_them() {
        let tag =
            r#"<lepton:run xmlns:lepton="https://lepton.dev/run" task="12" attempt="3" node="5"/>"#;
        assert_eq!(
            parse_run_tag(tag),
            Some(RunTag {
                run: run(12, 3),
                node: Some(NodeId(5))
            })
        );
        let single = "<run xmlns='https://lepton.dev/run' attempt = '1' task='9'/>";
        assert_eq!(
            parse_run_tag(single),
            Some(RunTag {
                run: run(9, 1),
                node: None
            })
        );
        assert_eq!(parse_run_tag("<run task=\"x\" attempt=\"1\"/>"), None);
        assert_eq!(parse_run_tag("<run subtask=\"1\" attempt=\"1\"/>"), None);
        assert_eq!(xml_attr("<run a=\"1\"><x b=\"2\"/></run>", "b"), None);
    }

    fn shutoff(reason: DomainShutoffReason) -> RunStatus {
        status_of(
            DomainStateEnum::Known(DomainState::Shutoff),
            DomainStateReasonEnum::Known(DomainStateReason::Shutoff(
                DomainShutoffReasonEnum::Known(reason),
            )),
        )
    }

    fn paused(reason: DomainPausedReason) -> RunStatus {
        status_of(
            DomainStateEnum::Known(DomainState::Paused),
            DomainStateReasonEnum::Known(DomainStateReason::Paused(DomainPausedReasonEnum::Known(
                reason,
            ))),
        )
    }

    #[test]
    fn status_mapping() {
        let running = status_of(
            DomainStateEnum::Known(DomainState::Running),
            DomainStateReasonEnum::Known(DomainStateReason::Running(
                virt::domain::DomainRunningReasonEnum::Known(DomainRunningReason::Booted),
            )),
        );
        assert_eq!(running, RunStatus::Running);
        assert_eq!(
            shutoff(DomainShutoffReason::Shutdown),
            RunStatus::Exited { code: 0 }
        );
        assert_eq!(
            shutoff(DomainShutoffReason::Destroyed),
            RunStatus::Failed {
                reason: "shut off: destroyed".to_owned()
            }
        );
        assert_eq!(
            shutoff(DomainShutoffReason::Crashed),
            RunStatus::Failed {
                reason: "shut off: crashed".to_owned()
            }
        );
        for reason in [
            DomainShutoffReason::Unknown,
            DomainShutoffReason::Failed,
            DomainShutoffReason::Migrated,
            DomainShutoffReason::Saved,
            DomainShutoffReason::Daemon,
            DomainShutoffReason::FromSnapshot,
        ] {
            assert!(
                matches!(shutoff(reason), RunStatus::Failed { .. }),
                "{reason:?}"
            );
        }
        assert_eq!(
            status_of(
                DomainStateEnum::Known(DomainState::Shutoff),
                DomainStateReasonEnum::Unknown(-1)
            ),
            RunStatus::Failed {
                reason: "shut off: unknown reason".to_owned()
            }
        );
        assert_eq!(paused(DomainPausedReason::StartingUp), RunStatus::Starting);
        assert_eq!(paused(DomainPausedReason::User), RunStatus::Running);
        assert_eq!(paused(DomainPausedReason::Migration), RunStatus::Running);
        assert_eq!(
            paused(DomainPausedReason::IOError),
            RunStatus::Failed {
                reason: "paused: ioerror".to_owned()
            }
        );
        let crashed = status_of(
            DomainStateEnum::Known(DomainState::Crashed),
            DomainStateReasonEnum::Known(DomainStateReason::Crashed(
                DomainCrashedReasonEnum::Unknown(0),
            )),
        );
        assert!(matches!(crashed, RunStatus::Failed { .. }), "{crashed:?}");
        for state in [
            DomainState::Blocked,
            DomainState::Shutdown,
            DomainState::PMSuspended,
        ] {
            assert_eq!(
                status_of(
                    DomainStateEnum::Known(state),
                    DomainStateReasonEnum::Unknown(0)
                ),
                RunStatus::Running,
                "{state:?}"
            );
        }
        assert_eq!(
            status_of(
                DomainStateEnum::Known(DomainState::NoState),
                DomainStateReasonEnum::Unknown(0)
            ),
            RunStatus::Starting
        );
        assert_eq!(
            status_of(
                DomainStateEnum::Unknown(99),
                DomainStateReasonEnum::Unknown(0)
            ),
            RunStatus::Starting
        );
    }

    #[test]
    fn credentials_are_redacted_from_uris() {
        assert_eq!(
            redact_uri("qemu+ssh://root:hunter2@host:22/system?keyfile=/k"),
            "qemu+ssh://***@host:22/system?keyfile=/k"
        );
        assert_eq!(
            redact_uri("qemu:///system?socket=/a@b"),
            "qemu:///system?socket=/a@b"
        );
        assert_eq!(redact_uri("test:///default"), "test:///default");
        assert_eq!(redact_uri("not a uri"), "not a uri");
        assert_eq!(uri_userinfo("qemu+tcp://alice@h/system"), Some("alice"));
    }

    #[test]
    fn libvirt_messages_are_scrubbed() {
        let backend = LibvirtBackend::new("qemu+tcp://bob:s3cret@nowhere/system", NodeId(1));
        let scrubbed = backend
            .shared
            .scrub("cannot reach qemu+tcp://bob:s3cret@nowhere/system as bob:s3cret");
        assert_eq!(
            scrubbed,
            "cannot reach qemu+tcp://***@nowhere/system as ***"
        );
        assert!(!format!("{backend:?}").contains("s3cret"));
        assert_eq!(backend.uri(), "qemu+tcp://***@nowhere/system");
    }

    #[test]
    fn cpu_rate_between_readings() {
        let at = Instant::now();
        let from = CpuSample {
            at,
            cpu_time_ns: 1_000_000_000,
        };
        let to = CpuSample {
            at: at + Duration::from_millis(500),
            cpu_time_ns: 1_250_000_000,
        };
        assert_eq!(cpu_rate_milli(from, to), Some(500));
        assert_eq!(cpu_rate_milli(to, from), None);
        assert_eq!(cpu_rate_milli(from, from), None);
    }

    #[test]
    fn versions_read_as_dotted() {
        assert_eq!(version_string(9_000_000), "9.0.0");
        assert_eq!(version_string(7_002_022), "7.2.22");
    }
}
