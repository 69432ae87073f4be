//! How the network learns: one gradient step on a batch of decisions.
//! Training runs in the simulator (`lepton-sim`'s `train`, on its gym
//! environment); online learning ([`Drl::learn_online`]) takes the same
//! step on each outcome.

use crate::FEATURES;
use dfdx::optim::Adam;
use dfdx::prelude::*;

use super::{Drl, Model};
use crate::Error;

/// One decision to learn from: the candidates' rows, the action to
/// reinforce (the one taken, or when imitating the teacher's), and its
/// weight in the loss (1 for imitation, the advantage for REINFORCE, the
/// outcome's reward online).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// One feature row per candidate.
    pub rows: Vec<[f32; FEATURES]>,
    /// The index into `rows` to reinforce.
    pub action: usize,
    /// Its weight in the loss.
    pub weight: f32,
}

/// Adam on a [`Drl`]'s weights: the optimizer of a training run.
pub struct Trainer {
    optimizer: Adam<Model, f32, Cpu>,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer").finish_non_exhaustive()
    }
}

impl Trainer {
    /// Adam with this learning rate for `drl`'s weights.
    pub fn new(drl: &Drl, learning_rate: f64) -> Trainer {
        Trainer {
            optimizer: Adam::new(
                &drl.model,
                AdamConfig {
                    lr: learning_rate,
                    ..Default::default()
                },
            ),
        }
    }

    /// One gradient step of `drl` on `batch` (see [`Sample`]); the loss.
    ///
    /// # Errors
    /// [`Error::Training`] when the optimizer fails; the weights are then
    /// unchanged.
    pub fn step(&mut self, drl: &mut Drl, batch: &[Sample]) -> Result<f32, Error> {
        let dev = drl.dev.clone();
        update(&dev, &mut drl.model, &mut self.optimizer, batch)
    }
}

/// One gradient step on `batch`: minimises −Σ weight · log π(action), with
/// π the softmax of the scores over each decision's candidates (padding
/// masked out). Returns the loss.
pub(crate) fn update(
    dev: &Cpu,
    model: &mut Model,
    optimizer: &mut impl Optimizer<Model, Cpu, f32>,
    batch: &[Sample],
) -> Result<f32, Error> {
    let width = batch.iter().map(|s| s.rows.len()).max().unwrap_or(0);
    if width == 0 {
        return Ok(0.0);
    }
    let size = batch.len();
    let mut data = vec![0.0f32; size * width * FEATURES];
    let mut mask = vec![0.0f32; size * width];
    for (i, sample) in batch.iter().enumerate() {
        for (j, row) in sample.rows.iter().enumerate() {
            let start = (i * width + j) * FEATURES;
            data[start..start + FEATURES].copy_from_slice(row);
        }
        for slot in &mut mask[i * width + sample.rows.len()..(i + 1) * width] {
            *slot = -1e9;
        }
    }
    let actions: Vec<usize> = batch.iter().map(|s| s.action.min(width - 1)).collect();
    let weights: Vec<f32> = batch.iter().map(|s| s.weight).collect();
    let input = dev.tensor_from_vec(data, (size, width, Const::<FEATURES>));
    let grads = model.alloc_grads();
    let scores = model.forward_mut(input.traced(grads));
    let scores = scores.reshape_like(&(size, width)) + dev.tensor_from_vec(mask, (size, width));
    let chosen = scores
        .log_softmax::<Axis<1>>()
        .select(dev.tensor_from_vec(actions, (size,)));
    let loss = (chosen * dev.tensor_from_vec(weights, (size,)))
        .mean()
        .negate();
    let value = loss.array();
    let grads = loss.backward();
    optimizer
        .update(model, &grads)
        .map_err(|e| Error::Training {
            reason: format!("optimizer: {e:?}"),
        })?;
    Ok(value)
}
