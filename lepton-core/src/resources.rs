//! Multi-dimensional amounts of capacity, with checked arithmetic.
//!
//! A [`Resources`] value is both what a node offers and what a task asks for.
//! Every operation that could overflow or underflow is checked and reports the
//! [`Dimension`] that would have gone wrong, so accounting can never wrap.
//! GPUs are not a scalar dimension: they are counted per device (see
//! [`GpuRequest`] and [`crate::Gpus`]) so that several tasks can share one GPU.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// Per-GPU capacity in milli-GPUs: one whole GPU.
pub const GPU_MILLI_PER_GPU: u32 = 1000;

/// The name of an extended resource, such as `"example.com/fpga"`.
///
/// Cheap to clone: the text is shared — also between names made apart
/// with the same text, as long as few distinct names are in use (the
/// first 64 made), so that equal names compare by pointer. Every
/// comparison still means the text's.
#[derive(Debug, Clone, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ResourceName(Arc<str>);

/// How many distinct names share their text (a bound, so that names from
/// untrusted input cannot grow the table).
const SHARED_NAMES: usize = 64;

/// The texts shared, first made first.
static SHARED: Mutex<Vec<Arc<str>>> = Mutex::new(Vec::new());

impl ResourceName {
    /// Wraps a name.
    pub fn new(name: impl AsRef<str>) -> Self {
        // A poisoned lock still holds valid texts.
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        ResourceName(share(&mut shared, name.as_ref()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `name`'s text from `shared` if there, else made (and kept there while
/// it holds fewer than [`SHARED_NAMES`]).
fn share(shared: &mut Vec<Arc<str>>, name: &str) -> Arc<str> {
    if let Some(text) = shared.iter().find(|text| &***text == name) {
        return Arc::clone(text);
    }
    let text: Arc<str> = Arc::from(name);
    if shared.len() < SHARED_NAMES {
        shared.push(Arc::clone(&text));
    }
    text
}

impl PartialEq for ResourceName {
    /// The texts are equal: the same text shared, or equal texts.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl std::hash::Hash for ResourceName {
    /// The text's hash, as equality is the text's.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl<'de> Deserialize<'de> for ResourceName {
    /// A string, as [`ResourceName::new`] makes it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(ResourceName::new(name))
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One scalar dimension of [`Resources`], used to say which one was at fault.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dimension {
    /// CPU in milli-cores.
    CpuMilli,
    /// Memory in MiB.
    MemoryMib,
    /// Network bandwidth in Mbit/s.
    NetworkMbps,
    /// Local storage in GiB.
    StorageGib,
    /// A named extended resource.
    Extended(ResourceName),
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dimension::CpuMilli => f.write_str("cpu_milli"),
            Dimension::MemoryMib => f.write_str("memory_mib"),
            Dimension::NetworkMbps => f.write_str("network_mbps"),
            Dimension::StorageGib => f.write_str("storage_gib"),
            Dimension::Extended(name) => write!(f, "extended resource {name}"),
        }
    }
}

/// Capacity offered by a node or requested by a task, one amount per dimension.
///
/// Extended resources are kept sorted by name with no zero amounts, so two
/// equal amounts always compare equal; that holds for values read with serde
/// too, where extended resources are a map from name to amount:
/// `{"cpu_milli": 4000, "extended": {"example.com/fpga": 1}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ResourcesRepr", into = "ResourcesRepr")]
pub struct Resources {
    /// CPU in milli-cores (1000 = one core).
    pub cpu_milli: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Network bandwidth in Mbit/s.
    pub network_mbps: u64,
    /// Local storage in GiB.
    pub storage_gib: u64,
    /// Named extended resources, sorted by name, no zero amounts.
    extended: SmallVec<[(ResourceName, u64); 2]>,
}

/// How [`Resources`] reads and writes: extended resources as a map, which
/// makes them sorted and unique by construction.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourcesRepr {
    #[serde(default)]
    cpu_milli: u64,
    #[serde(default)]
    memory_mib: u64,
    #[serde(default)]
    network_mbps: u64,
    #[serde(default)]
    storage_gib: u64,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    extended: BTreeMap<ResourceName, u64>,
}

/// Reads a map, refusing a key given twice. Serde's own map impls keep the
/// last value without a word, so `{"fpga": 1, "fpga": 8}` would silently
/// offer 8; this names the key instead.
pub(crate) fn unique_keys<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + fmt::Display,
    V: Deserialize<'de>,
{
    struct UniqueKeys<K, V>(std::marker::PhantomData<(K, V)>);

    impl<'de, K, V> Visitor<'de> for UniqueKeys<K, V>
    where
        K: Deserialize<'de> + Ord + fmt::Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<K, V>()? {
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_map(UniqueKeys(std::marker::PhantomData))
}

impl From<ResourcesRepr> for Resources {
    fn from(repr: ResourcesRepr) -> Self {
        Resources {
            cpu_milli: repr.cpu_milli,
            memory_mib: repr.memory_mib,
            network_mbps: repr.network_mbps,
            storage_gib: repr.storage_gib,
            extended: repr
                .extended
                .into_iter()
                .filter(|(_, amount)| *amount > 0)
                .collect(),
        }
    }
}

impl From<Resources> for ResourcesRepr {
    fn from(resources: Resources) -> Self {
        ResourcesRepr {
            cpu_milli: resources.cpu_milli,
            memory_mib: resources.memory_mib,
            network_mbps: resources.network_mbps,
            storage_gib: resources.storage_gib,
            extended: resources.extended.into_iter().collect(),
        }
    }
}

impl Resources {
    /// No resources at all.
    pub fn zero() -> Self {
        Resources::default()
    }

    /// CPU and memory only, the common case.
    pub fn new(cpu_milli: u64, memory_mib: u64) -> Self {
        Resources {
            cpu_milli,
            memory_mib,
            ..Resources::default()
        }
    }

    /// Sets the network bandwidth.
    pub fn with_network_mbps(mut self, network_mbps: u64) -> Self {
        self.network_mbps = network_mbps;
        self
    }

    /// Sets the local storage.
    pub fn with_storage_gib(mut self, storage_gib: u64) -> Self {
        self.storage_gib = storage_gib;
        self
    }

    /// Sets the amount of an extended resource (zero removes it).
    pub fn with_extended(self, name: impl AsRef<str>, amount: u64) -> Self {
        self.with_extended_name(ResourceName::new(name), amount)
    }

    /// [`with_extended`](Self::with_extended) with the name made already.
    fn with_extended_name(mut self, name: ResourceName, amount: u64) -> Self {
        match self.extended.binary_search_by(|(n, _)| n.cmp(&name)) {
            Ok(i) if amount == 0 => {
                self.extended.remove(i);
            }
            Ok(i) => self.extended[i].1 = amount,
            Err(_) if amount == 0 => {}
            Err(i) => self.extended.insert(i, (name, amount)),
        }
        self
    }

    /// The amount of an extended resource (zero when absent).
    pub fn extended(&self, name: &str) -> u64 {
        self.extended
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map_or(0, |(_, amount)| *amount)
    }

    /// The amount of extended resource `name` (0 if absent): as
    /// [`extended`](Self::extended), comparing names as
    /// [`ResourceName`]s (by pointer first).
    fn amount_of(&self, name: &ResourceName) -> u64 {
        self.extended
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, amount)| *amount)
    }

    /// The extended resources, sorted by name.
    pub fn extended_iter(&self) -> impl Iterator<Item = (&ResourceName, u64)> {
        self.extended.iter().map(|(n, a)| (n, *a))
    }

    /// True when every dimension is zero.
    pub fn is_zero(&self) -> bool {
        self.cpu_milli == 0
            && self.memory_mib == 0
            && self.network_mbps == 0
            && self.storage_gib == 0
            && self.extended.is_empty()
    }

    /// True when `request` fits in `self` in every dimension.
    pub fn fits(&self, request: &Resources) -> bool {
        request.cpu_milli <= self.cpu_milli
            && request.memory_mib <= self.memory_mib
            && request.network_mbps <= self.network_mbps
            && request.storage_gib <= self.storage_gib
            && request
                .extended
                .iter()
                .all(|(name, amount)| *amount <= self.amount_of(name))
    }

    /// Subtracts `other`, or names the first dimension that would go below zero.
    ///
    /// # Errors
    /// The [`Dimension`] where `other` exceeds `self`; `self` is then unchanged.
    pub fn checked_sub(&self, other: &Resources) -> Result<Resources, Dimension> {
        let mut out = self.clone();
        out.cpu_milli = sub(self.cpu_milli, other.cpu_milli, Dimension::CpuMilli)?;
        out.memory_mib = sub(self.memory_mib, other.memory_mib, Dimension::MemoryMib)?;
        out.network_mbps = sub(
            self.network_mbps,
            other.network_mbps,
            Dimension::NetworkMbps,
        )?;
        out.storage_gib = sub(self.storage_gib, other.storage_gib, Dimension::StorageGib)?;
        for (name, amount) in &other.extended {
            let have = self.amount_of(name);
            let left = sub(have, *amount, Dimension::Extended(name.clone()))?;
            out = out.with_extended_name(name.clone(), left);
        }
        Ok(out)
    }

    /// Adds `other`, or names the first dimension that would overflow.
    ///
    /// # Errors
    /// The [`Dimension`] where the sum exceeds `u64::MAX`.
    pub fn checked_add(&self, other: &Resources) -> Result<Resources, Dimension> {
        let mut out = self.clone();
        out.cpu_milli = add(self.cpu_milli, other.cpu_milli, Dimension::CpuMilli)?;
        out.memory_mib = add(self.memory_mib, other.memory_mib, Dimension::MemoryMib)?;
        out.network_mbps = add(
            self.network_mbps,
            other.network_mbps,
            Dimension::NetworkMbps,
        )?;
        out.storage_gib = add(self.storage_gib, other.storage_gib, Dimension::StorageGib)?;
        for (name, amount) in &other.extended {
            let have = self.amount_of(name);
            let sum = add(have, *amount, Dimension::Extended(name.clone()))?;
            out = out.with_extended_name(name.clone(), sum);
        }
        Ok(out)
    }
}

fn sub(have: u64, take: u64, dimension: Dimension) -> Result<u64, Dimension> {
    have.checked_sub(take).ok_or(dimension)
}

fn add(have: u64, more: u64, dimension: Dimension) -> Result<u64, Dimension> {
    have.checked_add(more).ok_or(dimension)
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cpu_milli, {} memory_mib",
            self.cpu_milli, self.memory_mib
        )?;
        if self.network_mbps > 0 {
            write!(f, ", {} network_mbps", self.network_mbps)?;
        }
        if self.storage_gib > 0 {
            write!(f, ", {} storage_gib", self.storage_gib)?;
        }
        for (name, amount) in &self.extended {
            write!(f, ", {amount} {name}")?;
        }
        Ok(())
    }
}

/// The GPUs a task asks for.
///
/// `count` distinct GPUs, each with at least `milli_per_gpu` milli-GPUs free.
/// With `count == 1` and `milli_per_gpu < 1000` the task *shares* a GPU with
/// others, the sum of their shares on that GPU never exceeding 1000.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuRequest {
    /// How many distinct GPUs.
    pub count: u32,
    /// Milli-GPUs needed on each of them (1..=1000 when `count > 0`).
    pub milli_per_gpu: u32,
}

impl GpuRequest {
    /// No GPU.
    pub const NONE: GpuRequest = GpuRequest {
        count: 0,
        milli_per_gpu: 0,
    };

    /// `count` whole GPUs.
    pub fn whole(count: u32) -> Self {
        GpuRequest {
            count,
            milli_per_gpu: GPU_MILLI_PER_GPU,
        }
    }

    /// A share of one GPU, in milli-GPUs.
    pub fn shared(milli: u32) -> Self {
        GpuRequest {
            count: 1,
            milli_per_gpu: milli,
        }
    }

    /// True when no GPU is requested.
    pub fn is_none(&self) -> bool {
        self.count == 0
    }

    /// The total milli-GPUs requested over all GPUs.
    pub fn total_milli(&self) -> u64 {
        u64::from(self.count) * u64::from(self.milli_per_gpu)
    }
}

impl fmt::Display for GpuRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} GPU x {} milli", self.count, self.milli_per_gpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_their_text_up_to_the_bound_and_compare_by_it() {
        let mut shared = Vec::new();
        let a = share(&mut shared, "rdma");
        assert!(Arc::ptr_eq(&a, &share(&mut shared, "rdma")));
        assert!(!Arc::ptr_eq(&a, &share(&mut shared, "fpga")));
        for i in 0..2 * SHARED_NAMES {
            share(&mut shared, &format!("name-{i}"));
        }
        assert_eq!(shared.len(), SHARED_NAMES);
        // Past the bound a name is made afresh each time, still equal.
        let late = ResourceName(share(&mut shared, "late"));
        let again = ResourceName(share(&mut shared, "late"));
        assert!(!Arc::ptr_eq(&late.0, &again.0));
        assert_eq!(late, again);
        assert_ne!(late, ResourceName(share(&mut shared, "later")));
        // Made by `new` or read from JSON, the name is the same.
        let read: ResourceName = serde_json::from_str("\"late\"").unwrap();
        assert_eq!(read, ResourceName::new("late"));
        assert_eq!(serde_json::to_string(&read).unwrap(), "\"late\"");
    }

    #[test]
    fn fits_checks_every_dimension() {
        let node = Resources::new(4000, 8192).with_extended("fpga", 1);
        assert!(node.fits(&Resources::new(4000, 8192)));
        assert!(!node.fits(&Resources::new(4001, 1)));
        assert!(!node.fits(&Resources::new(1, 8193)));
        assert!(node.fits(&Resources::new(1, 1).with_extended("fpga", 1)));
        assert!(!node.fits(&Resources::new(1, 1).with_extended("fpga", 2)));
        assert!(!node.fits(&Resources::new(1, 1).with_extended("tpu", 1)));
        assert!(!node.fits(&Resources::new(1, 1).with_network_mbps(1)));
    }

    #[test]
    fn checked_sub_names_the_dimension_that_underflows() {
        let node = Resources::new(1000, 1024).with_storage_gib(10);
        let left = node.checked_sub(&Resources::new(400, 24)).unwrap();
        assert_eq!(left, Resources::new(600, 1000).with_storage_gib(10));
        assert_eq!(
            node.checked_sub(&Resources::new(1, 1).with_storage_gib(11)),
            Err(Dimension::StorageGib)
        );
        assert_eq!(
            node.checked_sub(&Resources::zero().with_extended("fpga", 1)),
            Err(Dimension::Extended(ResourceName::new("fpga")))
        );
    }

    #[test]
    fn checked_add_names_the_dimension_that_overflows() {
        let big = Resources::new(u64::MAX, 0);
        assert_eq!(
            big.checked_add(&Resources::new(1, 0)),
            Err(Dimension::CpuMilli)
        );
        let sum = Resources::new(1, 2)
            .with_extended("fpga", 1)
            .checked_add(&Resources::new(3, 4).with_extended("fpga", 2))
            .unwrap();
        assert_eq!(sum, Resources::new(4, 6).with_extended("fpga", 3));
    }

    #[test]
    fn extended_resources_compare_equal_whatever_the_insertion_order() {
        let a = Resources::zero()
            .with_extended("b", 1)
            .with_extended("a", 2);
        let b = Resources::zero()
            .with_extended("a", 2)
            .with_extended("b", 1);
        assert_eq!(a, b);
        assert_eq!(
            a.with_extended("a", 0),
            Resources::zero().with_extended("b", 1)
        );
    }

    #[test]
    fn serde_keeps_extended_resources_canonical() {
        let read: Resources =
            serde_json::from_str(r#"{"cpu_milli": 5, "extended": {"b": 1, "a": 2, "c": 0}}"#)
                .unwrap();
        assert_eq!(
            read,
            Resources::new(5, 0)
                .with_extended("a", 2)
                .with_extended("b", 1)
        );
        let written = serde_json::to_string(&read).unwrap();
        assert_eq!(
            written,
            r#"{"cpu_milli":5,"memory_mib":0,"network_mbps":0,"storage_gib":0,"extended":{"a":2,"b":1}}"#
        );
        assert!(serde_json::from_str::<Resources>(r#"{"cpu": 5}"#).is_err());
    }

    #[test]
    fn gpu_request_totals() {
        assert_eq!(GpuRequest::whole(4).total_milli(), 4000);
        assert_eq!(GpuRequest::shared(250).total_milli(), 250);
        assert!(GpuRequest::NONE.is_none());
    }
}
