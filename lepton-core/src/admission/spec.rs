//! What queues are declared with and count: [`QueueSpec`], its
//! [`Limits`], and the [`Amounts`] of CPU, memory and GPUs.

use serde::{Deserialize, Serialize};

use crate::cluster::ClusterState;
use crate::node::NodeState;
use crate::resources::GPU_MILLI_PER_GPU;
use crate::task::TaskSpec;

/// Amounts of the resources queues count: CPU, memory and GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amounts {
    /// CPU, milli-cores.
    pub cpu_milli: u64,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// GPUs, milli-GPUs (a whole GPU is 1000).
    pub gpu_milli: u64,
}

impl Amounts {
    /// What `task` asks for.
    pub fn of(task: &TaskSpec) -> Amounts {
        Amounts {
            cpu_milli: task.request.cpu_milli,
            memory_mib: task.request.memory_mib,
            gpu_milli: task.gpu.total_milli(),
        }
    }

    /// Both amounts together (saturating).
    pub fn plus(self, other: Amounts) -> Amounts {
        Amounts {
            cpu_milli: self.cpu_milli.saturating_add(other.cpu_milli),
            memory_mib: self.memory_mib.saturating_add(other.memory_mib),
            gpu_milli: self.gpu_milli.saturating_add(other.gpu_milli),
        }
    }

    /// These amounts less `other` (saturating at 0).
    pub fn minus(self, other: Amounts) -> Amounts {
        Amounts {
            cpu_milli: self.cpu_milli.saturating_sub(other.cpu_milli),
            memory_mib: self.memory_mib.saturating_sub(other.memory_mib),
            gpu_milli: self.gpu_milli.saturating_sub(other.gpu_milli),
        }
    }

    /// Each resource with its name, in order.
    pub(super) fn named(self) -> [(&'static str, u64); 3] {
        [
            ("cpu_milli", self.cpu_milli),
            ("memory_mib", self.memory_mib),
            ("gpu_milli", self.gpu_milli),
        ]
    }

    /// The largest share of `capacity` these amounts are (resources the
    /// cluster has none of count 0).
    pub fn dominant_share(self, capacity: Amounts) -> f64 {
        let share = |used: u64, total: u64| match total {
            0 => 0.0,
            total => used as f64 / total as f64,
        };
        share(self.cpu_milli, capacity.cpu_milli)
            .max(share(self.memory_mib, capacity.memory_mib))
            .max(share(self.gpu_milli, capacity.gpu_milli))
    }
}

/// What the ready nodes of `cluster` offer in all, as the queues count
/// it: the capacity their shares are of, that admitted tasks must fit in
/// (a [`CoreScheduler`](crate::CoreScheduler) admits against it).
pub fn ready_capacity(cluster: &ClusterState) -> Amounts {
    cluster
        .nodes()
        .iter()
        .filter(|node| node.state() == NodeState::Ready)
        .fold(Amounts::default(), |sum, node| {
            let spec = node.spec();
            sum.plus(Amounts {
                cpu_milli: spec.capacity.cpu_milli,
                memory_mib: spec.capacity.memory_mib,
                gpu_milli: u64::from(spec.gpus.count) * u64::from(GPU_MILLI_PER_GPU),
            })
        })
}

/// A queue's maxima; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// CPU, milli-cores.
    #[serde(default)]
    pub cpu_milli: Option<u64>,
    /// Memory, MiB.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// GPUs, milli-GPUs.
    #[serde(default)]
    pub gpu_milli: Option<u64>,
}

impl Limits {
    /// No limit.
    pub const NONE: Limits = Limits {
        cpu_milli: None,
        memory_mib: None,
        gpu_milli: None,
    };

    /// At most `cpu_milli` of CPU, nothing else limited.
    pub fn cpu_milli(cpu_milli: u64) -> Limits {
        Limits {
            cpu_milli: Some(cpu_milli),
            ..Limits::NONE
        }
    }

    /// At most `memory_mib` of memory besides.
    pub fn with_memory_mib(mut self, memory_mib: u64) -> Limits {
        self.memory_mib = Some(memory_mib);
        self
    }

    /// At most `gpu_milli` of GPUs besides.
    pub fn with_gpu_milli(mut self, gpu_milli: u64) -> Limits {
        self.gpu_milli = Some(gpu_milli);
        self
    }

    /// Whether no amount is limited.
    pub fn is_none(&self) -> bool {
        *self == Limits::NONE
    }

    /// Whether `amounts` stay within these amounts read as a guarantee:
    /// each at most its resource's value, `None` counting as 0.
    pub(super) fn covers(&self, amounts: Amounts) -> bool {
        amounts.cpu_milli <= self.cpu_milli.unwrap_or(0)
            && amounts.memory_mib <= self.memory_mib.unwrap_or(0)
            && amounts.gpu_milli <= self.gpu_milli.unwrap_or(0)
    }

    /// The first resource `amounts` exceed: its name, the amount and the
    /// limit.
    pub(super) fn exceeded(&self, amounts: Amounts) -> Option<(&'static str, u64, u64)> {
        let over = |name, amount: u64, limit: Option<u64>| {
            limit
                .filter(|&limit| amount > limit)
                .map(|limit| (name, amount, limit))
        };
        over("cpu_milli", amounts.cpu_milli, self.cpu_milli)
            .or_else(|| over("memory_mib", amounts.memory_mib, self.memory_mib))
            .or_else(|| over("gpu_milli", amounts.gpu_milli, self.gpu_milli))
    }
}

/// A queue: its path, its maxima and its weight in the fair share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QueueSpec {
    /// The path, `/`-separated (`org/team/user`): segments of letters,
    /// digits, `.`, `_` and `-`.
    pub name: String,
    /// What the queue and every queue below it may hold at once.
    #[serde(default)]
    pub max: Limits,
    /// What the queue itself is promised (`None`: nothing of that
    /// resource): a task that keeps it within its guarantee is admitted
    /// even when other queues have taken the cluster — borrowing what this
    /// queue left idle — and the scheduler reclaims the room by preempting
    /// tasks of queues above their own guarantee (never taking one below
    /// it). Declare guarantees that add up to no more than the cluster.
    #[serde(default, skip_serializing_if = "Limits::is_none")]
    pub guarantee: Limits,
    /// Its weight in the fair share (positive; 1 by default): a queue of
    /// weight 2 is entitled to twice the dominant share.
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

impl QueueSpec {
    /// The queue `name`, without limits, of weight 1.
    pub fn new(name: impl Into<String>) -> QueueSpec {
        QueueSpec {
            name: name.into(),
            max: Limits::NONE,
            guarantee: Limits::NONE,
            weight: 1.0,
        }
    }

    /// Sets its guarantee.
    pub fn with_guarantee(mut self, guarantee: Limits) -> QueueSpec {
        self.guarantee = guarantee;
        self
    }

    /// Sets its maxima.
    pub fn with_max(mut self, max: Limits) -> QueueSpec {
        self.max = max;
        self
    }

    /// Sets its weight.
    pub fn with_weight(mut self, weight: f64) -> QueueSpec {
        self.weight = weight;
        self
    }
}

/// The longest queue path.
pub const MAX_QUEUE_NAME: usize = 253;

/// The deepest queue path.
pub const MAX_QUEUE_DEPTH: usize = 16;

/// Why `name` is no queue path, if it is not.
pub(super) fn invalid_name(name: &str) -> Option<&'static str> {
    if name.len() > MAX_QUEUE_NAME {
        return Some("longer than 253 characters");
    }
    if name.split('/').count() > MAX_QUEUE_DEPTH {
        return Some("deeper than 16 levels");
    }
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    (!name.split('/').all(segment_ok))
        .then_some("segments must be non-empty letters, digits, '.', '_' or '-', separated by '/'")
}

/// Whether `amounts` fit in `capacity`, resource by resource.
pub(super) fn within(amounts: Amounts, capacity: Amounts) -> bool {
    amounts.cpu_milli <= capacity.cpu_milli
        && amounts.memory_mib <= capacity.memory_mib
        && amounts.gpu_milli <= capacity.gpu_milli
}
