//! The catalogue: one pool node per offered instance type, sized from
//! `DescribeInstanceTypes` or a built-in table, with stable node ids and
//! approximate prices.

use std::collections::HashMap;

use aws_sdk_ec2::types::InstanceType;
use lepton_core::backend::BackendError;
use lepton_core::model::NodeKind;
use lepton_core::{NodeId, NodeSpec, Resources};

use super::{AwsBackend, BACKEND};
use crate::shared::errors::invalid;
use crate::shared::node_labels::{backend_node, with_reported_label, NODE_LABEL_ARCH};
use crate::shared::sync::lock;

/// Longest instance type name accepted, in bytes.
const MAX_INSTANCE_TYPE_BYTES: usize = 32;

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

impl KnownType {
    /// One instance of this type.
    fn size(&self) -> InstanceSize {
        InstanceSize {
            cpu_milli: self.vcpus * 1000,
            memory_mib: self.memory_mib,
        }
    }
}

/// The node id of the pool of `instance_type` in `region`: FNV-1a of
/// `aws/<region>/<type>`, cut to 53 bits so that JSON readers that use
/// doubles read it exactly.
pub fn node_id_for(region: &str, instance_type: &str) -> NodeId {
    let hash = crate::shared::hash::fnv1a(format!("aws/{region}/{instance_type}").as_bytes());
    NodeId(hash & ((1 << 53) - 1))
}

/// One instance's size, as used for a pool's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InstanceSize {
    pub(super) cpu_milli: u64,
    pub(super) memory_mib: u64,
}

impl AwsBackend {
    /// [`inventory`](lepton_core::backend::Backend::inventory): one pool node per offered
    /// instance type.
    pub(super) async fn pool_nodes(&self) -> Result<Vec<NodeSpec>, BackendError> {
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
                .or_else(|| known_type(name).map(KnownType::size))
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
            let node = backend_node(
                BACKEND,
                node_id_for(&self.region, name),
                capacity,
                NodeKind::Vm,
            )
            .with_name(format!("aws/{}/{name}", self.region))
            .with_label("aws.instance-type", name.clone())
            .with_label("aws.region", self.region.clone())
            .with_label("aws.vcpus", (size.cpu_milli / 1000).to_string())
            .with_label("aws.memory-mib", size.memory_mib.to_string())
            .with_max_task(Resources::new(size.cpu_milli, size.memory_mib))
            .with_price_per_hour(self.price_of(name));
            nodes.push(with_reported_label(node, NODE_LABEL_ARCH, arch));
        }
        *lock(&self.sizes) = learned;
        Ok(nodes)
    }

    /// The instance type of pool `node`, if it is one of this backend's.
    pub(super) fn instance_type_of(&self, node: NodeId) -> Option<&str> {
        self.instance_types
            .iter()
            .find(|t| node_id_for(&self.region, t) == node)
            .map(String::as_str)
    }

    /// One instance's price per hour: the caller's, the built-in table's, or
    /// 0 (unknown).
    fn price_of(&self, instance_type: &str) -> f64 {
        self.prices
            .get(instance_type)
            .copied()
            .or_else(|| known_type(instance_type).map(|t| t.price_per_hour))
            .unwrap_or(0.0)
    }

    /// One instance's size: as `inventory` learned it, or from the table.
    pub(super) fn known_size(&self, instance_type: &str) -> Option<InstanceSize> {
        let learned = lock(&self.sizes).get(instance_type).copied();
        learned.or_else(|| known_type(instance_type).map(KnownType::size))
    }
}

/// An instance type name like `m5.xlarge`.
pub(super) fn validate_instance_type(name: &str) -> Result<(), BackendError> {
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
            BACKEND,
            "instance type",
            name,
            "must be like m5.xlarge: lowercase letters, digits, `.` and `-`, at most 32",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::testing::backend;
    use crate::aws::DEFAULT_INSTANCE_TYPES;

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
}
