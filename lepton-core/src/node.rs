//! Nodes: what offers capacity (a server, a VM, a container host).
//!
//! [`NodeSpec`] is Lepton's own description of a node. An orchestrator that
//! already has a node type implements [`Resource`] for it instead, and the
//! scheduler copies what it needs once, when the node is added.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::resources::Resources;

/// The most GPUs one node may declare.
pub const MAX_GPUS_PER_NODE: u32 = 64;

/// The highest price per hour a node may have (a million): beyond any
/// machine's, and far enough below `f64::MAX` that a fleet's cost over a
/// year stays finite.
pub const MAX_PRICE_PER_HOUR: f64 = 1e6;

/// Identifies a node. Displayed as `n-<number>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n-{}", self.0)
    }
}

/// What kind of machine a node is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeKind {
    /// A physical server.
    #[default]
    Server,
    /// A virtual machine.
    Vm,
    /// A host that runs containers.
    ContainerHost,
}

/// Whether a node takes work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeState {
    /// Healthy and taking new tasks.
    #[default]
    Ready,
    /// Healthy, keeps its tasks, takes no new ones.
    Cordoned,
    /// Unreachable or failed: its tasks have been taken back.
    Down,
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeState::Ready => "ready",
            NodeState::Cordoned => "cordoned",
            NodeState::Down => "down",
        })
    }
}

/// A GPU model name such as `V100M16`. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GpuModel(Arc<str>);

impl GpuModel {
    /// Wraps a model name.
    pub fn new(name: impl AsRef<str>) -> Self {
        GpuModel(Arc::from(name.as_ref()))
    }

    /// The model name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GpuModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The GPUs of a node: all of one model, as in a real server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpus {
    /// The model; `None` only when `count` is zero.
    #[serde(default)]
    pub model: Option<GpuModel>,
    /// How many GPUs.
    #[serde(default)]
    pub count: u32,
}

impl Gpus {
    /// No GPU.
    pub fn none() -> Self {
        Gpus::default()
    }

    /// `count` GPUs of `model`.
    pub fn new(model: impl AsRef<str>, count: u32) -> Self {
        Gpus {
            model: Some(GpuModel::new(model)),
            count,
        }
    }
}

/// Key/value labels, ordered by key so iteration is deterministic.
pub type Labels = BTreeMap<String, String>;

/// A taint: the node repels tasks that do not tolerate it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    /// The taint's key.
    pub key: String,
    /// The taint's value (may be empty).
    #[serde(default)]
    pub value: String,
}

impl Taint {
    /// A taint `key=value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Taint {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Everything the scheduler knows about a node when it is added.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Unique id.
    pub id: NodeId,
    /// A human-readable name, if any.
    #[serde(default)]
    pub name: Option<String>,
    /// Server, VM or container host.
    #[serde(default)]
    pub kind: NodeKind,
    /// Scalar capacity (CPU, memory, network, storage, extended).
    pub capacity: Resources,
    /// GPU devices.
    #[serde(default)]
    pub gpus: Gpus,
    /// Labels matched by task node selectors.
    #[serde(default, deserialize_with = "crate::resources::unique_keys")]
    pub labels: Labels,
    /// Taints; a task must tolerate each to land here.
    #[serde(default)]
    pub taints: Vec<Taint>,
    /// Availability zone, if any.
    #[serde(default)]
    pub zone: Option<String>,
    /// Price per hour in the operator's currency (0 when unknown).
    #[serde(default)]
    pub price_per_hour: f64,
    /// The largest request one task may make here, when that is less than
    /// the capacity: a node standing for a pool of machines (EC2 instances
    /// of one type) offers the pool's total, but each task runs on one
    /// machine. `None`: the whole capacity. Boxed: few nodes have one.
    #[serde(default)]
    pub max_task: Option<Box<Resources>>,
}

impl NodeSpec {
    /// A server with `capacity` and nothing else set.
    pub fn new(id: NodeId, capacity: Resources) -> Self {
        NodeSpec {
            id,
            name: None,
            kind: NodeKind::Server,
            capacity,
            gpus: Gpus::none(),
            labels: Labels::new(),
            taints: Vec::new(),
            zone: None,
            price_per_hour: 0.0,
            max_task: None,
        }
    }

    /// Sets the largest request one task may make here (see
    /// [`max_task`](Self::max_task)).
    pub fn with_max_task(mut self, max_task: Resources) -> Self {
        self.max_task = Some(Box::new(max_task));
        self
    }

    /// Sets the human-readable name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Checks the node is well formed: it offers something, declares at most
    /// [`MAX_GPUS_PER_NODE`] GPUs, and has a price from 0 to
    /// [`MAX_PRICE_PER_HOUR`].
    ///
    /// # Errors
    /// [`Error::ZeroCapacity`], [`Error::TooManyGpus`] or [`Error::InvalidPrice`].
    pub fn validate(&self) -> Result<(), Error> {
        let node = self.id;
        if self.gpus.count > MAX_GPUS_PER_NODE {
            return Err(Error::TooManyGpus {
                node,
                count: self.gpus.count,
                max: MAX_GPUS_PER_NODE,
            });
        }
        if self.capacity.is_zero() && self.gpus.count == 0 {
            return Err(Error::ZeroCapacity { node });
        }
        if !(0.0..=MAX_PRICE_PER_HOUR).contains(&self.price_per_hour) {
            return Err(Error::InvalidPrice {
                node,
                price: self.price_per_hour,
            });
        }
        Ok(())
    }

    /// Sets the kind.
    pub fn with_kind(mut self, kind: NodeKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the GPUs.
    pub fn with_gpus(mut self, gpus: Gpus) -> Self {
        self.gpus = gpus;
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a taint.
    pub fn with_taint(mut self, taint: Taint) -> Self {
        self.taints.push(taint);
        self
    }

    /// Sets the zone.
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Sets the price per hour.
    pub fn with_price_per_hour(mut self, price: f64) -> Self {
        self.price_per_hour = price;
        self
    }
}

/// Something that offers capacity. Implement it for your own node type.
///
/// [`NodeSpec`] is the one model of a node: an implementation says how its
/// type converts to one, and the scheduler calls
/// [`to_spec`](Resource::to_spec) once, when the node is added. There are
/// no per-field getters with defaults that an implementation could forget.
///
/// ```
/// use lepton_core::model::{NodeKind, Resource};
/// use lepton_core::{NodeId, NodeSpec, Resources};
///
/// struct Vm { uuid: u64, vcpus: u64, ram_gib: u64 }
///
/// impl Resource for Vm {
///     fn to_spec(&self) -> NodeSpec {
///         NodeSpec::new(NodeId(self.uuid), Resources::new(self.vcpus * 1_000, self.ram_gib * 1_024))
///             .with_kind(NodeKind::Vm)
///     }
/// }
/// assert_eq!(Vm { uuid: 1, vcpus: 2, ram_gib: 4 }.to_spec().kind, NodeKind::Vm);
/// ```
pub trait Resource {
    /// Lepton's description of this node.
    fn to_spec(&self) -> NodeSpec;
}

impl Resource for NodeSpec {
    fn to_spec(&self) -> NodeSpec {
        self.clone()
    }
}
