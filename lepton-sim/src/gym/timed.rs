//! The timed replay as an environment: [`run_timed`] runs unchanged on a
//! thread of its own, and its policy hands each decision over a channel.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use lepton_core::fragmentation::TargetWorkload;
use lepton_core::model::GPU_MILLI_PER_GPU;
use lepton_core::policy::{Feedback, Outcome};
use lepton_core::{FeasibleNodes, NodeSpec, Placement, Policy};
use lepton_policies::{Candidate, CandidateBuilder};

use super::{lock, utility, EnvConfig, Observation, Reward, Step, StepInfo, Summary};
use crate::timed::{run_timed, TimedConfig, TimedResult, TimedTask};
use crate::{Error, FragmentMeter};

/// The timed replay as an environment; see the [module docs](super).
pub struct TimedEnv {
    nodes: Arc<Vec<NodeSpec>>,
    tasks: Arc<Vec<TimedTask>>,
    workload: Arc<TargetWorkload>,
    timed: TimedConfig,
    config: EnvConfig,
    episode: Option<Episode>,
}

impl std::fmt::Debug for TimedEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedEnv")
            .field("nodes", &self.nodes.len())
            .field("tasks", &self.tasks.len())
            .field("timed", &self.timed)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A replay in progress.
struct Episode {
    decisions: Receiver<Message>,
    /// `None` once the replay has ended.
    actions: Option<SyncSender<usize>>,
    pending: Option<Observation>,
    summary: Summary,
    result: Option<TimedResult>,
    thread: Option<JoinHandle<()>>,
}

/// What the replay's thread tells the environment.
enum Message {
    /// A decision to make, with the reward earned since the last one.
    Decide {
        observation: Box<Observation>,
        reward: f64,
        summary: Summary,
    },
    /// The replay ended.
    Done {
        reward: f64,
        deadline_misses: usize,
        result: Box<Result<TimedResult, Error>>,
    },
}

/// What the replay's policy accumulates between decisions, shared with the
/// thread so the reward after the last decision is not lost.
#[derive(Default)]
struct Tally {
    reward: f64,
    decisions: usize,
    timed_out_or_failed: usize,
    /// GPUs allocated and fragmentation (milli) at the last decision.
    last: Option<(f64, f64)>,
}

impl Tally {
    /// Adds the `gpus` or `frag` reward for the cluster having moved to
    /// `allocated` milli-GPUs and `frag` milli of fragmentation.
    fn moved_to(&mut self, reward: Reward, allocated: f64, frag: f64) {
        let (last_allocated, last_frag) = self.last.unwrap_or((allocated, frag));
        self.last = Some((allocated, frag));
        match reward {
            Reward::Gpus => self.reward += (allocated - last_allocated) / 1000.0,
            Reward::Frag => self.reward -= (frag - last_frag) / 1000.0,
            _ => {}
        }
    }
}

/// The policy inside the replay's scheduler.
struct ChannelPolicy {
    workload: Arc<TargetWorkload>,
    config: EnvConfig,
    nodes: usize,
    builder: CandidateBuilder,
    meter: FragmentMeter,
    decisions: SyncSender<Message>,
    actions: Receiver<usize>,
    tally: Arc<Mutex<Tally>>,
    /// The environment is gone: decline everything, quickly.
    closed: bool,
}

impl Policy for ChannelPolicy {
    fn name(&self) -> &str {
        "gym"
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        if self.closed {
            return None;
        }
        let (task, cluster) = (nodes.task(), nodes.cluster());
        let mut candidates: Vec<Candidate> = Vec::new();
        let limit = self.config.max_candidates;
        self.builder
            .build(&self.workload, nodes, limit, &mut candidates);
        if candidates.is_empty() {
            return None;
        }
        let allocated: u64 = cluster
            .nodes()
            .iter()
            .map(|n| {
                u64::from(n.spec().gpus.count) * u64::from(GPU_MILLI_PER_GPU)
                    - n.gpu_free_milli_total()
            })
            .sum();
        let frag = self.meter.fragment_milli(&self.workload, cluster);
        let (reward, summary) = {
            let mut tally = lock(&self.tally);
            tally.moved_to(self.config.reward, allocated as f64, frag);
            let reward = std::mem::take(&mut tally.reward);
            tally.decisions += 1;
            let capacity: u64 = cluster
                .nodes()
                .iter()
                .map(|n| u64::from(n.spec().gpus.count) * u64::from(GPU_MILLI_PER_GPU))
                .sum();
            let in_use = cluster
                .nodes()
                .iter()
                .filter(|n| n.task_count() > 0)
                .count();
            let pct = |milli: f64| milli * 100.0 / capacity.max(1) as f64;
            let summary = Summary {
                alloc_pct: pct(allocated as f64),
                frag_pct: pct(frag),
                tasks_arrived: tally.decisions,
                tasks_placed: tally.decisions - 1,
                tasks_dropped: 0,
                deadline_misses: tally.timed_out_or_failed,
                utility: utility(in_use, tally.decisions, self.nodes, tally.decisions)
                    .unwrap_or(f64::NAN),
            };
            (reward, summary)
        };
        let observation = Observation {
            task: task.clone(),
            candidates,
        };
        let chosen = self
            .decisions
            .send(Message::Decide {
                observation: Box::new(observation.clone()),
                reward,
                summary,
            })
            .ok()
            .and_then(|()| self.actions.recv().ok());
        match chosen {
            // The environment checked the action against the candidates.
            Some(action) => observation
                .candidates
                .get(action)
                .map(|c| c.placement.clone()),
            None => {
                self.closed = true;
                None
            }
        }
    }

    fn observe(&mut self, feedback: &Feedback<'_>) {
        let mut tally = lock(&self.tally);
        if feedback.outcome != Outcome::Completed {
            tally.timed_out_or_failed += 1;
        }
        if self.config.reward == Reward::Seed {
            tally.reward += feedback.outcome.reward();
        }
    }
}

impl TimedEnv {
    /// An environment replaying `tasks` on `nodes` with the replay settings
    /// `timed` (its seed is replaced by each episode's), measuring
    /// fragmentation against `workload`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] when `max_candidates` is 0 or a replay setting
    /// is out of range ([`TimedConfig::validate`]).
    pub fn new(
        nodes: Vec<NodeSpec>,
        tasks: Vec<TimedTask>,
        workload: Arc<TargetWorkload>,
        timed: TimedConfig,
        config: EnvConfig,
    ) -> Result<TimedEnv, Error> {
        if config.max_candidates == 0 {
            return Err(Error::OutOfRange {
                name: "max_candidates",
                value: 0.0,
                expected: "at least 1",
            });
        }
        timed.validate()?;
        Ok(TimedEnv {
            nodes: Arc::new(nodes),
            tasks: Arc::new(tasks),
            workload,
            timed,
            config,
            episode: None,
        })
    }

    /// Starts a replay with `seed` (ending the previous one) and returns
    /// the first decision, or `None` when the replay asks for none.
    ///
    /// # Errors
    /// The replay's own errors ([`run_timed`]), when it fails before its
    /// first decision.
    pub fn reset(&mut self, seed: u64) -> Result<Option<Observation>, Error> {
        // Dropping the old channels makes the old replay decline the rest.
        self.episode = None;
        let (decision_tx, decision_rx) = sync_channel(0);
        let (action_tx, action_rx) = sync_channel(0);
        let tally = Arc::new(Mutex::new(Tally::default()));
        let policy = ChannelPolicy {
            workload: Arc::clone(&self.workload),
            config: self.config,
            nodes: self.nodes.len(),
            builder: CandidateBuilder::new(),
            meter: FragmentMeter::default(),
            decisions: decision_tx.clone(),
            actions: action_rx,
            tally: Arc::clone(&tally),
            closed: false,
        };
        let (nodes, tasks, workload) = (
            Arc::clone(&self.nodes),
            Arc::clone(&self.tasks),
            Arc::clone(&self.workload),
        );
        let timed = TimedConfig { seed, ..self.timed };
        let reward = self.config.reward;
        let thread = std::thread::spawn(move || {
            let result = run_timed(&nodes, &tasks, &workload, Box::new(policy), &timed);
            let mut tally = lock(&tally);
            if let Ok(result) = &result {
                // What changed after the last decision, read off the end.
                let capacity: f64 = nodes
                    .iter()
                    .map(|n| f64::from(n.gpus.count) * f64::from(GPU_MILLI_PER_GPU))
                    .sum();
                let milli = |pct: f64| pct * capacity / 100.0;
                let end = &result.at_end;
                tally.moved_to(reward, milli(end.gpu_alloc_pct), milli(end.frag_pct));
            }
            let _ = decision_tx.send(Message::Done {
                reward: std::mem::take(&mut tally.reward),
                deadline_misses: tally.timed_out_or_failed,
                result: Box::new(result),
            });
        });
        let summary = Summary {
            alloc_pct: 0.0,
            frag_pct: 0.0,
            tasks_arrived: 0,
            tasks_placed: 0,
            tasks_dropped: 0,
            deadline_misses: 0,
            utility: f64::NAN,
        };
        self.episode = Some(Episode {
            decisions: decision_rx,
            actions: Some(action_tx),
            pending: None,
            summary,
            result: None,
            thread: Some(thread),
        });
        let (observation, _) = self.next()?;
        Ok(observation)
    }

    /// Places the pending task on candidate `action` and runs the replay
    /// to the next decision.
    ///
    /// # Errors
    /// [`Error::NoEpisode`] with no decision pending;
    /// [`Error::InfeasibleAction`] when `action` names no candidate; the
    /// replay's own errors.
    pub fn step(&mut self, action: usize) -> Result<Step, Error> {
        let episode = self.episode.as_mut().ok_or(Error::NoEpisode)?;
        let Some(observation) = episode.pending.take() else {
            return Err(Error::NoEpisode);
        };
        let Some(candidate) = observation.candidates.get(action) else {
            let candidates = observation.candidates.len();
            episode.pending = Some(observation);
            return Err(Error::InfeasibleAction { action, candidates });
        };
        let placement = candidate.placement.clone();
        if let Some(actions) = &episode.actions {
            // A replay that ended meanwhile reports it as Done below.
            let _ = actions.send(action);
        }
        let (next, reward) = self.next()?;
        Ok(Step {
            done: next.is_none(),
            observation: next,
            reward,
            info: StepInfo {
                placement,
                dropped: 0,
            },
        })
    }

    /// Waits for the replay's next message.
    fn next(&mut self) -> Result<(Option<Observation>, f64), Error> {
        let episode = self.episode.as_mut().ok_or(Error::NoEpisode)?;
        let message = episode.decisions.recv().map_err(|_| Error::NoEpisode)?;
        match message {
            Message::Decide {
                observation,
                reward,
                summary,
            } => {
                episode.summary = summary;
                episode.pending = Some((*observation).clone());
                Ok((Some(*observation), reward))
            }
            Message::Done {
                reward,
                deadline_misses,
                result,
            } => {
                episode.actions = None;
                if let Some(thread) = episode.thread.take() {
                    // It has sent its last message: it is ending.
                    let _ = thread.join();
                }
                let result = (*result)?;
                let summary = final_summary(&result, deadline_misses, self.nodes.len())?;
                if let Some(episode) = self.episode.as_mut() {
                    episode.summary = summary;
                    episode.result = Some(result);
                }
                Ok((None, reward))
            }
        }
    }
}

/// The figures of a replay that ended, for a cluster of `nodes` nodes.
fn final_summary(
    result: &TimedResult,
    deadline_misses: usize,
    nodes: usize,
) -> Result<Summary, Error> {
    let end = &result.at_end;
    Ok(Summary {
        alloc_pct: end.gpu_alloc_pct,
        frag_pct: end.frag_pct,
        tasks_arrived: result.tasks_submitted,
        tasks_placed: result.tasks_placed,
        tasks_dropped: 0,
        deadline_misses,
        utility: utility(
            end.nodes_in_use,
            result.tasks_placed,
            nodes,
            result.tasks_submitted,
        )?,
    })
}

impl TimedEnv {
    /// The episode's figures: at the last decision while it runs, from the
    /// replay's result once it ended (allocation and fragmentation at the
    /// end).
    ///
    /// # Errors
    /// [`Error::NoEpisode`] before the first [`reset`](Self::reset).
    pub fn summary(&self) -> Result<Summary, Error> {
        Ok(self.episode.as_ref().ok_or(Error::NoEpisode)?.summary)
    }

    /// The replay's full result, once the episode ended.
    pub fn result(&self) -> Option<&TimedResult> {
        self.episode.as_ref()?.result.as_ref()
    }
}
