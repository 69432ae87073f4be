//! A simulation run unchanged on a thread of its own, whose policy hands
//! each decision to an environment over a channel and waits for the
//! action: what [`TimedEnv`](super::TimedEnv) and
//! [`FleetEnv`](super::FleetEnv) step. Decisions and actions alternate, so
//! each channel holds at most one message; both sides wait with
//! [`receive`], which spins briefly before it sleeps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lepton_core::fragmentation::TargetWorkload;
use lepton_core::model::GPU_MILLI_PER_GPU;
use lepton_core::policy::{Feedback, Outcome};
use lepton_core::{FeasibleNodes, Placement, Policy};
use lepton_policies::CandidateBuilder;

use super::{lock, utility, EnvConfig, Observation, Reward, Step, StepInfo, Summary};
use crate::{Error, FragmentMeter};

/// The next message on `channel`, spinning up to `spin` before sleeping:
/// on this kind of virtual machine waking a sleeping thread costs 50–100
/// µs, more than a step of the simulation, so a thread that expects an
/// answer soon waits for it awake (and sleeps when it does not come).
///
/// # Errors
/// [`RecvError`] once every sender is gone and the channel is empty.
pub fn receive<T>(channel: &Receiver<T>, spin: Duration) -> Result<T, RecvError> {
    let started = Instant::now();
    loop {
        match channel.try_recv() {
            Ok(message) => return Ok(message),
            Err(TryRecvError::Disconnected) => return Err(RecvError),
            Err(TryRecvError::Empty) if started.elapsed() < spin => std::hint::spin_loop(),
            Err(TryRecvError::Empty) => return channel.recv(),
        }
    }
}

/// How long either side spins for the other's answer: the simulation to
/// its next decision, the agent (in Rust or Python) to its action.
const SPIN: Duration = Duration::from_micros(300);

/// How a decision's candidates are chosen and described.
pub(super) trait Shortlist: Send {
    /// Fills `observation` (its task already set) with up to `limit`
    /// candidates for the task of `nodes`; leaves it without candidates
    /// when none is feasible.
    fn build(&mut self, nodes: &FeasibleNodes<'_>, limit: usize, observation: &mut Observation);
}

/// FGD's best nodes against a target workload, as the learned policy sees
/// them ([`CandidateBuilder`]).
pub(super) struct FgdShortlist {
    workload: Arc<TargetWorkload>,
    builder: CandidateBuilder,
}

impl FgdShortlist {
    pub(super) fn new(workload: Arc<TargetWorkload>) -> Box<FgdShortlist> {
        Box::new(FgdShortlist {
            workload,
            builder: CandidateBuilder::new(),
        })
    }
}

impl Shortlist for FgdShortlist {
    fn build(&mut self, nodes: &FeasibleNodes<'_>, limit: usize, observation: &mut Observation) {
        self.builder
            .build(&self.workload, nodes, limit, &mut observation.candidates);
    }
}

/// What the simulation's thread tells the environment.
enum Message<R> {
    /// A decision to make, with the reward earned since the last one.
    Decide {
        observation: Box<Observation>,
        reward: f64,
        summary: Summary,
    },
    /// The simulation ended.
    Done {
        reward: f64,
        deadline_misses: usize,
        result: Box<Result<R, Error>>,
    },
}

/// What the simulation's policy accumulates between decisions, shared with
/// the thread so the reward after the last decision is not lost.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) reward: f64,
    decisions: usize,
    timed_out_or_failed: usize,
    /// GPUs allocated and fragmentation (milli) at the last decision.
    last: Option<(f64, f64)>,
}

impl Tally {
    /// Adds the `gpus` or `frag` reward for the cluster having moved to
    /// `allocated` milli-GPUs and `frag` milli of fragmentation.
    pub(super) fn moved_to(&mut self, reward: Reward, allocated: f64, frag: f64) {
        let (last_allocated, last_frag) = self.last.unwrap_or((allocated, frag));
        self.last = Some((allocated, frag));
        match reward {
            Reward::Gpus => self.reward += (allocated - last_allocated) / 1000.0,
            Reward::Frag => self.reward -= (frag - last_frag) / 1000.0,
            _ => {}
        }
    }
}

/// The policy inside the simulation's scheduler.
struct ChannelPolicy<R> {
    workload: Arc<TargetWorkload>,
    config: EnvConfig,
    nodes: usize,
    shortlist: Box<dyn Shortlist>,
    meter: FragmentMeter,
    decisions: SyncSender<Message<R>>,
    actions: Receiver<usize>,
    tally: Arc<Mutex<Tally>>,
    /// The environment is gone: decline everything, quickly (and the
    /// simulation may stop: see [`Handoff::start`]).
    closed: Arc<AtomicBool>,
}

impl<R: Send> Policy for ChannelPolicy<R> {
    fn name(&self) -> &str {
        "gym"
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let cluster = nodes.cluster();
        let mut observation = Observation {
            task: nodes.task().clone(),
            candidates: Vec::new(),
            edge: Vec::new(),
        };
        self.shortlist
            .build(nodes, self.config.max_candidates, &mut observation);
        if observation.candidates.is_empty() {
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
        let chosen = self
            .decisions
            .send(Message::Decide {
                observation: Box::new(observation.clone()),
                reward,
                summary,
            })
            .ok()
            .and_then(|()| receive(&self.actions, SPIN).ok());
        match chosen {
            // The environment checked the action against the candidates.
            Some(action) => observation
                .candidates
                .get(action)
                .map(|c| c.placement.clone()),
            None => {
                self.closed.store(true, Ordering::Relaxed);
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

/// How a simulation ended.
pub(super) struct Ended<R> {
    /// Runs that timed out or failed, as the policy was told.
    pub(super) deadline_misses: usize,
    /// The simulation's result.
    pub(super) result: R,
}

/// A simulation in progress (see the [module docs](self)).
pub(super) struct Handoff<R> {
    decisions: Receiver<Message<R>>,
    /// `None` once the simulation has ended.
    actions: Option<SyncSender<usize>>,
    pending: Option<Observation>,
    /// The figures at the last decision.
    last: Summary,
    /// How the simulation ended, once it did.
    ended: Option<Ended<R>>,
    thread: Option<JoinHandle<()>>,
}

impl<R: Send + 'static> Handoff<R> {
    /// Starts `run` on a thread with a policy that hands each decision
    /// over: up to `config.max_candidates` candidates from `shortlist` on
    /// a cluster of `nodes` nodes, fragmentation measured against
    /// `workload`. `run` is also handed a
    /// question it may ask to stop early: whether the environment is still
    /// there (once it is gone nothing reads the result). Once `run`
    /// returns, `finish` adds to the tally what happened after the last
    /// decision.
    pub(super) fn start(
        workload: Arc<TargetWorkload>,
        shortlist: Box<dyn Shortlist>,
        config: EnvConfig,
        nodes: usize,
        run: impl FnOnce(Box<dyn Policy>, &dyn Fn() -> bool) -> Result<R, Error> + Send + 'static,
        finish: impl FnOnce(&R, &mut Tally) + Send + 'static,
    ) -> Handoff<R> {
        // One message each at most: the sides alternate.
        let (decision_tx, decision_rx) = sync_channel(1);
        let (action_tx, action_rx) = sync_channel(1);
        let tally = Arc::new(Mutex::new(Tally::default()));
        let closed = Arc::new(AtomicBool::new(false));
        let policy = ChannelPolicy {
            workload,
            config,
            nodes,
            shortlist,
            meter: FragmentMeter::default(),
            decisions: decision_tx.clone(),
            actions: action_rx,
            tally: Arc::clone(&tally),
            closed: Arc::clone(&closed),
        };
        let thread = std::thread::spawn(move || {
            let result = run(Box::new(policy), &|| !closed.load(Ordering::Relaxed));
            let mut tally = lock(&tally);
            if let Ok(result) = &result {
                finish(result, &mut tally);
            }
            let _ = decision_tx.send(Message::Done {
                reward: std::mem::take(&mut tally.reward),
                deadline_misses: tally.timed_out_or_failed,
                result: Box::new(result),
            });
        });
        Handoff {
            decisions: decision_rx,
            actions: Some(action_tx),
            pending: None,
            ended: None,
            last: Summary {
                alloc_pct: 0.0,
                frag_pct: 0.0,
                tasks_arrived: 0,
                tasks_placed: 0,
                tasks_dropped: 0,
                deadline_misses: 0,
                utility: f64::NAN,
            },
            thread: Some(thread),
        }
    }

    /// Places the pending task on candidate `action` and runs the
    /// simulation to its next decision.
    ///
    /// # Errors
    /// [`Error::NoEpisode`] with no decision pending;
    /// [`Error::InfeasibleAction`] when `action` names no candidate; the
    /// simulation's own errors.
    pub(super) fn step(&mut self, action: usize) -> Result<Step, Error> {
        let Some(observation) = self.pending.take() else {
            return Err(Error::NoEpisode);
        };
        let Some(candidate) = observation.candidates.get(action) else {
            let candidates = observation.candidates.len();
            self.pending = Some(observation);
            return Err(Error::InfeasibleAction { action, candidates });
        };
        let placement = candidate.placement.clone();
        if let Some(actions) = &self.actions {
            // A simulation that ended meanwhile reports it as Done below.
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

    /// The figures at the last decision.
    pub(super) fn last(&self) -> Summary {
        self.last
    }

    /// How the simulation ended, once it did.
    pub(super) fn ended(&self) -> Option<&Ended<R>> {
        self.ended.as_ref()
    }

    /// Waits for the simulation's next message: the next decision (or
    /// none, when it ended) and the reward since the last.
    ///
    /// # Errors
    /// The simulation's own errors; [`Error::NoEpisode`] after the end.
    pub(super) fn next(&mut self) -> Result<(Option<Observation>, f64), Error> {
        let message = receive(&self.decisions, SPIN).map_err(|_| Error::NoEpisode)?;
        match message {
            Message::Decide {
                observation,
                reward,
                summary,
            } => {
                self.last = summary;
                self.pending = Some((*observation).clone());
                Ok((Some(*observation), reward))
            }
            Message::Done {
                reward,
                deadline_misses,
                result,
            } => {
                self.actions = None;
                if let Some(thread) = self.thread.take() {
                    // It has sent its last message: it is ending.
                    let _ = thread.join();
                }
                self.ended = Some(Ended {
                    deadline_misses,
                    result: (*result)?,
                });
                Ok((None, reward))
            }
        }
    }
}
