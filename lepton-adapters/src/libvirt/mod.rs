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
//! the URI (`user:password@`) never appear in an error: they are removed
//! from libvirt's messages wherever they stand, and the messages then pass
//! through the crate's one redaction rule (user information, secret query
//! values and AWS access key ids become `***`).
//!
//! # Usage and migration
//! [`usage`](Backend::usage) reports CPU as a rate between two readings of
//! the domain's CPU time (the previous call's, if recent, else two readings
//! 100 ms apart) and memory as the hypervisor process's resident
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
//! use lepton_core::backend::{Backend, Launch, RunStatus};
//! use lepton_core::{NodeId, Resources, Run, TaskId, TaskSpec};
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
//! # Ok::<(), lepton_core::backend::BackendError>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// One file per responsibility: `client` runs the blocking calls and maps
// libvirt's errors, `domain` names and writes domains, `inventory` sizes
// the node, `launch` launches, stops and migrates, `status` reads and
// adopts domains, `usage` measures them.
mod client;
mod domain;
mod inventory;
mod launch;
mod status;
mod usage;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lepton_core::backend::{Backend, BackendError, Handle, Launch, RunStatus, Usage};
use lepton_core::{NodeId, NodeSpec, TaskSpec};
use virt::connect::Connect;

use self::client::{quiet_libvirt, Shared};
pub use self::domain::{domain_name, parse_domain_name};

const BACKEND: &str = "libvirt";

/// Every domain Lepton defines is named `lepton-t<task>-<attempt>`.
pub const DOMAIN_PREFIX: &str = "lepton-t";

/// The XML namespace of the `<lepton:run>` element in a domain's metadata.
pub const METADATA_NAMESPACE: &str = "https://lepton.dev/run";

const METADATA_PREFIX: &str = "lepton";

/// How long one libvirt call may take before it counts as timed out.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// connection); the backend never reopens it. The connection comes from
    /// the `virt` crate, in the version this crate is built with (0.5):
    /// depend on it to open one.
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

#[async_trait]
impl Backend for LibvirtBackend {
    fn name(&self) -> &str {
        BACKEND
    }

    async fn inventory(&self) -> Result<Vec<NodeSpec>, BackendError> {
        Ok(vec![self.hypervisor_node().await?])
    }

    fn validate(&self, task: &TaskSpec) -> Result<(), BackendError> {
        crate::shared::launch_config::refuse_gpus(BACKEND, task, "GPU passthrough")
    }

    async fn launch(&self, launch: &Launch) -> Result<Handle, BackendError> {
        self.define_and_start(launch).await
    }

    async fn stop(&self, handle: &Handle) -> Result<(), BackendError> {
        self.destroy_and_undefine(handle).await
    }

    async fn status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        self.domain_status(handle).await
    }

    async fn running(&self) -> Result<Vec<Handle>, BackendError> {
        self.list_runs().await
    }

    async fn usage(&self, handle: &Handle) -> Result<Usage, BackendError> {
        self.sample_usage(handle).await
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
        self.migrate_live(handle, to).await
    }
}
