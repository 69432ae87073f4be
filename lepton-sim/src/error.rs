//! The one error type of `lepton-sim`.

/// Everything that can go wrong when reading workloads or running a
/// simulation.
///
/// Reader errors name the file, the line and the column at fault; a bad
/// node or task inside a workload keeps the scheduler's own error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A workload or trace file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// A workload or trace file has a malformed row or value.
    #[error("{path}:{line}: {}{message}", column.as_ref().map(|c| format!("column {c}: ")).unwrap_or_default())]
    Load {
        /// The file.
        path: String,
        /// The line, counting from 1 (the header is line 1).
        line: usize,
        /// The column at fault, when one is.
        column: Option<String>,
        /// What is wrong, with the offending value.
        message: String,
    },
    /// A workload that cannot make the run asked for: a scenario's fleet
    /// out of its range, a task without a duration.
    #[error("{message}")]
    Workload {
        /// What is wrong, naming the task or what the workload comes to.
        message: String,
    },
    /// A numeric setting of a run is out of range.
    #[error("{name} = {} is out of range: {expected}", lepton_core::readable_number(*value))]
    OutOfRange {
        /// The setting's name.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What was expected.
        expected: &'static str,
    },
    /// A task outlives its timeout on every attempt while retries are
    /// unlimited: over the horizon it would be placed more often than a
    /// run can hold.
    #[error("task {task} times out after {timeout_ms} ms on every run and retries are unlimited: over the horizon of {horizon_s} s it would be placed about {} times (at most {} per task); set retry.max_retries, a retry delay, a longer timeout or a shorter horizon", lepton_core::readable_number(*runs as f64), lepton_core::readable_number(crate::timed::MAX_RUNS_PER_TASK as f64))]
    TooManyRetries {
        /// The task.
        task: lepton_core::TaskId,
        /// Its timeout.
        timeout_ms: u64,
        /// The horizon.
        horizon_s: u64,
        /// About how many runs it would take.
        runs: u64,
    },
    /// A task outlives its timeout on every attempt while retries are
    /// unlimited and the run has no horizon: it would never end.
    #[error("task {task} runs {duration_s} s but times out after {timeout_ms} ms, and retries are unlimited with no horizon: it would retry forever; set retry.max_retries or horizon_s")]
    EndlessRetries {
        /// The task.
        task: lepton_core::TaskId,
        /// How long it runs.
        duration_s: u64,
        /// Its timeout.
        timeout_ms: u64,
    },
    /// A reward name other than `gpus`, `frag`, `seed` or `cost`.
    #[error("unknown reward {name:?}; valid rewards: gpus, frag, seed, cost")]
    UnknownReward {
        /// The name given.
        name: String,
    },
    /// A reward asked of an environment that cannot pay it: `cost` where
    /// nothing is billed (fill, timed), `gpus` or `frag` where there are
    /// no GPUs (edge).
    #[error("reward {reward} is not paid in {mode} mode; it pays {pays}")]
    RewardNotPaid {
        /// The reward asked for.
        reward: &'static str,
        /// The environment's mode.
        mode: &'static str,
        /// The rewards the mode pays.
        pays: String,
    },
    /// A gym action names no candidate of the pending decision.
    #[error("action {action} is not feasible: the decision has {candidates} candidates (actions 0..{candidates})")]
    InfeasibleAction {
        /// The action given.
        action: usize,
        /// How many candidates the decision has.
        candidates: usize,
    },
    /// A gym environment was stepped with no decision pending: before
    /// `reset` or after the episode ended.
    #[error("no decision is pending: call reset first (the episode ended or never started)")]
    NoEpisode,
    /// The scheduler refused a node, a task or an event of the run.
    #[error(transparent)]
    Scheduler(#[from] lepton_core::Error),
    /// A policy could not be built or failed (a gradient step of the
    /// learned policy in training, say).
    #[error(transparent)]
    Policy(#[from] lepton_policies::Error),
    /// Training was asked to use one of the seeds its environment reports
    /// on (the fill experiment's 42–51, the scenarios' 1–5).
    #[error("training seed {seed} is an evaluation seed ({first}-{last}); choose seeds outside that range")]
    EvaluationSeed {
        /// The seed.
        seed: u64,
        /// The environment's evaluation seeds, first and last.
        first: u64,
        /// See `first`.
        last: u64,
    },
}
