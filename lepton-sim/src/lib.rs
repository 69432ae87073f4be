//! Lepton's simulator: real traces and synthetic workloads replayed through
//! the real scheduler, in virtual time.
//!
//! Nothing in the scheduler knows it is being simulated: the simulator owns
//! a [`ManualClock`](lepton_core::clock::ManualClock), feeds
//! [`CoreScheduler`](lepton_core::CoreScheduler) the events of the workload
//! and acts on the assignments it hands back, exactly as a production
//! control loop does with a real clock. That is why this crate is separate
//! from `lepton-core`: an orchestrator embedding the scheduler compiles no
//! reader, no simulator and no file I/O.
//!
//! Two modes share the same scheduler, policies and metrics:
//! - **fill** ([`run_fill`]): the FGD paper's experiment; tasks never leave
//!   and a task that fits nowhere is dropped.
//! - **timed** ([`run_timed`]): a discrete-event replay in integer virtual
//!   time; tasks arrive and complete at their times, wait when they fit
//!   nowhere, and nodes may fail and recover.
//!
//! On top of them: [`gym`], learning environments over both modes (and,
//! with the `drl` feature, `train`: the learned policy's training in
//! them), and [`scenario`], the article's data-center, edge and
//! hybrid-cloud scenarios with their contestants.
//!
//! Workloads come from the openb trace readers, from the JSON format of
//! [`read_workload`], or from the synthetic generators
//! ([`synthetic_nodes`], [`synthetic_tasks`]).

use std::time::Duration;

use lepton_core::fragmentation::TargetWorkload;
use lepton_core::model::NodeState;
use lepton_core::{ClusterState, NodeId};

mod chaos;
mod dlrm;
mod error;
mod fairness;
mod fill;
mod gangs;
pub mod gym;
mod lifetimes;
pub mod scenario;
mod synthetic;
mod teams;
mod tenants;
mod timed;
mod trace;
#[cfg(feature = "drl")]
mod train;
mod unplaceable;
mod workload;

pub use chaos::{run_chaos, ChaosConfig, ChaosReport};
pub use dlrm::{dlrm_trace_path, parse_dlrm, read_dlrm, DlrmInstance, DLRM_GPU_TAINT, RDMA};
pub use error::Error;
pub use fairness::{jain, run_fairness, Admitting, FairnessConfig, FairnessReport};
pub use fill::{fill_arrivals, run_fill, FillConfig, FillPoint, FillResult, MAX_TUNE};
pub use gangs::{run_gangs, GangConfig, GangReport, Placing};
pub use lifetimes::{
    lifetime_accuracy, lifetime_history, service_and_shape, LifetimeAccuracy, TraceLifetimes,
};
pub use synthetic::{synthetic_nodes, synthetic_task, synthetic_tasks, synthetic_workload};
pub use teams::run_team_gangs;
pub use tenants::{run_tenants, Sharing, TenantConfig, TenantReport};
pub use timed::{
    default_horizon_s, run_timed, TaskTimes, TimedConfig, TimedResult, TimedSample, TimedTask,
    MAX_TIME_S,
};
pub use trace::{
    parse_openb_nodes, parse_openb_pods, read_openb_nodes, read_openb_pods, trace_dir, TracePod,
};
#[cfg(feature = "drl")]
pub use train::{
    fgd_choice, play_greedy, train, Environment, EpisodeStats, TrainConfig, EVALUATION_SEEDS,
    SCENARIO_SEEDS,
};
pub use unplaceable::unplaceable;
pub use workload::{parse_workload, read_workload, Workload};

/// The most bytes of a trace CSV or a JSON workload read (1 GiB); a file
/// larger, or a device that never ends (`/dev/zero`), is an error.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// The cluster's fragmentation against a target workload: the sum of
/// [`TargetWorkload::node_fragment_milli`] over the nodes that are not down
/// (a down node's GPUs are unavailable, not fragmented).
///
/// A node is recomputed only when its [`generation`](lepton_core::cluster::ClusterNode::generation)
/// changed since the last reading, so frequent samples of a large cluster
/// stay cheap; the sum is always taken in node order, so a reading equals a
/// fresh computation bit for bit.
#[derive(Debug, Default)]
struct FragmentMeter {
    /// Per node position: the node, its generation and its fragment then.
    cache: Vec<Option<(NodeId, u64, f64)>>,
}

impl FragmentMeter {
    /// The fragmentation now, in milli-GPUs.
    fn fragment_milli(&mut self, workload: &TargetWorkload, cluster: &ClusterState) -> f64 {
        let nodes = cluster.nodes();
        self.cache.resize(nodes.len(), None);
        nodes
            .iter()
            .zip(self.cache.iter_mut())
            .filter(|(node, _)| node.state() != NodeState::Down)
            .map(|(node, slot)| match *slot {
                Some((id, generation, fragment))
                    if id == node.id() && generation == node.generation() =>
                {
                    fragment
                }
                _ => {
                    let fragment = workload.node_fragment_milli(node);
                    *slot = Some((node.id(), node.generation(), fragment));
                    fragment
                }
            })
            .sum()
    }
}

/// Serializes a wall-clock duration as seconds (f64).
fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}
