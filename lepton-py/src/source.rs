//! What an environment runs on, from the mode and its keyword options:
//! the GPU trace (fill and timed modes), a scenario's fleet (data center,
//! the DLRM trace's pool, hybrid cloud) or the edge scenario. Each mode takes its own
//! options; any other is refused by name, never ignored.

use std::path::PathBuf;
use std::sync::Arc;

use lepton::sim::gym::{EdgeEnv, EnvConfig, FillEnv, FleetEnv, Reward, TimedEnv};
use lepton::sim::scenario::{DatacenterConfig, EdgeConfig, HybridConfig, TraceWindow};
use lepton::sim::{DlrmInstance, TimedConfig, TimedTask};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::to_py;
use crate::trace::{dlrm, Trace};

/// The modes and the options each takes.
pub(crate) const MODES: [(&str, &[&str]); 6] = [
    ("fill", &["trace", "node_list", "pod_list", "tune"]),
    ("timed", &["trace", "node_list", "pod_list"]),
    ("datacenter", &["vms", "tasks", "hours", "slo_penalty"]),
    ("datacenter-trace", &["slo_penalty"]),
    ("hybrid", &["tasks", "hours", "slo_penalty"]),
    (
        "edge",
        &[
            "sites",
            "nodes_per_site",
            "cloud_nodes",
            "tasks",
            "hours",
            "slo_penalty",
        ],
    ),
];

/// The simulation an environment steps.
pub(crate) enum Sim {
    Fill(Box<FillEnv>),
    Timed(Box<TimedEnv>),
    Fleet(Box<FleetEnv>),
    Edge(Box<EdgeEnv>),
}

/// A mode's inputs, read and checked once (a batch makes all its
/// environments from one).
pub(crate) struct Source {
    kind: Kind,
    /// Fill mode's inflation, when given.
    tune: Option<f64>,
    /// The cost reward's penalty per SLO violation, when given.
    slo_penalty: Option<f64>,
}

enum Kind {
    Fill(Trace),
    Timed { tasks: Vec<TimedTask>, trace: Trace },
    Datacenter(DatacenterConfig),
    DlrmTrace(Arc<Vec<DlrmInstance>>),
    Hybrid(HybridConfig),
    Edge(EdgeConfig),
}

/// The keyword options given, taken one by one.
struct Options<'py> {
    given: Option<Bound<'py, PyDict>>,
}

impl<'py> Options<'py> {
    fn take<T: for<'a> FromPyObject<'a, 'py>>(&self, name: &str) -> PyResult<Option<T>> {
        let Some(dict) = &self.given else {
            return Ok(None);
        };
        let Some(value) = dict.get_item(name)? else {
            return Ok(None);
        };
        if value.is_none() {
            return Ok(None);
        }
        value.extract::<T>().map(Some).map_err(|_| {
            PyValueError::new_err(format!("option {name} = {value} is not valid here"))
        })
    }
}

impl Source {
    /// The inputs of `mode` from its `options`.
    ///
    /// # Errors
    /// `ValueError` naming an unknown mode, an option the mode does not
    /// take, or a bad value; `OSError` for a file that cannot be read.
    pub(crate) fn new(mode: &str, options: Option<&Bound<'_, PyDict>>) -> PyResult<Source> {
        let Some((_, takes)) = MODES.iter().find(|(known, _)| *known == mode) else {
            let known: Vec<&str> = MODES.iter().map(|(known, _)| *known).collect();
            return Err(PyValueError::new_err(format!(
                "unknown mode {mode:?}; expected one of {}",
                known.join(", ")
            )));
        };
        if let Some(dict) = options {
            for key in dict.keys() {
                let key: String = key.extract()?;
                if !takes.contains(&key.as_str()) {
                    return Err(PyValueError::new_err(format!(
                        "mode {mode:?} does not take option {key:?}; it takes {}",
                        takes.join(", ")
                    )));
                }
            }
        }
        let options = Options {
            given: options.cloned(),
        };
        let trace = || -> PyResult<Trace> {
            let name: Option<String> = options.take("trace")?;
            let nodes: Option<PathBuf> = options.take("node_list")?;
            let pods: Option<PathBuf> = options.take("pod_list")?;
            Trace::load(
                name.as_deref().unwrap_or("default"),
                nodes.as_deref(),
                pods.as_deref(),
            )
        };
        let kind = match mode {
            "fill" => Kind::Fill(trace()?),
            "timed" => {
                let trace = trace()?;
                let Some(tasks) = TimedTask::from_trace_pods(&trace.pods) else {
                    return Err(PyValueError::new_err(
                        "the pod list has no creation and deletion times: timed mode replays them",
                    ));
                };
                Kind::Timed { tasks, trace }
            }
            "datacenter" => {
                let default = DatacenterConfig::default();
                let config = DatacenterConfig {
                    vms: options.take("vms")?.unwrap_or(default.vms),
                    tasks: options.take("tasks")?.unwrap_or(default.tasks),
                    hours: options.take("hours")?.unwrap_or(default.hours),
                    ..default
                };
                config.validate().map_err(to_py)?;
                Kind::Datacenter(config)
            }
            "datacenter-trace" => Kind::DlrmTrace(dlrm()?),
            "edge" => {
                let default = EdgeConfig::default();
                let config = EdgeConfig {
                    sites: options.take("sites")?.unwrap_or(default.sites),
                    nodes_per_site: options
                        .take("nodes_per_site")?
                        .unwrap_or(default.nodes_per_site),
                    cloud_nodes: options.take("cloud_nodes")?.unwrap_or(default.cloud_nodes),
                    tasks: options.take("tasks")?.unwrap_or(default.tasks),
                    hours: options.take("hours")?.unwrap_or(default.hours),
                    ..default
                };
                config.validate().map_err(to_py)?;
                Kind::Edge(config)
            }
            _ => {
                let default = HybridConfig::default();
                let config = HybridConfig {
                    tasks: options.take("tasks")?.unwrap_or(default.tasks),
                    hours: options.take("hours")?.unwrap_or(default.hours),
                    ..default
                };
                config.validate().map_err(to_py)?;
                Kind::Hybrid(config)
            }
        };
        Ok(Source {
            kind,
            tune: options.take("tune")?,
            slo_penalty: options.take("slo_penalty")?,
        })
    }

    /// How many candidates a decision offers unless told: every site in
    /// edge mode (the cloud is one), 64 otherwise (the learned policy's).
    pub(crate) fn default_candidates(&self) -> usize {
        match &self.kind {
            Kind::Edge(edge) => edge.sites + 1,
            _ => 64,
        }
    }

    /// A new simulation of this source: up to `max_candidates` candidates
    /// per decision, paying `reward` (default: `cost` for the scenarios,
    /// `gpus` otherwise).
    ///
    /// # Errors
    /// `ValueError` for a bad reward or setting.
    pub(crate) fn sim(&self, max_candidates: usize, reward: Option<&str>) -> PyResult<Sim> {
        let billed = !matches!(self.kind, Kind::Fill(_) | Kind::Timed { .. });
        let mut config = EnvConfig::default();
        let default = if billed { "cost" } else { "gpus" };
        config.reward = Reward::parse(reward.unwrap_or(default)).map_err(to_py)?;
        config.max_candidates = max_candidates;
        if let Some(tune) = self.tune {
            config.tune = tune;
        }
        if let Some(penalty) = self.slo_penalty {
            config.slo_penalty_usd = penalty;
        }
        let nodes = |trace: &Trace| trace.nodes.clone();
        Ok(match &self.kind {
            Kind::Fill(trace) => Sim::Fill(Box::new(
                FillEnv::new(nodes(trace), trace.tasks(), trace.workload.clone(), config)
                    .map_err(to_py)?,
            )),
            Kind::Timed { tasks, trace } => Sim::Timed(Box::new(
                TimedEnv::new(
                    nodes(trace),
                    tasks.clone(),
                    trace.workload.clone(),
                    TimedConfig::default(),
                    config,
                )
                .map_err(to_py)?,
            )),
            Kind::Datacenter(datacenter) => Sim::Fleet(Box::new(
                FleetEnv::datacenter(*datacenter, config).map_err(to_py)?,
            )),
            Kind::DlrmTrace(instances) => Sim::Fleet(Box::new(
                FleetEnv::trace(Arc::clone(instances), TraceWindow::REPORT, config)
                    .map_err(to_py)?,
            )),
            Kind::Hybrid(hybrid) => {
                Sim::Fleet(Box::new(FleetEnv::hybrid(*hybrid, config).map_err(to_py)?))
            }
            Kind::Edge(edge) => Sim::Edge(Box::new(EdgeEnv::new(*edge, config).map_err(to_py)?)),
        })
    }
}
