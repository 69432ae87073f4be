//! A learned placement policy: a small neural network (dfdx) that scores
//! candidate nodes, trained by reinforcement learning in Lepton's simulator.
//!
//! # What the network sees and decides
//! For each task, [`CandidateBuilder`] lists up to
//! [`Drl::max_candidates`] feasible nodes (those whose fragmentation grows
//! first; see [`CandidateBuilder`]) with one row of [`FEATURES`]
//! numbers each. One multilayer perceptron with shared weights —
//! `FEATURES → 32 → 32 → 1`, ReLU — scores every row (as Decima scores
//! nodes), so one model serves any cluster size. The policy places the task
//! on the candidate with the highest score (the earliest on ties). There is
//! no fallback: when the task fits somewhere, the network's choice is the
//! placement. Inside the chosen node, a GPU share goes to the GPU FGD would
//! pick and whole GPUs are the tightest ones (not learned).
//!
//! # Training
//! `lepton_sim::train` runs episodes of the fill experiment in the
//! simulator's gym environment (`lepton_sim::gym::FillEnv`), stepping the
//! network with a [`Trainer`], in two phases:
//! 1. **imitation** (the warm start): the network acts greedily and learns,
//!    by cross-entropy, FGD's choice among the candidates in the states it
//!    reaches itself;
//! 2. **REINFORCE with a baseline**: on each episode's seed the network
//!    plays twice, once sampling its actions from the softmax of its scores
//!    (at a low temperature) and once greedily; the sampled episode's
//!    actions are reinforced in proportion to how much its return beat the
//!    greedy one's (the greedy rollout is the baseline, as in Kool et al.,
//!    ICLR '19), so the policy moves toward deviations that paid off on the
//!    whole episode.
//!
//! After the imitation phase and every few REINFORCE episodes the greedy
//! model is validated on a few held-out episodes of the training trace
//! (seeds after the training ones); the best one validated is returned.
//! Training is deterministic for a seed and refuses the evaluation seeds
//! 42–51, for training and validation alike.
//!
//! # Model files
//! Weights are safetensors (`0.weight`, `0.bias`, `2.weight`, `2.bias`,
//! `4.weight`, `4.bias`, f32). The model trained on the Alibaba trace ships
//! inside the crate ([`DEFAULT_MODEL`]) and is what `by_name("drl")` loads.
//! A missing, truncated or wrong-shaped file is [`Error::Model`] naming it.
//!
//! # Online learning
//! [`Drl::learn_online`] makes [`Policy::observe`] update the network with
//! each outcome (+1 completed, −1 failed or timed out: the article's reward)
//! by one REINFORCE step on the decision that placed the task.

mod learn;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use dfdx::optim::Sgd;
use dfdx::prelude::*;
use lepton_core::fragmentation::TargetWorkload;
use lepton_core::policy::Feedback;
use lepton_core::{FeasibleNodes, Placement, Policy, TaskId};

use crate::{Candidate, CandidateBuilder, FEATURES};

pub use learn::{Sample, Trainer};

use crate::Error;

/// Hidden width of the network.
pub const HIDDEN: usize = 32;

/// The network: one score per feature row.
pub type Net = (
    Linear<FEATURES, HIDDEN>,
    ReLU,
    Linear<HIDDEN, HIDDEN>,
    ReLU,
    Linear<HIDDEN, 1>,
);

/// The network's weights on the CPU.
pub type Model = <Net as BuildOnDevice<Cpu, f32>>::Built;

/// The model trained on the Alibaba GPU trace (see `docs/RESULTS.md`).
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../models/drl-alibaba.safetensors");

/// Candidates per decision by default.
pub const MAX_CANDIDATES: usize = 64;

/// Decisions remembered for online learning, awaiting their outcome.
const REMEMBERED: usize = 100_000;

/// The learned policy; see the [module docs](self).
pub struct Drl {
    dev: Cpu,
    model: Model,
    workload: Arc<TargetWorkload>,
    builder: CandidateBuilder,
    candidates: Vec<Candidate>,
    max_candidates: usize,
    online: Option<Online>,
}

/// Online learning state: the step size and the open decisions. (Plain
/// SGD keeps no state between steps, so each step builds its optimizer:
/// dfdx's optimizers cannot move between threads, and a policy must.)
struct Online {
    learning_rate: f64,
    /// Per task: its candidates' rows and the index chosen.
    decisions: HashMap<TaskId, (Vec<[f32; FEATURES]>, usize)>,
}

impl std::fmt::Debug for Drl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drl")
            .field("max_candidates", &self.max_candidates)
            .field("online", &self.online.is_some())
            .finish_non_exhaustive()
    }
}

impl Clone for Drl {
    /// A copy with the same weights; online learning state is not copied.
    fn clone(&self) -> Self {
        Drl {
            dev: self.dev.clone(),
            model: self.model.clone(),
            workload: Arc::clone(&self.workload),
            builder: CandidateBuilder::new(),
            candidates: Vec::new(),
            max_candidates: self.max_candidates,
            online: None,
        }
    }
}

impl Drl {
    /// A network with random weights drawn from `seed`, measuring
    /// fragmentation against `workload`.
    pub fn untrained(seed: u64, workload: Arc<TargetWorkload>) -> Drl {
        let dev = Cpu::seed_from_u64(seed);
        let model = dev.build_module::<Net, f32>();
        Drl {
            dev,
            model,
            workload,
            builder: CandidateBuilder::new(),
            candidates: Vec::new(),
            max_candidates: MAX_CANDIDATES,
            online: None,
        }
    }

    /// The shipped model ([`DEFAULT_MODEL`]).
    ///
    /// # Errors
    /// [`Error::Model`] if the embedded file were malformed.
    pub fn trained(workload: Arc<TargetWorkload>) -> Result<Drl, Error> {
        Drl::from_bytes(DEFAULT_MODEL, "<built-in model>", workload)
    }

    /// Loads weights from a safetensors file.
    ///
    /// # Errors
    /// [`Error::Model`] naming `path` when it cannot be read, is not
    /// safetensors, or lacks a tensor of the right name, type and shape.
    pub fn load(path: &Path, workload: Arc<TargetWorkload>) -> Result<Drl, Error> {
        let bytes =
            crate::files::read_bounded(path, crate::files::MAX_MODEL_BYTES).map_err(|e| {
                Error::Model {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
        Drl::from_bytes(&bytes, &path.display().to_string(), workload)
    }

    /// Loads weights from safetensors bytes; `origin` names them in errors.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn from_bytes(
        bytes: &[u8],
        origin: &str,
        workload: Arc<TargetWorkload>,
    ) -> Result<Drl, Error> {
        let mut drl = Drl::untrained(0, workload);
        load_weights(&mut drl.model, bytes).map_err(|reason| Error::Model {
            path: origin.to_owned(),
            reason,
        })?;
        Ok(drl)
    }

    /// Writes the weights as safetensors, atomically: to a temporary file
    /// beside `path`, checked as [`load`](Self::load) checks a file, then
    /// renamed over it. A failed write or a non-finite weight (training
    /// that diverged) leaves whatever was at `path` untouched.
    ///
    /// # Errors
    /// [`Error::Model`] naming `path` when it cannot be written or a
    /// weight is not finite.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let fail = |reason: String| Error::Model {
            path: path.display().to_string(),
            reason,
        };
        let name = path
            .file_name()
            .ok_or_else(|| fail("not a file name".into()))?;
        let mut temporary = name.to_owned();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = path.with_file_name(temporary);
        let written = self
            .model
            .save_safetensors(&temporary)
            .map_err(|e| e.to_string())
            .and_then(|()| std::fs::read(&temporary).map_err(|e| e.to_string()))
            .and_then(|bytes| load_weights(&mut self.model.clone(), &bytes))
            .and_then(|()| std::fs::rename(&temporary, path).map_err(|e| e.to_string()));
        if let Err(reason) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(fail(format!("{reason}; nothing written")));
        }
        Ok(())
    }

    /// The most candidates a decision considers.
    pub fn max_candidates(&self) -> usize {
        self.max_candidates
    }

    /// Sets how many candidates a decision considers (at least 1).
    pub fn with_max_candidates(mut self, max: usize) -> Drl {
        self.max_candidates = max.max(1);
        self
    }

    /// Keeps learning while scheduling: each outcome reported to
    /// [`Policy::observe`] updates the network (plain SGD, `learning_rate`).
    pub fn learn_online(mut self, learning_rate: f64) -> Drl {
        self.online = Some(Online {
            learning_rate,
            decisions: HashMap::new(),
        });
        self
    }

    /// The network's score of each row.
    pub fn scores(&self, rows: &[[f32; FEATURES]]) -> Vec<f32> {
        if rows.is_empty() {
            return Vec::new();
        }
        let data: Vec<f32> = rows.iter().flatten().copied().collect();
        let (first, _, second, _, last) = &self.model;
        let hidden = dense(&self.dev, first, data, true);
        let hidden = dense(&self.dev, second, hidden, true);
        dense(&self.dev, last, hidden, false)
    }

    /// The index of the highest score, the first on ties.
    fn choose(&self, candidates: &[Candidate]) -> Option<usize> {
        let rows: Vec<[f32; FEATURES]> = candidates.iter().map(|c| c.features).collect();
        argmax(&self.scores(&rows))
    }
}

/// One layer of the network on `rows` (each `I` numbers, one after the
/// other) as dfdx's `Linear` and `ReLU` compute it — the product with the
/// transposed weight by dfdx, then the bias added, then (if `relu`) the
/// larger of the value and 0 — with the last two done here in place:
/// dfdx's broadcast addition cost more than the product itself at these
/// sizes. The same numbers bit for bit (a test holds it to
/// `model.forward`).
fn dense<const I: usize, const O: usize>(
    dev: &Cpu,
    layer: &dfdx::nn::modules::Linear<I, O, f32, Cpu>,
    rows: Vec<f32>,
    relu: bool,
) -> Vec<f32> {
    let count = rows.len() / I;
    let input = dev.tensor_from_vec(rows, (count, Const::<I>));
    // The product and the bias are fresh or whole tensors, laid out in
    // order: their storage copies as is (`as_vec` walks them by index).
    let mut out = vec![0.0; count * O];
    input
        .matmul(layer.weight.clone().permute())
        .copy_into(&mut out);
    let mut bias = [0.0; O];
    layer.bias.copy_into(&mut bias);
    for row in out.chunks_exact_mut(O) {
        for (value, bias) in row.iter_mut().zip(&bias) {
            *value += bias;
            if relu {
                *value = value.max(0.0);
            }
        }
    }
    out
}

/// The index of the largest value, the first on ties; `None` when empty
/// (how the network's scores pick a candidate).
pub fn argmax(values: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (index, &value) in values.iter().enumerate() {
        if best.is_none_or(|(_, b)| value > b) {
            best = Some((index, value));
        }
    }
    best.map(|(index, _)| index)
}

impl Drl {
    /// The name it is listed and built by.
    pub const NAME: &'static str = "drl";
}

impl Policy for Drl {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn select(&mut self, nodes: &FeasibleNodes<'_>) -> Option<Placement> {
        let task = nodes.task();
        let mut candidates = std::mem::take(&mut self.candidates);
        self.builder
            .build(&self.workload, nodes, self.max_candidates, &mut candidates);
        let chosen = self.choose(&candidates);
        let placement = chosen.map(|index| candidates[index].placement.clone());
        if let (Some(online), Some(index)) = (&mut self.online, chosen) {
            if online.decisions.len() < REMEMBERED {
                let rows = candidates.iter().map(|c| c.features).collect();
                online.decisions.insert(task.id, (rows, index));
            }
        }
        self.candidates = candidates;
        placement
    }

    fn observe(&mut self, feedback: &Feedback<'_>) {
        let Some(online) = &mut self.online else {
            return;
        };
        let Some((rows, action)) = online.decisions.remove(&feedback.task.id) else {
            return;
        };
        let step = Sample {
            rows,
            action,
            weight: feedback.outcome.reward() as f32,
        };
        let mut optimizer = Sgd::new(
            &self.model,
            SgdConfig {
                lr: online.learning_rate,
                momentum: None,
                weight_decay: None,
            },
        );
        // A failed update leaves the weights as they were; scheduling goes on.
        let _ = learn::update(&self.dev, &mut self.model, &mut optimizer, &[step]);
    }
}

/// The tensors of a model file: name, and shape (rows, columns or 1).
const TENSORS: [(&str, usize, usize); 6] = [
    ("0.weight", HIDDEN, FEATURES),
    ("0.bias", HIDDEN, 1),
    ("2.weight", HIDDEN, HIDDEN),
    ("2.bias", HIDDEN, 1),
    ("4.weight", 1, HIDDEN),
    ("4.bias", 1, 1),
];

/// What is wrong with a file safetensors refused, in words.
fn safetensors_problem(error: &::safetensors::SafeTensorError) -> String {
    use ::safetensors::SafeTensorError as E;
    match error {
        E::HeaderTooSmall | E::InvalidHeaderLength => "too short to hold a header".into(),
        E::HeaderTooLarge => "its header claims more than 100 MB".into(),
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization => {
            "its header is not the JSON safetensors writes".into()
        }
        E::JsonError(e) => format!("its header is not valid JSON ({e})"),
        E::MetadataIncompleteBuffer | E::InvalidOffset(_) | E::TensorInvalidInfo => {
            "its tensors do not match the bytes that follow the header (truncated?)".into()
        }
        E::IoError(e) => e.to_string(),
        other => format!("it is malformed ({other:?})"),
    }
}

/// Reads `bytes` (safetensors) into `model`, checking every tensor's name,
/// type, shape and values before anything is copied.
fn load_weights(model: &mut Model, bytes: &[u8]) -> Result<(), String> {
    let file = ::safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a safetensors file: {}", safetensors_problem(&e)))?;
    let mut values = Vec::with_capacity(TENSORS.len());
    for (name, rows, columns) in TENSORS {
        let tensor = file
            .tensor(name)
            .map_err(|_| format!("tensor {name:?} is missing"))?;
        if tensor.dtype() != ::safetensors::Dtype::F32 {
            return Err(format!(
                "tensor {name:?} is {:?}, expected F32",
                tensor.dtype()
            ));
        }
        let expected: Vec<usize> = if name.ends_with("bias") {
            vec![rows]
        } else {
            vec![rows, columns]
        };
        if tensor.shape() != expected.as_slice() {
            return Err(format!(
                "tensor {name:?} has shape {:?}, expected {expected:?} (a model for {FEATURES} features and {HIDDEN} hidden units)",
                tensor.shape()
            ));
        }
        let floats: Vec<f32> = tensor
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(bad) = floats.iter().find(|v| !v.is_finite()) {
            return Err(format!("tensor {name:?} holds a non-finite value ({bad})"));
        }
        values.push(floats);
    }
    // Shapes were checked above, so every copy has the length it needs.
    let mut values = values
        .into_iter()
        .map(|v| v.into_iter().collect::<Vec<f32>>());
    let mut next = || values.next().unwrap_or_default();
    model.0.weight.copy_from(&next());
    model.0.bias.copy_from(&next());
    model.2.weight.copy_from(&next());
    model.2.bias.copy_from(&next());
    model.4.weight.copy_from(&next());
    model.4.bias.copy_from(&next());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lepton-drl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir.join("model.safetensors")
    }

    #[test]
    fn scores_are_the_networks_forward_bit_for_bit() {
        let workload = Arc::new(TargetWorkload::default());
        let mut rng = lepton_core::rng::SeededRng::new(3);
        let shipped = Drl::trained(Arc::clone(&workload)).expect("the shipped model");
        for drl in [shipped, Drl::untrained(5, workload)] {
            // Row counts around the product's block sizes, values of either
            // sign and a few magnitudes (zeros among them).
            for count in [1, 2, 3, 7, 8, 9, 31, 64, 65, 200] {
                let rows: Vec<[f32; FEATURES]> = (0..count)
                    .map(|_| {
                        std::array::from_fn(|_| match rng.below(5) {
                            0 => 0.0,
                            _ => ((rng.uniform() - 0.3) * 4.0f64.powi(rng.below(4) as i32)) as f32,
                        })
                    })
                    .collect();
                let flat: Vec<f32> = rows.iter().flatten().copied().collect();
                let input = drl.dev.tensor_from_vec(flat, (count, Const::<FEATURES>));
                let expected = drl.model.forward(input).as_vec();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&drl.scores(&rows)), bits(&expected), "{count} rows");
            }
        }
    }

    #[test]
    fn a_saved_model_loads_back_and_a_diverged_one_is_never_written() {
        let workload = Arc::new(TargetWorkload::default());
        let path = scratch("save");
        let drl = Drl::untrained(7, Arc::clone(&workload));
        drl.save(&path).expect("saved");
        let loaded = Drl::load(&path, Arc::clone(&workload)).expect("loads back");
        let row = [[0.5f32; FEATURES]];
        assert_eq!(loaded.scores(&row), drl.scores(&row));
        let before = std::fs::read(&path).expect("model");

        let mut diverged = Drl::untrained(8, workload);
        let mut weights = diverged.model.0.bias.as_vec();
        weights[0] = f32::NAN;
        diverged.model.0.bias.copy_from(&weights);
        let error = diverged.save(&path).expect_err("a NaN model").to_string();
        assert!(
            error.contains("non-finite") && error.contains("nothing written"),
            "{error}"
        );
        assert_eq!(
            std::fs::read(&path).expect("model"),
            before,
            "the old model is intact"
        );
        let dir = path.parent().expect("dir");
        assert_eq!(
            std::fs::read_dir(dir).expect("dir").count(),
            1,
            "no temporary left"
        );
    }
}
