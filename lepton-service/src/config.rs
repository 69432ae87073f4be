//! `lepton serve`'s configuration: a TOML file, every key optional, unknown
//! keys and bad values refused with their line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lepton::admission::{Admission, QueueSpec};
use lepton::scheduler::{RetryPolicy, SchedulerConfig};
use serde::Deserialize;

/// The service's settings; [`Default`] is what `lepton serve` runs with no
/// file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Where the API listens (default `127.0.0.1:7700`).
    pub listen: SocketAddr,
    /// Where state, runs and logs go (default `./lepton-data`).
    pub data_dir: PathBuf,
    /// The bearer token every request but `/healthz` must carry; also read
    /// from `LEPTON_TOKEN`. Without one the service listens on loopback
    /// only.
    pub token: Option<String>,
    /// The placement policy (a name `lepton policies` lists; default
    /// `bestfit`).
    pub policy: String,
    /// The rules file (TOML or JSON) of `policy = "rule"`; also what a
    /// swap to `rule` through the API uses.
    pub rules: Option<PathBuf>,
    /// A node silent this long (its backend's inventory did not list it)
    /// is declared down and its tasks placed elsewhere; none by default.
    pub heartbeat_timeout_s: Option<u64>,
    /// Retries of failed runs (`[retry.batch]`, `[retry.service]`).
    pub retry: RetrySection,
    /// Whether each commit of the store is synced to disk (default true).
    pub durable: bool,
    /// The largest request body accepted, in bytes (default 8 MiB).
    pub max_body_bytes: usize,
    /// The most tasks in one `POST /v1/tasks` (default 10,000).
    pub max_tasks_per_request: usize,
    /// Seconds a client has to send a request's headers (and, over TLS,
    /// to finish the handshake); an idle kept-alive connection is closed
    /// after as long (default 10).
    pub header_timeout_s: u64,
    /// Seconds a client has to send a request's body (default 30).
    pub body_timeout_s: u64,
    /// Connections served at once; more wait until one closes (default
    /// 1,024).
    pub max_connections: usize,
    /// Milliseconds between two steps of the control loop (default 100).
    pub tick_ms: u64,
    /// Launches in flight at once (default 64).
    pub max_concurrent_launches: usize,
    /// Whether `/metrics` is served without the token (default false: it
    /// needs it, as every route but `/healthz` does).
    pub public_metrics: bool,
    /// The local backend.
    pub local: LocalSection,
    /// Serve HTTPS with this certificate and key (`[tls]`); plain HTTP
    /// without.
    pub tls: Option<TlsSection>,
    /// Docker Engine API hosts (`[[docker]]`), each one node.
    pub docker: Vec<DockerSection>,
    /// libvirt hypervisors (`[[libvirt]]`), each one node.
    pub libvirt: Vec<LibvirtSection>,
    /// AWS EC2 regions (`[[aws]]`), one node per instance type.
    pub aws: Vec<AwsSection>,
    /// Where the state is kept: `embedded` (default, a file under
    /// `data_dir`) or `etcd` (the `[etcd]` section; several instances
    /// elect a leader).
    pub store: StoreKind,
    /// The etcd cluster of `store = "etcd"`.
    pub etcd: Option<EtcdSection>,
    /// Backfill with a reservation: the highest-priority task that finds
    /// no node holds the node that frees soonest by the running tasks'
    /// `timeout_ms`, and other tasks go there only if they will have ended
    /// by then (default false).
    pub backfill: bool,
    /// Tenant queues (`[[queue]]`: `name`, `weight`, `max = { cpu_milli,
    /// memory_mib, gpu_milli }`): a task naming one in `queue` waits there
    /// until the queue's fair share and maxima admit it. A task naming no
    /// queue goes straight to the scheduler.
    pub queue: Vec<QueueSpec>,
}

/// `store = …`: where the state is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A redb file under `data_dir`; one instance.
    #[default]
    Embedded,
    /// An etcd cluster; instances sharing it elect one leader.
    Etcd,
}

/// `[etcd]`: the cluster, the keys and the leader's lease.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdSection {
    /// Client URLs of its members (default `http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// Every key the service writes starts with it (default `/lepton/`).
    pub prefix: String,
    /// Seconds the leader's lease lasts unless renewed (renewed every
    /// third of it; default 10).
    pub lease_ttl_s: u64,
    /// The URL other instances name as the leader's when this one leads
    /// (default `http://` and the listen address).
    pub advertise: Option<String>,
    /// Operations in one etcd transaction: etcd's `--max-txn-ops`
    /// (default 128, etcd's own default).
    pub max_txn_ops: usize,
    /// A user and password for etcd's authentication; the password is
    /// also read from `LEPTON_ETCD_PASSWORD`.
    pub user: Option<String>,
    /// See `user`.
    pub password: Option<String>,
    /// The CA certificate that signed the members' (PEM): TLS to etcd.
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM), with `key`, for etcd's client-cert
    /// authentication.
    pub cert: Option<PathBuf>,
    /// See `cert`.
    pub key: Option<PathBuf>,
}

impl Default for EtcdSection {
    fn default() -> Self {
        EtcdSection {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            prefix: "/lepton/".to_owned(),
            lease_ttl_s: 10,
            advertise: None,
            max_txn_ops: 128,
            user: None,
            password: None,
            ca: None,
            cert: None,
            key: None,
        }
    }
}

/// `[[libvirt]]`: one hypervisor as a node, each run a VM.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibvirtSection {
    /// Its connection URI (`qemu:///system`, `qemu+tcp://host/system`,
    /// `test:///default`).
    pub uri: String,
    /// Its node id, unique among all backends' nodes.
    pub node: u64,
}

/// `[[aws]]`: EC2 in one region, one node per instance type, each run an
/// instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    /// The region (`us-east-1`).
    pub region: String,
    /// Another endpoint than AWS's (a local emulator, a VPC endpoint).
    pub endpoint: Option<String>,
    /// The machine image of tasks whose config names none.
    pub image: Option<String>,
    /// The cluster name its instances are tagged with (several services
    /// sharing an account keep apart by it).
    pub cluster: Option<String>,
    /// The instance types offered (default: the backend's list).
    pub instance_types: Option<Vec<String>>,
    /// Instances of one type at once, at most.
    pub max_instances_per_type: Option<u32>,
}

/// `[[docker]]`: one Docker Engine API host (Docker or Podman) as a node.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSection {
    /// Its unix socket.
    pub socket: Option<PathBuf>,
    /// Or its URL (`http://host:2375`).
    pub url: Option<String>,
    /// Its node id, unique among all backends' nodes.
    pub node: u64,
    /// The image of tasks whose config names none.
    pub image: Option<String>,
}

/// `[tls]`: the certificate chain and private key, PEM files.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The certificate chain (PEM), the server's first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[retry]`: how failed runs are retried, for batch and service tasks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySection {
    /// Batch tasks (default: 3 retries, 5 s apart).
    pub batch: RetryRule,
    /// Service tasks (default: without limit, 5 s doubling to 5 min).
    pub service: RetryRule,
}

impl Default for RetrySection {
    fn default() -> Self {
        RetrySection {
            batch: RetryRule::from(RetryPolicy::BATCH),
            service: RetryRule::from(RetryPolicy::SERVICE),
        }
    }
}

/// One kind of task's retries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRule {
    /// Retries after the first run; absent: without limit.
    pub max_retries: Option<u32>,
    /// Wait before the first retry, in milliseconds.
    pub delay_ms: u64,
    /// The wait doubles up to this, in milliseconds.
    pub max_delay_ms: u64,
}

impl From<RetryPolicy> for RetryRule {
    fn from(policy: RetryPolicy) -> Self {
        RetryRule {
            max_retries: policy.max_retries,
            delay_ms: policy.delay.as_millis() as u64,
            max_delay_ms: policy.max_delay.as_millis() as u64,
        }
    }
}

impl RetryRule {
    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            delay: Duration::from_millis(self.delay_ms),
            max_delay: Duration::from_millis(self.max_delay_ms.max(self.delay_ms)),
        }
    }
}

/// `[local]`: this machine's processes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalSection {
    /// Whether this machine runs tasks (default true).
    pub enabled: bool,
    /// The id of its first node (default 0); the others follow.
    pub first_node: u64,
    /// Nodes offered, each an equal part of `share` of the machine
    /// (default 1).
    pub nodes: u32,
    /// The share of the machine offered, in (0, 1] (default 1).
    pub share: f64,
    /// Whether runs get cgroup limits (default true; where the machine
    /// offers none, the service says so at start).
    pub cgroups: bool,
    /// The user tasks run as when the service runs as root (default
    /// `nobody`); the service's own user's name runs them as itself. Not
    /// root, the service cannot switch: it says so at start.
    pub user: String,
}

impl Default for LocalSection {
    fn default() -> Self {
        LocalSection {
            enabled: true,
            first_node: 0,
            nodes: 1,
            share: 1.0,
            cgroups: true,
            user: "nobody".to_owned(),
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            data_dir: PathBuf::from("lepton-data"),
            token: None,
            policy: "bestfit".to_owned(),
            rules: None,
            heartbeat_timeout_s: None,
            retry: RetrySection::default(),
            durable: true,
            max_body_bytes: 8 << 20,
            max_tasks_per_request: 10_000,
            header_timeout_s: 10,
            body_timeout_s: 30,
            max_connections: 1_024,
            tick_ms: 100,
            max_concurrent_launches: 64,
            public_metrics: false,
            local: LocalSection::default(),
            tls: None,
            docker: Vec::new(),
            libvirt: Vec::new(),
            aws: Vec::new(),
            store: StoreKind::Embedded,
            etcd: None,
            backfill: false,
            queue: Vec::new(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file (or `<default>`).
    pub source_name: String,
    /// The line at fault, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl ServiceConfig {
    /// The scheduler's tunables this configuration sets.
    pub fn scheduler_config(&self) -> SchedulerConfig {
        let mut config = SchedulerConfig::default();
        config.retry_batch = self.retry.batch.policy();
        config.retry_service = self.retry.service.policy();
        config.heartbeat_timeout = self.heartbeat_timeout_s.map(Duration::from_secs);
        config.backfill = self.backfill;
        config
    }

    /// The tenant queues this configuration declares (`[[queue]]`), none
    /// holding a task.
    ///
    /// # Errors
    /// A queue's path malformed or declared twice, or its weight not a
    /// positive number, named.
    pub fn queues(&self) -> Result<Admission, String> {
        let mut admission = Admission::new();
        for queue in &self.queue {
            admission
                .add_queue(queue.clone())
                .map_err(|e| format!("[[queue]] {:?}: {e}", queue.name))?;
        }
        Ok(admission)
    }

    /// Reads a configuration file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and the line: unreadable, not TOML,
    /// an unknown key, a value of the wrong type or out of range.
    pub fn from_path(path: &Path) -> Result<ServiceConfig, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::from_toml(&text, &name)
    }

    /// Parses TOML text; `source_name` names it in errors.
    ///
    /// # Errors
    /// As [`from_path`](Self::from_path).
    pub fn from_toml(text: &str, source_name: &str) -> Result<ServiceConfig, ConfigError> {
        let config: ServiceConfig = toml::from_str(text).map_err(|e| ConfigError {
            source_name: source_name.to_owned(),
            line: e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1),
            message: e.message().to_owned(),
        })?;
        config.validate(source_name)?;
        Ok(config)
    }

    /// Checks the values a type cannot.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key and its value.
    pub fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError {
            source_name: source_name.to_owned(),
            line: None,
            message,
        };
        if lepton::policies::by_name(&self.policy).is_err() && self.policy != "rule" {
            return Err(bad(format!(
                "policy = {:?} is not a policy (valid: {})",
                self.policy,
                lepton::policies::policy_names().join(", ")
            )));
        }
        if self.policy == "rule" && self.rules.is_none() {
            return Err(bad(
                "policy = \"rule\" needs its rules: rules = \"FILE\" (TOML or JSON)".into(),
            ));
        }
        if self.heartbeat_timeout_s == Some(0) {
            return Err(bad("heartbeat_timeout_s = 0: at least 1 second".into()));
        }
        if self.token.as_deref().is_some_and(str::is_empty) {
            return Err(bad(
                "token = \"\": an empty token would let anyone in".into()
            ));
        }
        for (key, value, range) in [
            (
                "max_body_bytes",
                self.max_body_bytes as u64,
                1_024..=(1u64 << 30),
            ),
            (
                "max_tasks_per_request",
                self.max_tasks_per_request as u64,
                1..=1_000_000,
            ),
            ("tick_ms", self.tick_ms, 1..=60_000),
            ("header_timeout_s", self.header_timeout_s, 1..=3_600),
            ("body_timeout_s", self.body_timeout_s, 1..=3_600),
            (
                "max_connections",
                self.max_connections as u64,
                1..=1_000_000,
            ),
            (
                "max_concurrent_launches",
                self.max_concurrent_launches as u64,
                1..=10_000,
            ),
            ("local.nodes", u64::from(self.local.nodes), 1..=1_024),
        ] {
            if !range.contains(&value) {
                return Err(bad(format!(
                    "{key} = {value} is out of range: {} to {}",
                    range.start(),
                    range.end()
                )));
            }
        }
        match (self.store, &self.etcd) {
            (StoreKind::Etcd, None) => {
                return Err(bad(
                    "store = \"etcd\" needs an [etcd] section (endpoints = [\"http://…\"])".into(),
                ))
            }
            (StoreKind::Embedded, Some(_)) => {
                return Err(bad(
                    "an [etcd] section is only read with store = \"etcd\"".into()
                ))
            }
            (StoreKind::Etcd, Some(etcd)) => etcd.validate().map_err(bad)?,
            (StoreKind::Embedded, None) => {}
        }
        self.queues().map_err(bad)?;
        if !(self.local.share > 0.0 && self.local.share <= 1.0) {
            return Err(bad(format!(
                "local.share = {} is out of range: above 0, at most 1",
                self.local.share
            )));
        }
        Ok(())
    }
}

impl EtcdSection {
    fn validate(&self) -> Result<(), String> {
        if self.endpoints.is_empty() {
            return Err("etcd.endpoints = []: name at least one member".into());
        }
        if let Some(bad) = self
            .endpoints
            .iter()
            .find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
        {
            return Err(format!(
                "etcd.endpoints: {bad:?} is not an http:// or https:// URL"
            ));
        }
        if self.prefix.is_empty() {
            return Err("etcd.prefix = \"\": the service's keys need a prefix of their own".into());
        }
        if !(1..=3_600).contains(&self.lease_ttl_s) {
            return Err(format!(
                "etcd.lease_ttl_s = {} is out of range: 1 to 3600",
                self.lease_ttl_s
            ));
        }
        if !(2..=100_000).contains(&self.max_txn_ops) {
            return Err(format!(
                "etcd.max_txn_ops = {} is out of range: 2 to 100000",
                self.max_txn_ops
            ));
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err("etcd.cert and etcd.key go together".into());
        }
        if self.password.is_some() && self.user.is_none() {
            return Err("etcd.password without etcd.user".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(
            ServiceConfig::from_toml("", "lepton.toml").expect("valid"),
            ServiceConfig::default()
        );
    }

    #[test]
    fn the_reference_in_docs_service_md_names_every_key_where_it_belongs() {
        let doc = include_str!("../../docs/SERVICE.md");
        let block = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a toml block");
        // Every key and section of the type (not validated: the reference
        // lists keys that exclude each other, `[etcd]` beside the default
        // store).
        let reference: ServiceConfig = toml::from_str(block).expect("the reference parses");
        assert!(reference.etcd.is_some() && reference.tls.is_some());
        assert_eq!(reference.queue.len(), 1);
        assert!(!reference.backfill);
        assert_eq!(
            (
                reference.docker.len(),
                reference.libvirt.len(),
                reference.aws.len()
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_line() {
        let cases = [
            (
                "listen = \"127.0.0.1:7700\"\nlisen = 1\n",
                "lepton.toml:2: unknown field `lisen`",
            ),
            ("tick_ms = -5\n", "lepton.toml:1:"),
            ("[local]\nshare = \"half\"\n", "lepton.toml:2:"),
            ("[local]\ncpus = 2\n", "lepton.toml:2: unknown field `cpus`"),
            ("listen = \"localhost\"\n", "lepton.toml:1:"),
            ("tick_ms = 0\n", "tick_ms = 0 is out of range: 1 to 60000"),
            (
                "policy = \"fastest\"\n",
                "policy = \"fastest\" is not a policy",
            ),
            ("token = \"\"\n", "an empty token"),
            (
                "[local]\nshare = 1.5\n",
                "local.share = 1.5 is out of range",
            ),
            ("store = \"zookeeper\"\n", "lepton.toml:1: unknown variant"),
            ("store = \"etcd\"\n", "needs an [etcd] section"),
            ("[etcd]\n", "only read with store = \"etcd\""),
            (
                "store = \"etcd\"\n[etcd]\nendpoints = [\"127.0.0.1:2379\"]\n",
                "\"127.0.0.1:2379\" is not an http:// or https:// URL",
            ),
            (
                "store = \"etcd\"\n[etcd]\nlease_ttl_s = 0\n",
                "etcd.lease_ttl_s = 0 is out of range",
            ),
            (
                "store = \"etcd\"\n[etcd]\nleader_ttl = 5\n",
                "lepton.toml:3: unknown field `leader_ttl`",
            ),
            (
                "[[queue]]\nname = \"a\"\n[[queue]]\nname = \"a\"\n",
                "[[queue]] \"a\": queue a is already declared",
            ),
            ("[[queue]]\nname = \"a b\"\n", "[[queue]] \"a b\": "),
            (
                "[[queue]]\nname = \"a\"\nweight = 0\n",
                "its weight must be a positive number",
            ),
            (
                "[[queue]]\nname = \"a\"\nmax = { cpus = 4 }\n",
                "lepton.toml:3: unknown field `cpus`",
            ),
        ];
        for (text, expected) in cases {
            let error = ServiceConfig::from_toml(text, "lepton.toml")
                .expect_err(text)
                .to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
