//! The AWS EC2 backend: capacity comes from instance types, and every run
//! is one EC2 instance tagged with it.
//!
//! # Design
//! [`AwsBackend`] offers a catalogue of instance types (by default
//! [`DEFAULT_INSTANCE_TYPES`]). Each type is one *pool* node whose capacity
//! is one instance's vCPUs × 1000 and memory, times
//! [`max_instances_per_type`](AwsBackend::with_max_instances_per_type). A
//! run placed on a pool becomes one instance of that type, so a task gets a
//! whole instance: when tasks are smaller than an instance, the scheduler's
//! accounting is an upper bound, and the backend itself enforces the limit
//! (a launch past it is [`BackendError::Rejected`]), as well as refusing a
//! task that is larger than one instance. Sizes come from
//! `DescribeInstanceTypes` (`VCpuInfo.DefaultVCpus`, `MemoryInfo.SizeInMiB`);
//! a type the API describes without them falls back to a small built-in
//! table. Node ids are a hash of the region and the type name
//! ([`node_id_for`]), so they stay the same across restarts and across
//! catalogue changes, and two regions never share one. Each pool is a
//! [`NodeKind::Vm`] labelled `lepton.backend=aws`, `aws.region`,
//! `aws.instance-type`, `aws.vcpus`, `aws.memory-mib` (one instance's) and,
//! when EC2 says, `lepton.arch`.
//!
//! A pool also says that one task gets at most one instance
//! ([`NodeSpec::max_task`]), so the scheduler never places a task on a pool
//! whose instances are too small for it; a launch asking for more is still
//! refused ([`BackendError::Rejected`]) before anything is started.
//!
//! A node's price is what one instance of it costs per hour on demand
//! (placing one task there costs that), from a built-in table of
//! **approximate us-east-1 Linux prices**; types it does not know report 0
//! (unknown) and [`with_price_per_hour`](AwsBackend::with_price_per_hour)
//! sets the real figure. GPU instance types are offered for their CPU and
//! memory only: GPUs are not modelled yet, and a launch asking for GPU
//! indexes is [`BackendError::Unsupported`].
//!
//! A run's instance carries the tags [`TAG_CLUSTER`], [`TAG_TASK`],
//! [`TAG_ATTEMPT`], [`TAG_NODE`] (decimal numbers), `Name` =
//! `lepton-t<task>-<attempt>` and, when the task has a name, [`TAG_NAME`].
//! The cluster tag (default [`DEFAULT_CLUSTER`]) keeps two Lepton
//! deployments in one account from adopting — and stopping as orphans — each
//! other's instances. [`launch`](Backend::launch) first looks for a live
//! instance (pending, running, stopping or stopped) with the run's tags and
//! returns it; it also passes EC2 a client token made from the cluster and
//! the run (`lepton-t7-2`), so that a retried `RunInstances` whose answer
//! was lost starts no second instance either. A client token stays bound to
//! its instance for a while after that instance is terminated: when EC2
//! answers with a dead instance (a Lepton restarted with fresh task
//! numbers), the launch is repeated once with a token made unique by the
//! time. [`running`](Backend::running) lists every live instance with the
//! cluster's tags, stopped ones included, so a restarted control loop
//! adopts them and cleans up what was stopped.
//!
//! # What a task runs
//! From the task's `config`:
//! - `image`: the AMI id (`ami-…`); required unless the backend has a
//!   [default image](AwsBackend::with_default_image).
//! - `market`: `spot` for a one-time Spot instance (terminated when AWS
//!   reclaims it, at up to the on-demand price), `on-demand` or absent for
//!   an On-Demand instance. This is the policy input that chooses the
//!   market: a policy or the submitter sets it per task.
//! - `user_data`: text handed to the instance as user data (base64-encoded
//!   here), at most 16 KiB: the usual way to say what a generic AMI runs.
//!
//! Other keys are ignored, so one task can carry the settings of several
//! backends. The subnet and security groups come from the backend
//! ([`with_subnet_id`](AwsBackend::with_subnet_id),
//! [`with_security_group_id`](AwsBackend::with_security_group_id)); without
//! them EC2 uses the default VPC.
//!
//! # Status mapping
//! [`status`](Backend::status) describes the instance:
//!
//! | EC2 state                                  | [`RunStatus`]                 |
//! |--------------------------------------------|-------------------------------|
//! | `pending`                                  | `Starting`                    |
//! | `running`                                  | `Running`                     |
//! | any, reason `Client.InstanceInitiatedShutdown` | `Exited { code: 0 }`      |
//! | `stopping`, `stopped`                      | `Failed { reason }`           |
//! | `shutting-down`, `terminated` by an API call (`Client.UserInitiatedShutdown`: this backend's [`stop`](Backend::stop), or an operator) | `Gone` |
//! | `shutting-down`, `terminated` otherwise (Spot reclaimed, `Server.*`) | `Failed { reason }` |
//! | not found                                  | `Gone`                        |
//!
//! An instance that shuts itself down is how a batch task on a VM says it is
//! done; EC2 keeps no exit code, so it reads as `Exited { code: 0 }`, and a
//! task that must report failure has to do so another way. A stop from
//! outside (`StopInstances`, the console) is a failure and the task runs
//! again; a terminate from outside reads `Gone`, which the control loop also
//! treats as a failure of the run.
//!
//! # Errors
//! A request that never got an answer (connection refused, DNS, TLS) maps
//! to [`BackendError::Unreachable`], a request or connection timeout to
//! [`BackendError::Timeout`], both retryable; so do HTTP 5xx answers and
//! throttling (`RequestLimitExceeded`), because waiting helps. An unknown
//! instance is [`BackendError::NotFound`] (or `Gone` / success where the
//! trait says so); every other refusal is [`BackendError::Rejected`] with
//! EC2's code and message (`InsufficientInstanceCapacity` included, so the
//! scheduler can try another pool). The SDK itself retries transient
//! failures (three attempts) before any of this. Values that end up in a
//! tag, a token or a request are checked first and refused with
//! [`BackendError::Invalid`]. Credentials are never formatted: neither the
//! SDK configuration nor the client is in this backend's `Debug` output,
//! and an endpoint URL with a user and password is refused.
//!
//! Usage figures would need CloudWatch and are not read:
//! [`usage`](Backend::usage) is [`BackendError::Unsupported`].
//!
//! # Runtime and toolchain
//! [`AwsBackend::connect`] sends nothing and loads nothing: the SDK
//! configuration is loaded by the first call, so a backend can be built
//! anywhere. The futures must run inside a tokio runtime with I/O and time
//! enabled (`#[tokio::main]` does that). The AWS SDK needs Rust 1.94.1 or later and
//! is heavy to build (minutes), which is why it has its own feature.
//!
//! # Quick start
//! ```no_run
//! use lepton_adapters::aws::AwsBackend;
//! use lepton_core::{Backend, Launch, Resources, Run, TaskId, TaskSpec};
//!
//! # async fn demo() -> Result<(), lepton_core::BackendError> {
//! // Credentials come from the usual chain (environment, profile, IMDS…).
//! let aws = AwsBackend::connect(None, "us-east-1")?
//!     .with_instance_types(["t3.micro", "m5.xlarge"])?
//!     .with_max_instances_per_type(4)
//!     .with_default_image("ami-0123456789abcdef0");
//! let pools = aws.inventory().await?;
//!
//! let task = TaskSpec::new(TaskId(7), Resources::new(500, 512))
//!     .with_config("market", "spot")
//!     .with_config("user_data", "#!/bin/sh\n/opt/job/run && poweroff\n");
//! let launch = Launch {
//!     run: Run { task: task.id, attempt: 1 },
//!     node: pools[0].id,
//!     task,
//!     gpus: Default::default(),
//! };
//! let handle = aws.launch(&launch).await?;
//! println!("{handle}: {:?}", aws.status(&handle).await?);
//! aws.stop(&handle).await?;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    Filter, Instance, InstanceInterruptionBehavior, InstanceMarketOptionsRequest,
    InstanceStateName, InstanceType, MarketType, ResourceType, SpotInstanceType, SpotMarketOptions,
    Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use lepton_core::{
    Backend, BackendError, Handle, Launch, NodeId, NodeKind, NodeSpec, Resources, Run, RunStatus,
    TaskId,
};
use tokio::sync::OnceCell;

/// The backend's name in errors and logs.
const BACKEND: &str = "aws";

/// Tag holding the cluster: which Lepton deployment owns the instance.
pub const TAG_CLUSTER: &str = "lepton:cluster";
/// Tag holding the run's task number (`7` for `t-7`).
pub const TAG_TASK: &str = "lepton:task";
/// Tag holding the run's attempt number.
pub const TAG_ATTEMPT: &str = "lepton:attempt";
/// Tag holding the number of the node (pool) the run was launched on.
pub const TAG_NODE: &str = "lepton:node";
/// Tag holding the task's human-readable name, when it has one.
pub const TAG_NAME: &str = "lepton:name";

/// The instance types offered unless [`AwsBackend::with_instance_types`]
/// says otherwise.
pub const DEFAULT_INSTANCE_TYPES: [&str; 4] = ["t3.micro", "t3.large", "m5.xlarge", "c5.2xlarge"];
/// How many instances of one type the backend runs at most, unless
/// [`AwsBackend::with_max_instances_per_type`] says otherwise.
pub const DEFAULT_MAX_INSTANCES_PER_TYPE: u32 = 10;
/// The cluster tag's value unless [`AwsBackend::with_cluster`] says otherwise.
pub const DEFAULT_CLUSTER: &str = "lepton";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// EC2 accepts tag values of up to 256 Unicode characters.
const MAX_TAG_CHARS: usize = 256;
/// EC2 accepts up to 16 KiB of user data before base64 encoding.
const MAX_USER_DATA_BYTES: usize = 16 * 1024;
/// Cluster names go into client tokens (64 ASCII characters at most, with
/// room for `-t<u64>-<u32>`).
const MAX_CLUSTER_BYTES: usize = 24;
const MAX_CLIENT_TOKEN_BYTES: usize = 64;
const MAX_INSTANCE_TYPE_BYTES: usize = 32;

/// States of an instance that still exists for Lepton: something to adopt,
/// count against the limit, or clean up.
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// One instance type's size and approximate price, for when the API does
/// not say.
struct KnownType {
    name: &'static str,
    vcpus: u64,
    memory_mib: u64,
    /// On-demand Linux price in us-east-1, USD per hour (approximate).
    price_per_hour: f64,
}

/// Sizes and approximate us-east-1 on-demand Linux prices (USD per hour).
/// Prices change and differ by region: they rank pools, they do not bill.
const KNOWN_TYPES: &[KnownType] = &[
    known("t2.micro", 1, 1024, 0.0116),
    known("t3.nano", 2, 512, 0.0052),
    known("t3.micro", 2, 1024, 0.0104),
    known("t3.small", 2, 2048, 0.0208),
    known("t3.medium", 2, 4096, 0.0416),
    known("t3.large", 2, 8192, 0.0832),
    known("t3.xlarge", 4, 16384, 0.1664),
    known("m5.large", 2, 8192, 0.096),
    known("m5.xlarge", 4, 16384, 0.192),
    known("m5.2xlarge", 8, 32768, 0.384),
    known("c5.large", 2, 4096, 0.085),
    known("c5.xlarge", 4, 8192, 0.17),
    known("c5.2xlarge", 8, 16384, 0.34),
    known("r5.large", 2, 16384, 0.126),
    known("r5.xlarge", 4, 32768, 0.252),
];

const fn known(name: &'static str, vcpus: u64, memory_mib: u64, price_per_hour: f64) -> KnownType {
    KnownType {
        name,
        vcpus,
        memory_mib,
        price_per_hour,
    }
}

fn known_type(name: &str) -> Option<&'static KnownType> {
    KNOWN_TYPES.iter().find(|t| t.name == name)
}

/// The node id of the pool of `instance_type` in `region`: FNV-1a of
/// `aws/<region>/<type>`, cut to 53 bits so that JSON readers that use
/// doubles read it exactly.
pub fn node_id_for(region: &str, instance_type: &str) -> NodeId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("aws/{region}/{instance_type}").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    NodeId(hash & ((1 << 53) - 1))
}

/// The `Name` tag of a run's instance: `lepton-t<task>-<attempt>`, from
/// numbers only.
pub fn instance_name(run: Run) -> String {
    format!("lepton-t{}-{}", run.task.0, run.attempt)
}

/// One instance's size, as used for a pool's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InstanceSize {
    cpu_milli: u64,
    memory_mib: u64,
}

/// On-demand or Spot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Market {
    OnDemand,
    Spot,
}

/// Everything `RunInstances` is sent for a launch, checked before any
/// request is made.
#[derive(Debug, Clone, PartialEq)]
struct RunRequest {
    run: Run,
    instance_type: String,
    image: String,
    market: Market,
    tags: Vec<(String, String)>,
    client_token: String,
    /// Already base64-encoded.
    user_data: Option<String>,
}

/// A [`Backend`] for AWS EC2 in one region.
///
/// Built with [`connect`](Self::connect) or
/// [`from_sdk_config`](Self::from_sdk_config), then configured with the
/// `with_*` methods. See the [module documentation](self) for the design,
/// the tags, and how instance states map to [`RunStatus`].
pub struct AwsBackend {
    /// Made on first use (see [`client`](Self::client)), or given.
    client: OnceCell<Client>,
    region: String,
    /// The endpoint override, `scheme://host[:port]`.
    endpoint_url: Option<String>,
    /// For errors and `Debug`: scheme, host and port only.
    endpoint: String,
    /// Set by `with_timeout`; `None` keeps the default (or, for a client
    /// from a caller's configuration, its own).
    timeout: Option<Duration>,
    instance_types: Vec<String>,
    max_instances_per_type: u32,
    prices: BTreeMap<String, f64>,
    default_image: Option<String>,
    cluster: String,
    subnet_id: Option<String>,
    security_group_ids: Vec<String>,
    /// Instance sizes learned by `inventory`, to refuse a task larger than
    /// one instance.
    sizes: Mutex<HashMap<String, InstanceSize>>,
}

impl fmt::Debug for AwsBackend {
    // The client and its configuration are left out on purpose: they hold
    // the credentials provider.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsBackend")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("loaded", &self.client.initialized())
            .field("timeout", &self.timeout)
            .field("instance_types", &self.instance_types)
            .field("max_instances_per_type", &self.max_instances_per_type)
            .field("prices", &self.prices)
            .field("default_image", &self.default_image)
            .field("cluster", &self.cluster)
            .field("subnet_id", &self.subnet_id)
            .field("security_group_ids", &self.security_group_ids)
            .finish_non_exhaustive()
    }
}

impl AwsBackend {
    /// A backend for EC2 in `region`, with credentials from the SDK's
    /// default chain (environment variables, profile files, web identity,
    /// ECS and EC2 metadata; SSO profiles and `credential_process` are not
    /// built in). `endpoint` overrides the service URL (`http://127.0.0.1:5000`
    /// for moto); `None` uses AWS's own.
    ///
    /// Nothing is loaded or sent yet: the first call loads the SDK
    /// configuration, so an endpoint that is down shows up as
    /// [`BackendError::Unreachable`] then, and a backend can be built
    /// outside any async context.
    ///
    /// # Errors
    /// [`BackendError::Invalid`] for a region that is not of the form
    /// `us-east-1`, or an endpoint that is not `http(s)://host[:port]` or
    /// carries a user and password (the value in the error has them removed).
    pub fn connect(endpoint: Option<&str>, region: &str) -> Result<Self, BackendError> {
        validate_region(region)?;
        let endpoint_url = endpoint.map(parse_endpoint).transpose()?;
        let shown = endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com"));
        Ok(Self::new(
            OnceCell::new(),
            region.to_owned(),
            endpoint_url,
            shown,
        ))
    }

    /// A backend from an SDK configuration the caller has built (assumed
    /// roles, custom HTTP clients, retry settings). The configuration is not
    /// kept or formatted, only the client made from it.
    ///
    /// # Errors
    /// [`BackendError::Invalid`] when the configuration has no region or
    /// an invalid one.
    pub fn from_sdk_config(config: &SdkConfig) -> Result<Self, BackendError> {
        let region = config
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or_else(|| invalid("region", "", "the SDK configuration has none"))?;
        validate_region(&region)?;
        let shown = match config.endpoint_url() {
            None => format!("https://ec2.{region}.amazonaws.com"),
            Some(url) => parse_endpoint(url).unwrap_or_else(|_| "a custom endpoint".to_owned()),
        };
        let client = OnceCell::new_with(Some(Client::new(config)));
        Ok(Self::new(client, region, None, shown))
    }

    fn new(
        client: OnceCell<Client>,
        region: String,
        endpoint_url: Option<String>,
        endpoint: String,
    ) -> Self {
        AwsBackend {
            client,
            region,
            endpoint_url,
            endpoint,
            timeout: None,
            instance_types: DEFAULT_INSTANCE_TYPES
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            max_instances_per_type: DEFAULT_MAX_INSTANCES_PER_TYPE,
            prices: BTreeMap::new(),
            default_image: None,
            cluster: DEFAULT_CLUSTER.to_owned(),
            subnet_id: None,
            security_group_ids: Vec::new(),
            sizes: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the instance types offered, one pool node each, in this order
    /// (default [`DEFAULT_INSTANCE_TYPES`]). Duplicates are dropped.
    ///
    /// # Errors
    /// [`BackendError::Invalid`] when the list is empty or a name is not
    /// like `m5.xlarge` (lowercase letters, digits, `.` and `-`).
    pub fn with_instance_types<I, S>(mut self, types: I) -> Result<Self, BackendError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list: Vec<String> = Vec::new();
        for name in types {
            let name = name.into();
            validate_instance_type(&name)?;
            if !list.contains(&name) {
                list.push(name);
            }
        }
        if list.is_empty() {
            return Err(invalid("instance types", "", "the list is empty"));
        }
        self.instance_types = list;
        Ok(self)
    }

    /// Sets how many instances of one type may run at once (default
    /// [`DEFAULT_MAX_INSTANCES_PER_TYPE`], at least 1): a pool's capacity is
    /// this many instances, and a launch past it is refused.
    pub fn with_max_instances_per_type(mut self, max: u32) -> Self {
        self.max_instances_per_type = max.max(1);
        self
    }

    /// Sets the price per hour of one instance of `instance_type`, instead
    /// of the built-in approximation. A price that is not finite and
    /// non-negative is ignored.
    pub fn with_price_per_hour(mut self, instance_type: impl Into<String>, price: f64) -> Self {
        if price.is_finite() && price >= 0.0 {
            self.prices.insert(instance_type.into(), price);
        }
        self
    }

    /// Sets the AMI for tasks whose `config` has no `image`. There is no
    /// default AMI otherwise (AMI ids differ by region): such a task is
    /// refused.
    pub fn with_default_image(mut self, image: impl Into<String>) -> Self {
        self.default_image = Some(image.into());
        self
    }

    /// Sets the cluster: the value of the [`TAG_CLUSTER`] tag on every
    /// instance launched, the only instances [`running`](Backend::running)
    /// and [`status`](Backend::status) accept (default [`DEFAULT_CLUSTER`]).
    /// Give each Lepton deployment sharing an account its own.
    ///
    /// # Errors
    /// [`BackendError::Invalid`] unless the name is 1 to 24 ASCII letters,
    /// digits and `-` (it is part of EC2 client tokens).
    pub fn with_cluster(mut self, cluster: impl Into<String>) -> Result<Self, BackendError> {
        let cluster = cluster.into();
        validate_cluster(&cluster)?;
        self.cluster = cluster;
        Ok(self)
    }

    /// Sets the subnet instances are launched in (default: the default
    /// VPC's choice).
    pub fn with_subnet_id(mut self, subnet_id: impl Into<String>) -> Self {
        self.subnet_id = Some(subnet_id.into());
        self
    }

    /// Adds a security group to every instance launched.
    pub fn with_security_group_id(mut self, group_id: impl Into<String>) -> Self {
        self.security_group_ids.push(group_id.into());
        self
    }

    /// Sets how long one API call may take, retries included (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        if let Some(client) = self.client.take() {
            let config = client
                .config()
                .to_builder()
                .timeout_config(timeout_config(timeout))
                .build();
            self.client = OnceCell::new_with(Some(Client::from_conf(config)));
        }
        self
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The service endpoint as `scheme://host[:port]` (never with
    /// credentials).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The cluster tag's value.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The pool node of each offered instance type, in catalogue order.
    pub fn pools(&self) -> Vec<(NodeId, &str)> {
        self.instance_types
            .iter()
            .map(|t| (node_id_for(&self.region, t), t.as_str()))
            .collect()
    }

    /// The EC2 client, for what this backend does not wrap (an operator's
    /// `StopInstances`, tests). The first call loads the SDK configuration
    /// (credentials are resolved later, by the first request).
    pub async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(self.region.clone()))
                    .timeout_config(timeout_config(self.timeout.unwrap_or(DEFAULT_TIMEOUT)));
                if let Some(url) = &self.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                Client::new(&loader.load().await)
            })
            .await
    }

    fn instance_type_of(&self, node: NodeId) -> Option<&str> {
        self.instance_types
            .iter()
            .find(|t| node_id_for(&self.region, t) == node)
            .map(String::as_str)
    }

    fn price_of(&self, instance_type: &str) -> f64 {
        self.prices
            .get(instance_type)
            .copied()
            .or_else(|| known_type(instance_type).map(|t| t.price_per_hour))
            .unwrap_or(0.0)
    }

    fn known_size(&self, instance_type: &str) -> Option<InstanceSize> {
        let learned = self
            .sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(instance_type)
            .copied();
        learned.or_else(|| {
            known_type(instance_type).map(|t| InstanceSize {
                cpu_milli: t.vcpus * 1000,
                memory_mib: t.memory_mib,
            })
        })
    }

    /// Everything `launch` sends, checked before any request is made.
    fn run_request(
        &self,
        launch: &Launch,
        instance_type: &str,
    ) -> Result<RunRequest, BackendError> {
        let task = &launch.task;
        let run = launch.run;
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
        validate_resource_id("image", "ami-", image)?;
        if let Some(subnet) = &self.subnet_id {
            validate_resource_id("subnet id", "subnet-", subnet)?;
        }
        for group in &self.security_group_ids {
            validate_resource_id("security group id", "sg-", group)?;
        }
        let market = match task.config.get("market").map(String::as_str) {
            None | Some("on-demand") => Market::OnDemand,
            Some("spot") => Market::Spot,
            Some(other) => {
                return Err(invalid(
                    "market",
                    other,
                    "is neither `spot` nor `on-demand`",
                ))
            }
        };
        let user_data = match task.config.get("user_data") {
            None => None,
            Some(text) if text.len() > MAX_USER_DATA_BYTES => {
                return Err(invalid(
                    "user data",
                    format!("{}…", text.chars().take(32).collect::<String>()),
                    "is longer than EC2's 16 KiB",
                ))
            }
            Some(text) => Some(base64(text.as_bytes())),
        };

        let mut tags = vec![
            ("Name".to_owned(), instance_name(run)),
            (TAG_CLUSTER.to_owned(), self.cluster.clone()),
            (TAG_TASK.to_owned(), run.task.0.to_string()),
            (TAG_ATTEMPT.to_owned(), run.attempt.to_string()),
            (TAG_NODE.to_owned(), launch.node.0.to_string()),
        ];
        // The other values are numbers and the cluster, checked when set.
        if let Some(name) = &task.name {
            validate_tag_value("task name", name)?;
            tags.push((TAG_NAME.to_owned(), name.clone()));
        }
        Ok(RunRequest {
            run,
            instance_type: instance_type.to_owned(),
            image: image.clone(),
            market,
            tags,
            client_token: client_token(&self.cluster, run),
            user_data,
        })
    }

    /// Sends `RunInstances`; the instance it started (or, for a token EC2
    /// has seen, the one it started then).
    async fn run_instance(
        &self,
        request: &RunRequest,
        token: &str,
    ) -> Result<Instance, BackendError> {
        let mut tags = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (key, value) in &request.tags {
            tags = tags.tags(Tag::builder().key(key).value(value).build());
        }
        let mut call = self
            .client()
            .await
            .run_instances()
            .image_id(&request.image)
            .instance_type(InstanceType::from(request.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(token)
            .tag_specifications(tags.build());
        if request.market == Market::Spot {
            call = call.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build(),
            );
        }
        if let Some(data) = &request.user_data {
            call = call.user_data(data);
        }
        if let Some(subnet) = &self.subnet_id {
            call = call.subnet_id(subnet);
        }
        for group in &self.security_group_ids {
            call = call.security_group_ids(group);
        }
        let operation = format!("RunInstances ({}) for", request.instance_type);
        let output = call
            .send()
            .await
            .map_err(|e| self.sdk_error(&operation, &request.run.to_string(), e))?;
        output
            .instances()
            .first()
            .cloned()
            .ok_or_else(|| BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: format!("{operation} {}", request.run),
                detail: "EC2 answered with no instance".to_owned(),
            })
    }

    /// Every live instance matching `filters` (the cluster filter is added).
    async fn describe(
        &self,
        filters: Vec<Filter>,
        what: &str,
    ) -> Result<Vec<Instance>, BackendError> {
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut call = self
                .client()
                .await
                .describe_instances()
                .filters(filter(
                    &format!("tag:{TAG_CLUSTER}"),
                    [self.cluster.as_str()],
                ))
                .filters(filter("instance-state-name", LIVE_STATES));
            for f in &filters {
                call = call.filters(f.clone());
            }
            if let Some(token) = &next {
                call = call.next_token(token);
            }
            let output = call
                .send()
                .await
                .map_err(|e| self.sdk_error("DescribeInstances of", what, e))?;
            found.extend(
                output
                    .reservations()
                    .iter()
                    .flat_map(|r| r.instances().iter().cloned()),
            );
            next = output
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next.is_none() {
                return Ok(found);
            }
        }
    }

    /// The live instance of `run`, if any.
    async fn find_run(&self, run: Run) -> Result<Option<Instance>, BackendError> {
        let filters = vec![
            filter(&format!("tag:{TAG_TASK}"), [run.task.0.to_string()]),
            filter(&format!("tag:{TAG_ATTEMPT}"), [run.attempt.to_string()]),
        ];
        let instances = self.describe(filters, &run.to_string()).await?;
        // The tags are checked here too, not only by EC2's filter.
        Ok(instances
            .into_iter()
            .find(|i| tagged_run(i.tags(), &self.cluster).map(|(r, _)| r) == Some(run)))
    }

    /// The instance of `handle`, checked to carry the handle's run; `None`
    /// when EC2 does not know it.
    async fn describe_owned(
        &self,
        handle: &Handle,
        action: &str,
    ) -> Result<Option<Instance>, BackendError> {
        validate_resource_id("instance id", "i-", &handle.id)?;
        let subject = format!("instance {} of {}", handle.id, handle.run);
        let output = match self
            .client()
            .await
            .describe_instances()
            .instance_ids(&handle.id)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => return Ok(None),
            Err(e) => return Err(self.sdk_error(action, &subject, e)),
        };
        let Some(instance) = output
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(handle.id.as_str()))
        else {
            return Ok(None);
        };
        if tagged_run(instance.tags(), &self.cluster).map(|(r, _)| r) != Some(handle.run) {
            return Err(BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: format!("{action} {subject}"),
                detail: format!(
                    "the instance does not carry the tags of {} in cluster {:?}",
                    handle.run, self.cluster
                ),
            });
        }
        Ok(Some(instance.clone()))
    }

    /// Maps an SDK error for `action` on `subject` ("DescribeInstances of",
    /// "t-7#2").
    fn sdk_error<E>(&self, action: &str, subject: &str, err: SdkError<E>) -> BackendError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let failure = match &err {
            SdkError::ConstructionFailure(_) => Failure::Construction(error_chain(&err)),
            SdkError::TimeoutError(_) => Failure::Timeout,
            SdkError::DispatchFailure(d) if d.is_timeout() => Failure::Timeout,
            SdkError::DispatchFailure(_) => Failure::Unanswered(error_chain(&err)),
            SdkError::ResponseError(_) => Failure::Unreadable(error_chain(&err)),
            SdkError::ServiceError(s) => Failure::Service {
                status: s.raw().status().as_u16(),
                code: err.code().unwrap_or_default().to_owned(),
                message: err.message().unwrap_or_default().to_owned(),
            },
            _ => Failure::Construction(error_chain(&err)),
        };
        failure.into_error(&format!("{action} {subject}"), &self.endpoint)
    }
}

#[async_trait]
impl Backend for AwsBackend {
    fn name(&self) -> &str {
        BACKEND
    }

    /// One pool node per offered instance type, sized from
    /// `DescribeInstanceTypes`.
    ///
    /// # Errors
    /// [`BackendError::Rejected`] when EC2 does not know an offered type in
    /// this region and the built-in table does not either.
    async fn inventory(&self) -> Result<Vec<NodeSpec>, BackendError> {
        let mut described: HashMap<String, (Option<InstanceSize>, Option<String>)> = HashMap::new();
        let mut next: Option<String> = None;
        loop {
            let mut call = self.client().await.describe_instance_types();
            for name in &self.instance_types {
                call = call.instance_types(InstanceType::from(name.as_str()));
            }
            if let Some(token) = &next {
                call = call.next_token(token);
            }
            let output = call
                .send()
                .await
                .map_err(|e| self.sdk_error("DescribeInstanceTypes in", &self.region, e))?;
            for info in output.instance_types() {
                let Some(name) = info.instance_type() else {
                    continue;
                };
                let vcpus = info.v_cpu_info().and_then(|v| v.default_v_cpus());
                let memory = info.memory_info().and_then(|m| m.size_in_mib());
                let size = match (vcpus, memory) {
                    (Some(v), Some(m)) if v > 0 && m > 0 => Some(InstanceSize {
                        cpu_milli: u64::try_from(v).unwrap_or(0).saturating_mul(1000),
                        memory_mib: u64::try_from(m).unwrap_or(0),
                    }),
                    _ => None,
                };
                // Types that also run i386 list it first; report the 64-bit one.
                let archs = info
                    .processor_info()
                    .map(|p| p.supported_architectures())
                    .unwrap_or_default();
                let arch = archs
                    .iter()
                    .map(|a| a.as_str())
                    .find(|a| matches!(*a, "x86_64" | "arm64"))
                    .or_else(|| archs.first().map(|a| a.as_str()))
                    .map(str::to_owned);
                described.insert(name.as_str().to_owned(), (size, arch));
            }
            next = output
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next.is_none() {
                break;
            }
        }

        let mut nodes = Vec::with_capacity(self.instance_types.len());
        let mut learned = HashMap::new();
        for name in &self.instance_types {
            let (api_size, arch) = described.get(name).cloned().unwrap_or((None, None));
            let size = api_size
                .or_else(|| {
                    known_type(name).map(|t| InstanceSize {
                        cpu_milli: t.vcpus * 1000,
                        memory_mib: t.memory_mib,
                    })
                })
                .ok_or_else(|| BackendError::Rejected {
                    backend: BACKEND.to_owned(),
                    operation: format!("DescribeInstanceTypes in {}", self.region),
                    detail: format!(
                        "EC2 gives no vCPU count and memory for {name:?}, \
                         and the built-in table does not know it"
                    ),
                })?;
            learned.insert(name.clone(), size);
            let max = u64::from(self.max_instances_per_type);
            let capacity = Resources::new(
                size.cpu_milli.saturating_mul(max),
                size.memory_mib.saturating_mul(max),
            );
            let mut node = NodeSpec::new(node_id_for(&self.region, name), capacity)
                .with_name(format!("aws/{}/{name}", self.region))
                .with_kind(NodeKind::Vm)
                .with_label("lepton.backend", BACKEND)
                .with_label("aws.instance-type", name.clone())
                .with_label("aws.region", self.region.clone())
                .with_label("aws.vcpus", (size.cpu_milli / 1000).to_string())
                .with_label("aws.memory-mib", size.memory_mib.to_string())
                .with_max_task(Resources::new(size.cpu_milli, size.memory_mib))
                .with_price_per_hour(self.price_of(name));
            if let Some(arch) = arch {
                node = node.with_label("lepton.arch", arch);
            }
            nodes.push(node);
        }
        *self.sizes.lock().unwrap_or_else(PoisonError::into_inner) = learned;
        Ok(nodes)
    }

    /// Starts one instance of the node's type for the run, or returns the
    /// live instance the run already has.
    ///
    /// # Errors
    /// [`BackendError::Invalid`] for a bad AMI id, market, user data or task
    /// name; [`BackendError::NotFound`] when `launch.node` is not one of
    /// this backend's pools; [`BackendError::Unsupported`] when GPUs are
    /// asked for; [`BackendError::Rejected`] when the task is larger than
    /// one instance, the pool's instance limit is reached, or EC2 refuses.
    async fn launch(&self, launch: &Launch) -> Result<Handle, BackendError> {
        let run = launch.run;
        let instance_type =
            self.instance_type_of(launch.node)
                .ok_or_else(|| BackendError::NotFound {
                    backend: BACKEND.to_owned(),
                    what: format!(
                        "node {} (not a pool of this backend in {})",
                        launch.node, self.region
                    ),
                })?;
        if !launch.gpus.is_empty() {
            return Err(BackendError::Unsupported {
                backend: BACKEND.to_owned(),
                operation: "GPU devices",
            });
        }
        let request = self.run_request(launch, instance_type)?;
        if let Some(size) = self.known_size(instance_type) {
            let asked = &launch.task.request;
            if asked.cpu_milli > size.cpu_milli || asked.memory_mib > size.memory_mib {
                return Err(BackendError::Rejected {
                    backend: BACKEND.to_owned(),
                    operation: format!("launch {run} on {instance_type}"),
                    detail: format!(
                        "the task asks for {} mCPU and {} MiB; \
                         one {instance_type} has {} mCPU and {} MiB",
                        asked.cpu_milli, asked.memory_mib, size.cpu_milli, size.memory_mib
                    ),
                });
            }
        }

        if let Some(existing) = self.find_run(run).await? {
            let node = tagged_run(existing.tags(), &self.cluster).map_or(launch.node, |(_, n)| n);
            return Ok(Handle {
                run,
                node,
                id: existing.instance_id().unwrap_or_default().to_owned(),
            });
        }
        let pool = self
            .describe(
                vec![filter("instance-type", [instance_type])],
                instance_type,
            )
            .await?;
        if pool.len() >= self.max_instances_per_type as usize {
            return Err(BackendError::Rejected {
                backend: BACKEND.to_owned(),
                operation: format!("launch {run} on {instance_type}"),
                detail: format!(
                    "{} {instance_type} instances are live, the limit of this pool",
                    pool.len()
                ),
            });
        }

        let mut instance = match self.run_instance(&request, &request.client_token).await {
            Err(BackendError::Rejected { detail, .. })
                if detail.starts_with("IdempotentParameterMismatch") =>
            {
                None
            }
            other => Some(other?),
        };
        if instance.as_ref().is_none_or(|i| !is_live(i)) {
            // The token belongs to an earlier instance (dead, or launched
            // differently): nothing of this run is live, so start afresh.
            let token = salted_token(&request.client_token);
            instance = Some(self.run_instance(&request, &token).await?);
        }
        let id = instance
            .as_ref()
            .and_then(|i| i.instance_id())
            .unwrap_or_default()
            .to_owned();
        validate_resource_id("instance id", "i-", &id)?;
        Ok(Handle {
            run,
            node: launch.node,
            id,
        })
    }

    /// Terminates the instance. An instance EC2 no longer knows, or that is
    /// terminated already, is fine.
    ///
    /// # Errors
    /// [`BackendError::Invalid`] for a handle whose id is not an instance
    /// id; [`BackendError::Rejected`] when the instance carries another
    /// run's tags (nothing is terminated then).
    async fn stop(&self, handle: &Handle) -> Result<(), BackendError> {
        let Some(instance) = self.describe_owned(handle, "terminate").await? else {
            return Ok(());
        };
        if state_of(&instance) == Some(&InstanceStateName::Terminated) {
            return Ok(());
        }
        match self
            .client()
            .await
            .terminate_instances()
            .instance_ids(&handle.id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => Ok(()),
            Err(e) => Err(self.sdk_error(
                "TerminateInstances of",
                &format!("instance {} of {}", handle.id, handle.run),
                e,
            )),
        }
    }

    /// Describes the instance; see the [module documentation](self) for the
    /// mapping.
    ///
    /// # Errors
    /// As [`stop`](Backend::stop), for the same reasons.
    async fn status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        let Some(instance) = self.describe_owned(handle, "describe").await? else {
            return Ok(RunStatus::Gone);
        };
        let reason = instance.state_reason();
        Ok(status_of(
            &handle.id,
            state_of(&instance),
            reason.and_then(|r| r.code()),
            reason.and_then(|r| r.message()),
            instance.state_transition_reason(),
        ))
    }

    /// Every live instance with the cluster's tags (pending, running,
    /// stopping or stopped). Instances whose Lepton tags cannot be read are
    /// left out.
    async fn running(&self) -> Result<Vec<Handle>, BackendError> {
        let instances = self
            .describe(vec![filter("tag-key", [TAG_TASK])], "the cluster's runs")
            .await?;
        let mut handles: Vec<Handle> = instances
            .iter()
            .filter_map(|i| {
                let (run, node) = tagged_run(i.tags(), &self.cluster)?;
                let id = i.instance_id()?;
                validate_resource_id("instance id", "i-", id).ok()?;
                Some(Handle {
                    run,
                    node,
                    id: id.to_owned(),
                })
            })
            .collect();
        handles.sort_by(|a, b| a.run.cmp(&b.run).then_with(|| a.id.cmp(&b.id)));
        Ok(handles)
    }
}

/// Why an SDK call failed, reduced to what the mapping needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The request could not be built or signed (no credentials…).
    Construction(String),
    /// No answer in time.
    Timeout,
    /// The request got no answer (refused, reset, DNS, TLS).
    Unanswered(String),
    /// An answer came that is not EC2's (a proxy's page, a cut body).
    Unreadable(String),
    /// EC2 refused.
    Service {
        status: u16,
        code: String,
        message: String,
    },
}

/// EC2 error codes that mean "later": the SDK has retried them already.
const THROTTLING_CODES: [&str; 4] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
];
/// EC2 error codes that are answers, not outages, even with HTTP 5xx: the
/// scheduler should try another pool rather than this one again.
const CAPACITY_CODES: [&str; 3] = [
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
];

impl Failure {
    fn into_error(self, operation: &str, endpoint: &str) -> BackendError {
        let backend = BACKEND.to_owned();
        match self {
            Failure::Timeout => BackendError::Timeout {
                backend,
                operation: operation.to_owned(),
            },
            Failure::Unanswered(detail) | Failure::Unreadable(detail) => {
                BackendError::Unreachable {
                    backend,
                    detail: format!("{endpoint}: {operation}: {detail}"),
                }
            }
            Failure::Construction(detail) => BackendError::Rejected {
                backend,
                operation: operation.to_owned(),
                detail,
            },
            Failure::Service {
                status,
                code,
                message,
            } => {
                let detail = match (code.is_empty(), message.is_empty()) {
                    (true, true) => format!("HTTP {status}"),
                    (false, true) => code.clone(),
                    (true, false) => message.clone(),
                    (false, false) => format!("{code}: {message}"),
                };
                if code == "InvalidInstanceID.NotFound" {
                    BackendError::NotFound {
                        backend,
                        what: operation.to_owned(),
                    }
                } else if THROTTLING_CODES.contains(&code.as_str()) {
                    BackendError::Unreachable {
                        backend,
                        detail: format!("{endpoint}: {operation}: throttled: {detail}"),
                    }
                } else if status == 408 || status == 504 {
                    BackendError::Timeout {
                        backend,
                        operation: operation.to_owned(),
                    }
                } else if status >= 500 && !CAPACITY_CODES.contains(&code.as_str()) {
                    BackendError::Unreachable {
                        backend,
                        detail: format!("{endpoint}: {operation}: HTTP {status}: {detail}"),
                    }
                } else {
                    BackendError::Rejected {
                        backend,
                        operation: operation.to_owned(),
                        detail,
                    }
                }
            }
        }
    }
}

/// The run status of an instance in `state`, from its state reason
/// (`Client.UserInitiatedShutdown`, …) and transition reason.
fn status_of(
    id: &str,
    state: Option<&InstanceStateName>,
    reason_code: Option<&str>,
    reason_message: Option<&str>,
    transition: Option<&str>,
) -> RunStatus {
    let reason_code = reason_code.unwrap_or_default();
    let because = || {
        [reason_message, Some(reason_code), transition]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .unwrap_or("no reason given")
            .to_owned()
    };
    let Some(state) = state else {
        return RunStatus::Failed {
            reason: format!("instance {id} reports no state"),
        };
    };
    match state {
        InstanceStateName::Pending => RunStatus::Starting,
        InstanceStateName::Running => RunStatus::Running,
        _ if reason_code == "Client.InstanceInitiatedShutdown" => RunStatus::Exited { code: 0 },
        InstanceStateName::Stopping | InstanceStateName::Stopped => RunStatus::Failed {
            reason: format!("instance {id} is {}: {}", state.as_str(), because()),
        },
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated
            if reason_code == "Client.UserInitiatedShutdown" =>
        {
            RunStatus::Gone
        }
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated => RunStatus::Failed {
            reason: format!("instance {id} is {}: {}", state.as_str(), because()),
        },
        other => RunStatus::Failed {
            reason: format!("instance {id} is in unknown state {:?}", other.as_str()),
        },
    }
}

fn state_of(instance: &Instance) -> Option<&InstanceStateName> {
    instance.state().and_then(|s| s.name())
}

/// Pending or running: an instance a launch may return.
fn is_live(instance: &Instance) -> bool {
    matches!(
        state_of(instance),
        Some(InstanceStateName::Pending | InstanceStateName::Running)
    )
}

/// The run and node in an instance's tags, when it carries all of them and
/// belongs to `cluster`.
fn tagged_run(tags: &[Tag], cluster: &str) -> Option<(Run, NodeId)> {
    let get = |key: &str| {
        tags.iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
    };
    if get(TAG_CLUSTER) != Some(cluster) {
        return None;
    }
    let task = get(TAG_TASK)?.parse().ok()?;
    let attempt = get(TAG_ATTEMPT)?.parse().ok()?;
    let node = get(TAG_NODE)?.parse().ok()?;
    Some((
        Run {
            task: TaskId(task),
            attempt,
        },
        NodeId(node),
    ))
}

/// The client token of a run: `<cluster>-t<task>-<attempt>`, at most 64
/// ASCII characters for a valid cluster name.
fn client_token(cluster: &str, run: Run) -> String {
    format!("{cluster}-t{}-{}", run.task.0, run.attempt)
}

/// A token no earlier request used: `token` with the time appended, cut to
/// EC2's 64 characters from the left so the time part survives.
fn salted_token(token: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let salted = format!("{token}-{nanos:x}");
    let cut = salted.len().saturating_sub(MAX_CLIENT_TOKEN_BYTES);
    salted[cut..].to_owned()
}

fn filter<I, S>(name: &str, values: I) -> Filter
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut builder = Filter::builder().name(name);
    for value in values {
        builder = builder.values(value);
    }
    builder.build()
}

fn timeout_config(timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .build()
}

fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<&str> {
    match err {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// The error and its sources' messages, joined with `: ` (the SDK's own
/// `Display` says only "dispatch failure"). `Debug` forms are left out:
/// they are noisy and may show more of the request than a log should.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !message.is_empty() && !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

fn invalid(what: &'static str, value: impl Into<String>, why: &'static str) -> BackendError {
    BackendError::Invalid {
        backend: BACKEND.to_owned(),
        what,
        value: value.into(),
        why,
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`: lowercase letters, digits
/// and `-`; it becomes part of a host name.
fn validate_region(region: &str) -> Result<(), BackendError> {
    if region.is_empty() || region.len() > 32 {
        return Err(invalid("region", region, "must be 1 to 32 characters"));
    }
    if !region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || region.starts_with('-')
        || region.ends_with('-')
    {
        return Err(invalid(
            "region",
            region,
            "must be lowercase letters, digits and `-`, like us-east-1",
        ));
    }
    Ok(())
}

fn validate_instance_type(name: &str) -> Result<(), BackendError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_INSTANCE_TYPE_BYTES
        && name.contains('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "instance type",
            name,
            "must be like m5.xlarge: lowercase letters, digits, `.` and `-`, at most 32",
        ))
    }
}

fn validate_cluster(cluster: &str) -> Result<(), BackendError> {
    let ok = !cluster.is_empty()
        && cluster.len() <= MAX_CLUSTER_BYTES
        && cluster
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "cluster",
            cluster,
            "must be 1 to 24 ASCII letters, digits and `-`",
        ))
    }
}

/// An EC2 resource id: `prefix` then 8 to 17 lowercase hex digits
/// (`ami-12c6146b`, `i-0123456789abcdef0`).
fn validate_resource_id(what: &'static str, prefix: &str, id: &str) -> Result<(), BackendError> {
    let ok = id.strip_prefix(prefix).is_some_and(|hex| {
        (8..=17).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            what,
            id,
            "is not an EC2 id (a prefix such as `ami-` or `i-`, then 8 to 17 hex digits)",
        ))
    }
}

fn validate_tag_value(what: &'static str, value: &str) -> Result<(), BackendError> {
    if value.chars().count() > MAX_TAG_CHARS {
        return Err(invalid(
            what,
            value,
            "is longer than EC2's 256 characters for a tag",
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(what, value, "contains control characters"));
    }
    Ok(())
}

/// `scheme://host[:port]` from an endpoint URL, refusing user info, paths,
/// queries and schemes other than http and https.
fn parse_endpoint(url: &str) -> Result<String, BackendError> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        invalid(
            "endpoint",
            redact(url),
            "must start with http:// or https://",
        )
    })?;
    if scheme != "http" && scheme != "https" {
        return Err(invalid(
            "endpoint",
            redact(url),
            "must start with http:// or https://",
        ));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(invalid(
            "endpoint",
            redact(url),
            "must not carry a user or password (credentials come from the SDK's chain)",
        ));
    }
    if authority.is_empty()
        || authority.contains(['/', '?', '#'])
        || authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "endpoint",
            redact(url),
            "must be scheme://host[:port] with no path",
        ));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// `url` with anything before an `@` in its authority replaced.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let had_user = rest[..end].contains('@');
    let user = if had_user { "…@" } else { "" };
    if scheme.is_empty() {
        format!("{user}{authority}{tail}")
    } else {
        format!("{scheme}://{user}{authority}{tail}")
    }
}

/// Standard base64 with padding (RFC 4648), as EC2 wants user data.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lepton_core::{GpuSlots, TaskSpec};

    fn backend() -> AwsBackend {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        AwsBackend::from_sdk_config(&config).expect("a region")
    }

    fn launch(task: TaskSpec) -> Launch {
        Launch {
            run: Run {
                task: task.id,
                attempt: 2,
            },
            node: node_id_for("us-east-1", "t3.micro"),
            task,
            gpus: GpuSlots::new(),
        }
    }

    fn task() -> TaskSpec {
        TaskSpec::new(TaskId(7), Resources::new(500, 512))
            .with_name("nightly report")
            .with_config("image", "ami-12c6146b")
    }

    fn is_invalid<T: fmt::Debug>(result: Result<T, BackendError>, expected: &str) {
        match result {
            Err(BackendError::Invalid { what, .. }) => assert_eq!(what, expected),
            other => panic!("expected Invalid {expected}, got {other:?}"),
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
        pairs
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect()
    }

    #[test]
    fn names_and_tokens_hold_only_numbers_and_the_cluster() {
        let run = Run {
            task: TaskId(7),
            attempt: 2,
        };
        assert_eq!(instance_name(run), "lepton-t7-2");
        assert_eq!(client_token(DEFAULT_CLUSTER, run), "lepton-t7-2");
        let widest = Run {
            task: TaskId(u64::MAX),
            attempt: u32::MAX,
        };
        assert!(
            client_token(&"c".repeat(MAX_CLUSTER_BYTES), widest).len() <= MAX_CLIENT_TOKEN_BYTES
        );
        let salted = salted_token(&client_token(&"c".repeat(MAX_CLUSTER_BYTES), widest));
        assert!(salted.len() <= MAX_CLIENT_TOKEN_BYTES, "{salted}");
        assert_ne!(salted_token("lepton-t7-2"), "lepton-t7-2");
    }

    #[test]
    fn node_ids_are_stable_and_distinct() {
        let a = node_id_for("us-east-1", "t3.micro");
        assert_eq!(a, node_id_for("us-east-1", "t3.micro"));
        assert_ne!(a, node_id_for("eu-west-1", "t3.micro"));
        let ids: std::collections::HashSet<_> = KNOWN_TYPES
            .iter()
            .map(|t| node_id_for("us-east-1", t.name))
            .collect();
        assert_eq!(ids.len(), KNOWN_TYPES.len());
        assert!(ids.iter().all(|id| id.0 < 1 << 53));
        let backend = backend();
        let pools = backend.pools();
        assert_eq!(pools.len(), DEFAULT_INSTANCE_TYPES.len());
        assert_eq!(pools[0], (a, "t3.micro"));
    }

    #[test]
    fn the_built_in_table_covers_the_default_catalogue() {
        for name in DEFAULT_INSTANCE_TYPES {
            let known = known_type(name).expect(name);
            assert!(known.vcpus > 0 && known.memory_mib > 0 && known.price_per_hour > 0.0);
        }
        let backend = backend()
            .with_price_per_hour("t3.micro", 0.5)
            .with_price_per_hour("t3.large", f64::NAN);
        assert_eq!(backend.price_of("t3.micro"), 0.5);
        assert_eq!(backend.price_of("t3.large"), 0.0832);
        assert_eq!(backend.price_of("x9.huge"), 0.0);
    }

    #[test]
    fn run_requests_carry_the_run_market_and_user_data() {
        let backend = backend();
        let request = backend
            .run_request(&launch(task()), "t3.micro")
            .expect("valid");
        assert_eq!(request.image, "ami-12c6146b");
        assert_eq!(request.market, Market::OnDemand);
        assert_eq!(request.client_token, "lepton-t7-2");
        assert_eq!(request.user_data, None);
        let tag = |key: &str| {
            request
                .tags
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(tag("Name"), Some("lepton-t7-2"));
        assert_eq!(tag(TAG_CLUSTER), Some("lepton"));
        assert_eq!(tag(TAG_TASK), Some("7"));
        assert_eq!(tag(TAG_ATTEMPT), Some("2"));
        assert_eq!(
            tag(TAG_NODE),
            Some(node_id_for("us-east-1", "t3.micro").0.to_string().as_str())
        );
        assert_eq!(tag(TAG_NAME), Some("nightly report"));

        let spot = task()
            .with_config("market", "spot")
            .with_config("user_data", "#!/bin/sh\necho hi\n");
        let request = backend
            .run_request(&launch(spot), "t3.micro")
            .expect("valid");
        assert_eq!(request.market, Market::Spot);
        assert_eq!(
            request.user_data.as_deref(),
            Some("IyEvYmluL3NoCmVjaG8gaGkK")
        );

        let on_demand = task().with_config("market", "on-demand");
        let request = backend
            .run_request(&launch(on_demand), "t3.micro")
            .expect("valid");
        assert_eq!(request.market, Market::OnDemand);
    }

    #[test]
    fn task_values_are_checked() {
        let backend = backend();
        for bad in ["Spot", "reserved", ""] {
            is_invalid(
                backend.run_request(&launch(task().with_config("market", bad)), "t3.micro"),
                "market",
            );
        }
        for bad in ["two\nlines", "nul\0", "bell\x07", &"x".repeat(257)] {
            is_invalid(
                backend.run_request(&launch(task().with_name(bad)), "t3.micro"),
                "task name",
            );
        }
        let fine = task().with_name(format!("Ünïcode, \"quotes\" = fine {}", "é".repeat(200)));
        assert!(backend.run_request(&launch(fine), "t3.micro").is_ok());
        is_invalid(
            backend.run_request(
                &launch(task().with_config("user_data", "x".repeat(16 * 1024 + 1))),
                "t3.micro",
            ),
            "user data",
        );
        for bad in [
            "ubuntu",
            "ami-",
            "ami-XYZ12345",
            "ami-12c6146b; rm",
            "i-0123456789abcdef0",
        ] {
            is_invalid(
                backend.run_request(&launch(task().with_config("image", bad)), "t3.micro"),
                "image",
            );
        }
    }

    #[test]
    fn a_missing_image_uses_the_default_or_is_invalid() {
        let task = TaskSpec::new(TaskId(1), Resources::new(100, 0));
        is_invalid(
            backend().run_request(&launch(task.clone()), "t3.micro"),
            "image",
        );
        is_invalid(
            backend()
                .with_default_image("ami-12c6146b")
                .with_subnet_id("subnet-1; drop")
                .run_request(&launch(task.clone()), "t3.micro"),
            "subnet id",
        );
        is_invalid(
            backend()
                .with_default_image("ami-12c6146b")
                .with_security_group_id("default")
                .run_request(&launch(task.clone()), "t3.micro"),
            "security group id",
        );
        let request = backend()
            .with_subnet_id("subnet-0123abcd")
            .with_security_group_id("sg-0123456789abcdef0")
            .with_default_image("ami-0123456789abcdef0")
            .run_request(&launch(task), "t3.micro")
            .expect("valid");
        assert_eq!(request.image, "ami-0123456789abcdef0");
    }

    #[test]
    fn settings_are_checked() {
        is_invalid(
            backend().with_instance_types(["m5.xlarge", "M5.XL"]),
            "instance type",
        );
        is_invalid(
            backend().with_instance_types(Vec::<String>::new()),
            "instance types",
        );
        let backend = backend()
            .with_instance_types(["m5.xlarge", "t3.micro", "m5.xlarge"])
            .expect("valid");
        assert_eq!(backend.instance_types, ["m5.xlarge", "t3.micro"]);
        is_invalid(backend.with_cluster("prod/eu"), "cluster");
        is_invalid(self::backend().with_cluster("c".repeat(25)), "cluster");
        assert_eq!(
            self::backend()
                .with_cluster("prod-eu")
                .expect("valid")
                .cluster(),
            "prod-eu"
        );
        assert_eq!(
            self::backend()
                .with_max_instances_per_type(0)
                .max_instances_per_type,
            1
        );
        for bad in ["", "US-EAST-1", "us east 1", "evil.com/x", "-us"] {
            is_invalid(validate_region(bad), "region");
        }
        assert!(validate_resource_id("instance id", "i-", "i-12421fbf4eef402e7").is_ok());
        for bad in ["", "i-", "i-../../x", "i-0123456789abcdef01", "sg-01234567"] {
            is_invalid(
                validate_resource_id("instance id", "i-", bad),
                "instance id",
            );
        }
    }

    #[test]
    fn endpoints_lose_nothing_but_refuse_credentials() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:5000").expect("ok"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            parse_endpoint("https://ec2.example.com/").expect("ok"),
            "https://ec2.example.com"
        );
        for bad in [
            "http://AKIDEXAMPLE:s3cret@127.0.0.1:5000",
            "https://user:s3cret@ec2.example.com/path",
            "ftp://s3cret@host",
            "127.0.0.1:5000",
            "http://host/path",
            "http://",
        ] {
            let err = parse_endpoint(bad).expect_err(bad);
            let text = err.to_string();
            assert!(
                !text.contains("s3cret") && !text.contains("AKIDEXAMPLE"),
                "{text}"
            );
            assert!(matches!(err, BackendError::Invalid { .. }), "{text}");
        }
    }

    #[test]
    fn debug_output_holds_no_client_or_credentials() {
        let text = format!("{:?}", backend());
        assert!(text.contains("us-east-1"), "{text}");
        assert!(!text.contains("credentials"), "{text}");
    }

    #[test]
    fn tags_give_back_the_run_only_in_the_cluster() {
        let full = tags(&[
            (TAG_CLUSTER, "lepton"),
            (TAG_TASK, "7"),
            (TAG_ATTEMPT, "2"),
            (TAG_NODE, "42"),
            ("Name", "lepton-t7-2"),
        ]);
        let run = Run {
            task: TaskId(7),
            attempt: 2,
        };
        assert_eq!(tagged_run(&full, "lepton"), Some((run, NodeId(42))));
        assert_eq!(tagged_run(&full, "other"), None);
        let broken = tags(&[
            (TAG_CLUSTER, "lepton"),
            (TAG_TASK, "seven"),
            (TAG_ATTEMPT, "2"),
            (TAG_NODE, "1"),
        ]);
        assert_eq!(tagged_run(&broken, "lepton"), None);
        let partial = tags(&[(TAG_CLUSTER, "lepton"), (TAG_TASK, "7")]);
        assert_eq!(tagged_run(&partial, "lepton"), None);
    }

    #[test]
    fn states_map_to_run_status() {
        use InstanceStateName as S;
        let status =
            |state: S, code: Option<&str>| status_of("i-1", Some(&state), code, None, None);
        assert_eq!(status(S::Pending, None), RunStatus::Starting);
        assert_eq!(status(S::Running, None), RunStatus::Running);
        assert_eq!(
            status(S::Terminated, Some("Client.UserInitiatedShutdown")),
            RunStatus::Gone
        );
        assert_eq!(
            status(S::ShuttingDown, Some("Client.UserInitiatedShutdown")),
            RunStatus::Gone
        );
        assert_eq!(
            status(S::Stopped, Some("Client.InstanceInitiatedShutdown")),
            RunStatus::Exited { code: 0 }
        );
        assert_eq!(
            status(S::Terminated, Some("Client.InstanceInitiatedShutdown")),
            RunStatus::Exited { code: 0 }
        );
        let stopped = status_of(
            "i-1",
            Some(&S::Stopped),
            Some("Client.UserInitiatedShutdown"),
            Some("Client.UserInitiatedShutdown: User initiated shutdown"),
            Some("User initiated (2026-11-27 08:03:43 UTC)"),
        );
        assert!(
            matches!(&stopped, RunStatus::Failed { reason }
                if reason.contains("i-1 is stopped: Client.UserInitiatedShutdown: User initiated")),
            "{stopped:?}"
        );
        assert!(matches!(
            status(S::Stopping, None),
            RunStatus::Failed { .. }
        ));
        let reclaimed = status(S::Terminated, Some("Server.SpotInstanceTermination"));
        assert!(
            matches!(&reclaimed, RunStatus::Failed { reason }
                if reason.contains("Server.SpotInstanceTermination")),
            "{reclaimed:?}"
        );
        assert!(matches!(
            status_of("i-1", None, None, None, None),
            RunStatus::Failed { .. }
        ));
        assert!(matches!(
            status(S::from("hibernating"), None),
            RunStatus::Failed { reason } if reason.contains("hibernating")
        ));
    }

    #[test]
    fn failures_map_to_typed_errors() {
        let service = |status: u16, code: &str| Failure::Service {
            status,
            code: code.to_owned(),
            message: "said EC2".to_owned(),
        };
        let map = |f: Failure| f.into_error("DescribeInstances of t-7#2", "http://127.0.0.1:9");
        let unreachable = map(Failure::Unanswered("connection refused".to_owned()));
        assert!(
            matches!(&unreachable, BackendError::Unreachable { detail, .. }
                if detail.contains("connection refused"))
        );
        assert!(unreachable.is_retryable());
        assert!(map(Failure::Unreadable("html".to_owned())).is_retryable());
        assert!(matches!(
            map(Failure::Timeout),
            BackendError::Timeout { .. }
        ));
        assert!(matches!(
            map(service(400, "InvalidInstanceID.NotFound")),
            BackendError::NotFound { .. }
        ));
        assert!(map(service(503, "RequestLimitExceeded")).is_retryable());
        assert!(map(service(500, "InternalError")).is_retryable());
        assert!(map(service(503, "Unavailable")).is_retryable());
        assert!(matches!(
            map(service(504, "")),
            BackendError::Timeout { .. }
        ));
        for (status, code) in [
            (500, "InsufficientInstanceCapacity"),
            (400, "InvalidAMIID.NotFound"),
            (401, "AuthFailure"),
            (400, "UnauthorizedOperation"),
        ] {
            let err = map(service(status, code));
            assert!(
                matches!(&err, BackendError::Rejected { detail, .. }
                    if *detail == format!("{code}: said EC2")),
                "{err:?}"
            );
            assert!(!err.is_retryable());
        }
        assert!(!map(Failure::Construction("no credentials".to_owned())).is_retryable());
    }

    #[test]
    fn error_chains_join_messages_without_debug_forms() {
        #[derive(Debug)]
        struct Dispatch(std::io::Error);
        impl fmt::Display for Dispatch {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Dispatch {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(
            error_chain(&Dispatch(refused)),
            "dispatch failure: Connection refused"
        );
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn launching_elsewhere_or_with_gpus_is_refused_before_any_request() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let backend = backend();
        let mut elsewhere = launch(task());
        elsewhere.node = NodeId(3);
        let err = rt
            .block_on(backend.launch(&elsewhere))
            .expect_err("not a pool");
        assert!(matches!(err, BackendError::NotFound { .. }), "{err}");

        let mut with_gpu = launch(task());
        with_gpu.gpus.push(0);
        let err = rt.block_on(backend.launch(&with_gpu)).expect_err("gpus");
        assert!(matches!(err, BackendError::Unsupported { .. }), "{err}");

        // One t3.micro has 2 vCPUs and 1 GiB (built-in table before any inventory).
        let big = TaskSpec::new(TaskId(8), Resources::new(4000, 512))
            .with_config("image", "ami-12c6146b");
        let err = rt
            .block_on(backend.launch(&launch(big)))
            .expect_err("too big");
        assert!(
            matches!(&err, BackendError::Rejected { detail, .. } if detail.contains("2000 mCPU")),
            "{err}"
        );

        let handle = Handle {
            run: Run {
                task: TaskId(7),
                attempt: 2,
            },
            node: NodeId(1),
            id: "../../etc".to_owned(),
        };
        is_invalid(rt.block_on(backend.status(&handle)), "instance id");
        is_invalid(rt.block_on(backend.stop(&handle)), "instance id");
    }
}
