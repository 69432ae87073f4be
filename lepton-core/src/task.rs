//! Tasks: what asks for capacity.
//!
//! [`TaskSpec`] is Lepton's own description of a task. An orchestrator that
//! already has a task type implements [`Task`] for it; the scheduler copies
//! what it needs once, at submission.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::node::{GpuModel, Labels, NodeId, Taint};
use crate::resources::{GpuRequest, Resources, GPU_MILLI_PER_GPU};

/// Identifies a task. Displayed as `t-<number>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t-{}", self.0)
    }
}

/// One placement of a task: the task, and which placement of it this is
/// (1 for the first). Events from a backend name the run they concern, so a
/// late report from an earlier placement is told apart from the current one.
/// Displayed as `t-<number>#<attempt>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Run {
    /// The task.
    pub task: TaskId,
    /// Which placement of it, counting from 1.
    pub attempt: u32,
}

impl Run {
    /// Placement `attempt` (from 1) of `task`.
    pub const fn new(task: TaskId, attempt: u32) -> Run {
        Run { task, attempt }
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.task, self.attempt)
    }
}

/// Scheduling priority: higher is served first. 256 levels.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Priority(pub u8);

impl Priority {
    /// The lowest priority.
    pub const LOWEST: Priority = Priority(0);
    /// The default priority.
    pub const NORMAL: Priority = Priority(128);
    /// The highest priority.
    pub const HIGHEST: Priority = Priority(u8::MAX);
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "priority {}", self.0)
    }
}

/// Quality-of-service class, as traces and Kubernetes label tasks.
///
/// What the scheduler makes of it:
/// - **Eviction order.** Preemption evicts, and the rebalancer moves, the
///   lowest priority first; among equal priorities, best-effort work first,
///   then burstable, latency-sensitive and guaranteed. Priority always comes
///   first: a guaranteed task of priority 10 goes before a best-effort one
///   of priority 20 (kube-scheduler's preemption likewise ranks by priority;
///   the kubelet's eviction under node pressure, which starts with
///   best-effort pods, is where the class order comes from).
/// - **Best-effort work never preempts**, whatever its priority: it waits
///   for room.
/// - **Nothing is over-committed by measured usage.** Every decision —
///   placement, preemption, the rebalancer's hot and cold nodes — counts
///   what tasks *reserve*; what they are measured to use
///   ([`ClusterNode::usage`](crate::cluster::ClusterNode::usage)) is for policies and
///   operators to read, never booked against, so even a policy that ranks
///   by it cannot over-commit a node. A guaranteed task always holds
///   everything it asked for, however little it is seen using.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum QosClass {
    /// Resources reserved exactly; evicted last among equal priorities.
    Guaranteed,
    /// Latency-sensitive service; evicted before guaranteed work only.
    LatencySensitive,
    /// May use more than requested when available.
    #[default]
    Burstable,
    /// Runs on leftovers: evicted first among equal priorities, and never
    /// preempts.
    BestEffort,
}

/// What kind of work a task is; it picks the task's retry policy
/// (see [`SchedulerConfig`](crate::scheduler::SchedulerConfig)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskKind {
    /// Runs to completion; retried a few times.
    #[default]
    Batch,
    /// Long-running; retried with growing delays, without limit by default.
    Service,
}

/// A toleration: lets a task land on nodes with a matching taint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toleration {
    /// The taint key tolerated.
    pub key: String,
    /// The taint value tolerated; `None` tolerates every value of the key.
    #[serde(default)]
    pub value: Option<String>,
}

impl Toleration {
    /// Tolerates every taint with `key`.
    pub fn key(key: impl Into<String>) -> Self {
        Toleration {
            key: key.into(),
            value: None,
        }
    }

    /// Tolerates the taint `key=value` only.
    pub fn exact(key: impl Into<String>, value: impl Into<String>) -> Self {
        Toleration {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// Whether this toleration lets a task onto a node with `taint`: the
    /// same key, and the same value unless it tolerates every value.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        self.key == taint.key && self.value.as_ref().is_none_or(|v| *v == taint.value)
    }
}

/// Where a task may run, beyond having enough capacity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// GPU models the task accepts; empty accepts any.
    #[serde(default)]
    pub gpu_models: Vec<GpuModel>,
    /// Labels the node must carry, each with this exact value.
    #[serde(default)]
    pub node_selector: Labels,
    /// Taints the task tolerates.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// Tasks with the same anti-affinity group never share a node
    /// (replicas of one service, for example) — or, with `max_per_node`,
    /// no more than that many of them do.
    #[serde(default)]
    pub anti_affinity: Option<String>,
    /// With `anti_affinity`: the task goes only to a node holding fewer
    /// than this many tasks of its group (Nomad's `distinct_property`
    /// with a count); absent means 1. At least 1.
    #[serde(default)]
    pub max_per_node: Option<u32>,
    /// Nodes the task must not run on.
    #[serde(default)]
    pub avoid_nodes: Vec<NodeId>,
}

/// Everything the scheduler knows about a task when it is submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Unique id.
    pub id: TaskId,
    /// A human-readable name, if any.
    #[serde(default)]
    pub name: Option<String>,
    /// Scalar resources requested.
    pub request: Resources,
    /// GPUs requested.
    #[serde(default)]
    pub gpu: GpuRequest,
    /// Priority in the queue.
    #[serde(default = "default_priority")]
    pub priority: Priority,
    /// QoS class.
    #[serde(default)]
    pub qos: QosClass,
    /// Batch or service: picks the retry policy.
    #[serde(default)]
    pub kind: TaskKind,
    /// Longest run time in milliseconds before the task counts as timed out.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Placement constraints.
    #[serde(default)]
    pub constraints: Constraints,
    /// What to run, for the backend to read (like a Nomad task's `config`):
    /// for example `image` and `command` for Docker. The scheduler ignores it.
    #[serde(default)]
    pub config: Labels,
    /// The tenant queue it is submitted to (a path, `org/team/user`): it
    /// waits there until the queue's share and maxima admit it (see
    /// [`admission`](crate::admission)). `None`: straight to the scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The gang it belongs to: tasks that start together or not at all.
    /// `None`: it starts on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gang: Option<Gang>,
}

/// A group of tasks that must start together or not at all — the workers
/// of a distributed training job, the ranks of an MPI job. Every member
/// names the gang alike; see [the scheduler's gangs](crate::CoreScheduler#gangs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Gang {
    /// Its name, unique among the gangs waiting or running.
    pub name: String,
    /// Members that must be placed in one cycle for any of them to start
    /// (at least 1); once that many run, further members start as they
    /// fit. A failure that leaves fewer running stops the others, and the
    /// gang is placed again as a whole.
    pub min_available: u32,
    /// How long its members may wait for the gang to start, in
    /// milliseconds, before they fail; `None`: without limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl Gang {
    /// The gang `name`, started once `min_available` members can be placed
    /// together, waiting without limit.
    pub fn new(name: impl Into<String>, min_available: u32) -> Gang {
        Gang {
            name: name.into(),
            min_available,
            timeout_ms: None,
        }
    }

    /// Its members fail if the gang has not started within `timeout_ms`.
    pub fn with_timeout_ms(mut self, timeout_ms: u64) -> Gang {
        self.timeout_ms = Some(timeout_ms);
        self
    }
}

fn default_priority() -> Priority {
    Priority::NORMAL
}

impl TaskSpec {
    /// A task with `request`, normal priority and no constraints.
    pub fn new(id: TaskId, request: Resources) -> Self {
        TaskSpec {
            id,
            name: None,
            request,
            gpu: GpuRequest::NONE,
            priority: Priority::NORMAL,
            qos: QosClass::default(),
            kind: TaskKind::default(),
            timeout_ms: None,
            constraints: Constraints::default(),
            config: Labels::new(),
            queue: None,
            gang: None,
        }
    }

    /// Makes it a member of `gang`.
    pub fn with_gang(mut self, gang: Gang) -> Self {
        self.gang = Some(gang);
        self
    }

    /// Submits it to this tenant queue.
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Sets the human-readable name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the GPU request.
    pub fn with_gpu(mut self, gpu: GpuRequest) -> Self {
        self.gpu = gpu;
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the QoS class.
    pub fn with_qos(mut self, qos: QosClass) -> Self {
        self.qos = qos;
        self
    }

    /// Sets one entry of the backend's `config` (`image`, `command`, …).
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Sets the kind (batch or service).
    pub fn with_kind(mut self, kind: TaskKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the timeout.
    pub fn with_timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }

    /// Restricts the GPU models the task accepts.
    pub fn with_gpu_models(mut self, models: impl IntoIterator<Item = GpuModel>) -> Self {
        self.constraints.gpu_models = models.into_iter().collect();
        self
    }

    /// Requires a node label.
    pub fn with_node_selector(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.constraints
            .node_selector
            .insert(key.into(), value.into());
        self
    }

    /// Adds a toleration.
    pub fn with_toleration(mut self, toleration: Toleration) -> Self {
        self.constraints.tolerations.push(toleration);
        self
    }

    /// Checks the task is well formed: it asks for something, and its GPU
    /// request is consistent and at most one GPU's worth per GPU.
    ///
    /// # Errors
    /// [`Error::ZeroRequest`], [`Error::InconsistentGpuRequest`] or
    /// [`Error::GpuShareTooLarge`].
    pub fn validate(&self) -> Result<(), Error> {
        let task = self.id;
        let gpu = self.gpu;
        if (gpu.count == 0) != (gpu.milli_per_gpu == 0) {
            return Err(Error::InconsistentGpuRequest {
                task,
                count: gpu.count,
                milli_per_gpu: gpu.milli_per_gpu,
            });
        }
        if gpu.milli_per_gpu > GPU_MILLI_PER_GPU {
            return Err(Error::GpuShareTooLarge {
                task,
                milli: gpu.milli_per_gpu,
            });
        }
        if self.request.is_zero() && gpu.is_none() {
            return Err(Error::ZeroRequest { task });
        }
        if self.timeout_ms == Some(0) {
            return Err(Error::ZeroTimeout { task });
        }
        if let Some(gang) = &self.gang {
            let invalid = |reason: &str| Error::InvalidGang {
                task,
                gang: gang.name.clone(),
                reason: reason.to_owned(),
            };
            if gang.name.is_empty() {
                return Err(invalid("its name is empty"));
            }
            if gang.min_available == 0 {
                return Err(invalid("min_available must be at least 1"));
            }
            if gang.timeout_ms == Some(0) {
                return Err(invalid("timeout_ms must be at least 1"));
            }
        }
        if let Some(limit) = self.constraints.max_per_node {
            if limit == 0 || self.constraints.anti_affinity.is_none() {
                return Err(Error::MaxPerNode { task, limit });
            }
        }
        Ok(())
    }

    /// Sets the anti-affinity group.
    pub fn with_anti_affinity(mut self, group: impl Into<String>) -> Self {
        self.constraints.anti_affinity = Some(group.into());
        self
    }

    /// Sets the anti-affinity group, with at most `limit` of its tasks on
    /// one node.
    pub fn with_anti_affinity_limit(mut self, group: impl Into<String>, limit: u32) -> Self {
        self.constraints.anti_affinity = Some(group.into());
        self.constraints.max_per_node = Some(limit);
        self
    }
}

/// Something that asks for capacity. Implement it for your own task type.
///
/// [`TaskSpec`] is the one model of a task: an implementation says how its
/// type converts to one, and the scheduler calls
/// [`to_spec`](Task::to_spec) once, at submission. There are no per-field
/// getters with defaults, so no field can be forgotten and silently read as
/// "normal priority" or "no timeout".
///
/// ```
/// use lepton_core::model::{Priority, Task};
/// use lepton_core::{Resources, TaskId, TaskSpec};
///
/// struct Job { number: u64, cores: u64, urgent: bool }
///
/// impl Task for Job {
///     fn to_spec(&self) -> TaskSpec {
///         let priority = if self.urgent { Priority::HIGHEST } else { Priority::NORMAL };
///         TaskSpec::new(TaskId(self.number), Resources::new(self.cores * 1_000, 512))
///             .with_priority(priority)
///     }
/// }
/// let job = Job { number: 7, cores: 2, urgent: true };
/// assert_eq!(job.to_spec().priority, Priority::HIGHEST);
/// ```
pub trait Task {
    /// Lepton's description of this task.
    fn to_spec(&self) -> TaskSpec;
}

impl Task for TaskSpec {
    fn to_spec(&self) -> TaskSpec {
        self.clone()
    }
}
