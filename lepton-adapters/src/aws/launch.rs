//! Launching and terminating a run's instance: what `RunInstances` is sent
//! (checked before any request), finding the run's instance again, the
//! pool's limit, and the client tokens that keep a retried launch from
//! starting a second instance.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_ec2::types::{
    Instance, InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceStateName,
    InstanceType, MarketType, ResourceType, SpotInstanceType, SpotMarketOptions, Tag,
    TagSpecification,
};
use lepton_core::backend::{BackendError, Handle, Launch};
use lepton_core::{Run, TaskSpec};

use super::client::{error_code, filter, validate_resource_id};
use super::status::{state_of, tagged_run};
use super::{AwsBackend, BACKEND, TAG_ATTEMPT, TAG_CLUSTER, TAG_NAME, TAG_NODE, TAG_TASK};
use crate::shared::errors::invalid;
use crate::shared::launch_config::{refuse_gpu_launch, refuse_gpus, task_image};

/// EC2 accepts tag values of up to 256 Unicode characters.
const MAX_TAG_CHARS: usize = 256;
/// EC2 accepts up to 16 KiB of user data before base64 encoding.
const MAX_USER_DATA_BYTES: usize = 16 * 1024;
/// Cluster names go into client tokens (64 ASCII characters at most, with
/// room for `-t<u64>-<u32>`).
const MAX_CLUSTER_BYTES: usize = 24;
const MAX_CLIENT_TOKEN_BYTES: usize = 64;

/// The `Name` tag of a run's instance: `lepton-t<task>-<attempt>`, from
/// numbers only.
pub fn instance_name(run: Run) -> String {
    format!("lepton-t{}-{}", run.task.0, run.attempt)
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

impl AwsBackend {
    /// [`launch`](lepton_core::backend::Backend::launch): one instance of the pool's type, or the
    /// live instance the run already has.
    pub(super) async fn launch_instance(&self, launch: &Launch) -> Result<Handle, BackendError> {
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
        refuse_gpu_launch(BACKEND, launch, "GPU devices")?;
        self.check_task(&launch.task)?;
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

    /// [`stop`](lepton_core::backend::Backend::stop): terminates the instance.
    pub(super) async fn terminate(&self, handle: &Handle) -> Result<(), BackendError> {
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

    /// Everything `launch` sends, checked before any request is made.
    /// What [`Backend::validate`](lepton_core::backend::Backend::validate)
    /// refuses: GPUs, no image (nor a default) or a malformed AMI id.
    pub(super) fn check_task(&self, task: &TaskSpec) -> Result<(), BackendError> {
        refuse_gpus(BACKEND, task, "GPU devices")?;
        validate_resource_id(
            "image",
            "ami-",
            task_image(BACKEND, task, self.default_image.as_ref())?,
        )
    }

    fn run_request(
        &self,
        launch: &Launch,
        instance_type: &str,
    ) -> Result<RunRequest, BackendError> {
        let task = &launch.task;
        let run = launch.run;
        let image = task_image(BACKEND, task, self.default_image.as_ref())?;
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
                    BACKEND,
                    "market",
                    other,
                    "is neither `spot` nor `on-demand`",
                ))
            }
        };
        let user_data = match task.config.get("user_data") {
            None => None,
            // Its size only: user data often carries secrets.
            Some(text) if text.len() > MAX_USER_DATA_BYTES => {
                return Err(invalid(
                    BACKEND,
                    "user data",
                    format!("{} bytes", text.len()),
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
}

/// Pending or running: an instance a launch may return.
fn is_live(instance: &Instance) -> bool {
    matches!(
        state_of(instance),
        Some(InstanceStateName::Pending | InstanceStateName::Running)
    )
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

/// A cluster name fit for tags and client tokens.
pub(super) fn validate_cluster(cluster: &str) -> Result<(), BackendError> {
    let ok = !cluster.is_empty()
        && cluster.len() <= MAX_CLUSTER_BYTES
        && cluster
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            BACKEND,
            "cluster",
            cluster,
            "must be 1 to 24 ASCII letters, digits and `-`",
        ))
    }
}

/// A tag value EC2 accepts: at most 256 characters, none a control one.
fn validate_tag_value(what: &'static str, value: &str) -> Result<(), BackendError> {
    if value.chars().count() > MAX_TAG_CHARS {
        return Err(invalid(
            BACKEND,
            what,
            value,
            "is longer than EC2's 256 characters for a tag",
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(BACKEND, what, value, "contains control characters"));
    }
    Ok(())
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
    use lepton_core::backend::Backend;
    use lepton_core::{NodeId, Resources, TaskId, TaskSpec};

    use super::*;
    use crate::aws::testing::{backend, launch, task};
    use crate::aws::{node_id_for, DEFAULT_CLUSTER};
    use crate::shared::testing::{assert_invalid, runtime};

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
            assert_invalid(
                backend.run_request(&launch(task().with_config("market", bad)), "t3.micro"),
                "market",
            );
        }
        for bad in ["two\nlines", "nul\0", "bell\x07", &"x".repeat(257)] {
            assert_invalid(
                backend.run_request(&launch(task().with_name(bad)), "t3.micro"),
                "task name",
            );
        }
        let fine = task().with_name(format!("Ünïcode, \"quotes\" = fine {}", "é".repeat(200)));
        assert!(backend.run_request(&launch(fine), "t3.micro").is_ok());
        assert_invalid(
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
            assert_invalid(
                backend.run_request(&launch(task().with_config("image", bad)), "t3.micro"),
                "image",
            );
        }
    }

    #[test]
    fn a_missing_image_uses_the_default_or_assert_invalid() {
        let task = TaskSpec::new(TaskId(1), Resources::new(100, 0));
        assert_invalid(
            backend().run_request(&launch(task.clone()), "t3.micro"),
            "image",
        );
        assert_invalid(
            backend()
                .with_default_image("ami-12c6146b")
                .with_subnet_id("subnet-1; drop")
                .run_request(&launch(task.clone()), "t3.micro"),
            "subnet id",
        );
        assert_invalid(
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
        let rt = runtime();
        let backend = backend();
        let mut elsewhere = launch(task());
        elsewhere.node = NodeId(3);
        let err = rt
            .block_on(backend.launch(&elsewhere))
            .expect_err("not a pool");
        assert!(matches!(err, BackendError::NotFound { .. }), "{err}");

        let mut with_gpu = launch(task());
        with_gpu.gpus = [0].into_iter().collect();
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
        assert_invalid(rt.block_on(backend.status(&handle)), "instance id");
        assert_invalid(rt.block_on(backend.stop(&handle)), "instance id");
    }
}
