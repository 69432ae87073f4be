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
//! [`NodeKind::Vm`](lepton_core::model::NodeKind::Vm) labelled
//! `lepton.backend=aws`, `aws.region`, `aws.instance-type`, `aws.vcpus`,
//! `aws.memory-mib` (one instance's) and, when EC2 says, `lepton.arch`.
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
//! and an endpoint URL with a user and password is refused. EC2's messages
//! and the SDK's error chains pass through the crate's one redaction rule
//! (user information, secret query values and AWS access key ids become
//! `***`): a `SignatureDoesNotMatch` message, say, quotes the access key
//! id. User data too long to send is reported by its size, not its text.
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
//! use lepton_core::backend::{Backend, Launch};
//! use lepton_core::{Resources, Run, TaskId, TaskSpec};
//!
//! # async fn demo() -> Result<(), lepton_core::backend::BackendError> {
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

// One file per responsibility: `client` loads the SDK, describes
// instances and maps errors, `inventory` holds the catalogue of pools,
// `launch` launches and terminates instances, `status` reads and adopts
// them.
mod client;
mod inventory;
mod launch;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ec2::Client;
use lepton_core::backend::{Backend, BackendError, Handle, Launch, RunStatus};
use lepton_core::{NodeId, NodeSpec, TaskSpec};
use tokio::sync::OnceCell;

use self::client::{parse_endpoint, timeout_config, validate_region};
pub use self::inventory::node_id_for;
use self::inventory::{validate_instance_type, InstanceSize};
pub use self::launch::instance_name;
use self::launch::validate_cluster;
use crate::shared::errors::invalid;

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
            .ok_or_else(|| invalid(BACKEND, "region", "", "the SDK configuration has none"))?;
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
            return Err(invalid(BACKEND, "instance types", "", "the list is empty"));
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
        self.pool_nodes().await
    }

    fn validate(&self, task: &TaskSpec) -> Result<(), BackendError> {
        self.check_task(task)
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
        self.launch_instance(launch).await
    }

    /// Terminates the instance. An instance EC2 no longer knows, or that is
    /// terminated already, is fine.
    ///
    /// # Errors
    /// [`BackendError::Invalid`] for a handle whose id is not an instance
    /// id; [`BackendError::Rejected`] when the instance carries another
    /// run's tags (nothing is terminated then).
    async fn stop(&self, handle: &Handle) -> Result<(), BackendError> {
        self.terminate(handle).await
    }

    /// Describes the instance; see the [module documentation](self) for the
    /// mapping.
    ///
    /// # Errors
    /// As [`stop`](Backend::stop), for the same reasons.
    async fn status(&self, handle: &Handle) -> Result<RunStatus, BackendError> {
        self.instance_status(handle).await
    }

    /// Every live instance with the cluster's tags (pending, running,
    /// stopping or stopped). Instances whose Lepton tags cannot be read are
    /// left out.
    async fn running(&self) -> Result<Vec<Handle>, BackendError> {
        self.list_runs().await
    }
}

/// What the unit tests of this backend's modules build on.
#[cfg(test)]
mod testing {
    use aws_config::{BehaviorVersion, SdkConfig};
    use aws_sdk_ec2::config::Region;
    use lepton_core::backend::Launch;
    use lepton_core::cluster::GpuSlots;
    use lepton_core::{Resources, Run, TaskId, TaskSpec};

    use super::{node_id_for, AwsBackend};

    /// A backend in us-east-1 that has sent nothing.
    pub(super) fn backend() -> AwsBackend {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        AwsBackend::from_sdk_config(&config).expect("a region")
    }

    /// A launch of `task`'s second attempt on the t3.micro pool.
    pub(super) fn launch(task: TaskSpec) -> Launch {
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

    /// A named task with moto's AMI.
    pub(super) fn task() -> TaskSpec {
        TaskSpec::new(TaskId(7), Resources::new(500, 512))
            .with_name("nightly report")
            .with_config("image", "ami-12c6146b")
    }
}

#[cfg(test)]
mod tests {
    use super::client::validate_resource_id;
    use super::testing::backend;
    use super::*;
    use crate::shared::testing::assert_invalid;

    #[test]
    fn settings_are_checked() {
        assert_invalid(
            backend().with_instance_types(["m5.xlarge", "M5.XL"]),
            "instance type",
        );
        assert_invalid(
            backend().with_instance_types(Vec::<String>::new()),
            "instance types",
        );
        let backend = backend()
            .with_instance_types(["m5.xlarge", "t3.micro", "m5.xlarge"])
            .expect("valid");
        assert_eq!(backend.instance_types, ["m5.xlarge", "t3.micro"]);
        assert_invalid(backend.with_cluster("prod/eu"), "cluster");
        assert_invalid(self::backend().with_cluster("c".repeat(25)), "cluster");
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
            assert_invalid(validate_region(bad), "region");
        }
        assert!(validate_resource_id("instance id", "i-", "i-12421fbf4eef402e7").is_ok());
        for bad in ["", "i-", "i-../../x", "i-0123456789abcdef01", "sg-01234567"] {
            assert_invalid(
                validate_resource_id("instance id", "i-", bad),
                "instance id",
            );
        }
    }

    #[test]
    fn debug_output_holds_no_client_or_credentials() {
        let text = format!("{:?}", backend());
        assert!(text.contains("us-east-1"), "{text}");
        assert!(!text.contains("credentials"), "{text}");
    }
}
