//! Training the learned policy in the fill environment.

use std::ops::RangeInclusive;

use dfdx::optim::Adam;
use dfdx::prelude::*;
use lepton_core::{SeededRng, FEATURES};
use lepton_sim::gym::{FillEnv, Observation};
use serde::Serialize;

use super::{argmax, Drl, Model};
use crate::Error;

/// The seeds results are reported on; training never uses them.
pub const EVALUATION_SEEDS: RangeInclusive<u64> = 42..=51;

/// Settings of a training run.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct TrainConfig {
    /// Episodes of imitation of FGD's choice (the warm start).
    pub imitation_episodes: usize,
    /// Episodes of REINFORCE after it.
    pub episodes: usize,
    /// Episode `i` runs with seed `seed + i`; the network's initial
    /// weights and the action sampling are drawn from it too.
    pub seed: u64,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Decisions per gradient step.
    pub batch: usize,
    /// Softmax temperature of the sampled actions (REINFORCE).
    pub temperature: f32,
    /// Discount of future rewards (REINFORCE).
    pub gamma: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            imitation_episodes: 4,
            episodes: 16,
            seed: 1_000,
            learning_rate: 1e-3,
            batch: 256,
            temperature: 0.05,
            gamma: 0.99,
        }
    }
}

/// What one training episode measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EpisodeStats {
    /// Counting from 0 over both phases.
    pub episode: usize,
    /// `imitation` or `reinforce`.
    pub phase: &'static str,
    /// The episode's seed.
    pub seed: u64,
    /// The episode's return (undiscounted sum of rewards).
    pub reward: f64,
    /// Mean loss of the episode's gradient steps.
    pub loss: f64,
    /// GPU allocation % at the episode's end (100% arrived).
    pub alloc_pct: f64,
    /// How often the action equalled FGD's choice among the candidates, %.
    pub fgd_agreement_pct: f64,
}

/// One decision to learn from: the candidates' rows, the action taken (or,
/// when imitating, the teacher's), and its weight in the loss (1 for
/// imitation, the advantage for REINFORCE).
pub(crate) struct Sample {
    pub(crate) rows: Vec<[f32; FEATURES]>,
    pub(crate) action: usize,
    pub(crate) weight: f32,
}

/// FGD's choice among candidates: the best integer score (feature 1 is it,
/// relative to the best), the earliest on ties (candidates are in cluster
/// order).
pub fn fgd_choice(observation: &Observation) -> Option<usize> {
    let scores: Vec<f32> = observation
        .candidates
        .iter()
        .map(|c| c.features[1])
        .collect();
    argmax(&scores)
}

/// Trains a policy in `env` (fill experiment) and returns it with each
/// episode's figures; `progress` sees each episode as it ends.
///
/// # Errors
/// [`Error::EvaluationSeed`] when an episode's seed would be one of
/// [`EVALUATION_SEEDS`]; [`Error::Training`] for a simulator or tensor error.
pub fn train(
    env: &mut FillEnv,
    mut drl: Drl,
    config: &TrainConfig,
    mut progress: impl FnMut(&EpisodeStats),
) -> Result<(Drl, Vec<EpisodeStats>), Error> {
    let total = config.imitation_episodes + config.episodes;
    let seeds: Vec<u64> = (0..total as u64)
        .map(|i| config.seed.wrapping_add(i))
        .collect();
    if let Some(&seed) = seeds.iter().find(|s| EVALUATION_SEEDS.contains(s)) {
        return Err(Error::EvaluationSeed { seed });
    }
    let mut optimizer = Adam::new(
        &drl.model,
        AdamConfig {
            lr: config.learning_rate,
            ..Default::default()
        },
    );
    let mut rng = SeededRng::new(config.seed);
    let mut history = Vec::with_capacity(total);
    for (episode, &seed) in seeds.iter().enumerate() {
        let imitating = episode < config.imitation_episodes;
        let (mut samples, rewards, agreement) =
            play(env, &drl, seed, imitating, config.temperature, &mut rng)?;
        if !imitating {
            set_advantages(&mut samples, &rewards, config.gamma);
        }
        rng.shuffle(&mut samples);
        let mut losses = Vec::new();
        for batch in samples.chunks(config.batch.max(1)) {
            let dev = drl.dev.clone();
            losses.push(update(&dev, &mut drl.model, &mut optimizer, batch)?);
        }
        let summary = env.summary().map_err(training)?;
        let stats = EpisodeStats {
            episode,
            phase: if imitating { "imitation" } else { "reinforce" },
            seed,
            reward: rewards.iter().sum(),
            loss: losses.iter().map(|&l| f64::from(l)).sum::<f64>() / losses.len().max(1) as f64,
            alloc_pct: summary.alloc_pct,
            fgd_agreement_pct: agreement,
        };
        progress(&stats);
        history.push(stats);
    }
    Ok((drl, history))
}

fn training(error: lepton_sim::Error) -> Error {
    Error::Training {
        reason: error.to_string(),
    }
}

/// Plays one episode. Imitating, the network acts greedily and each sample
/// is labelled with FGD's choice (so it learns from the states it reaches
/// itself); otherwise actions are sampled from the softmax of the scores.
/// Returns the samples, the rewards and the % of actions equal to FGD's.
fn play(
    env: &mut FillEnv,
    drl: &Drl,
    seed: u64,
    imitating: bool,
    temperature: f32,
    rng: &mut SeededRng,
) -> Result<(Vec<Sample>, Vec<f64>, f64), Error> {
    let mut samples = Vec::new();
    let mut rewards = Vec::new();
    let mut agreed = 0usize;
    let mut observation = env.reset(seed).map_err(training)?;
    while let Some(current) = observation {
        let rows: Vec<[f32; FEATURES]> = current.candidates.iter().map(|c| c.features).collect();
        let scores = drl.scores(&rows);
        let teacher = fgd_choice(&current).unwrap_or(0);
        let action = if imitating {
            argmax(&scores).unwrap_or(0)
        } else {
            sample_softmax(&scores, temperature, rng)
        };
        agreed += usize::from(action == teacher);
        let step = env.step(action).map_err(training)?;
        rewards.push(step.reward);
        samples.push(Sample {
            rows,
            action: if imitating { teacher } else { action },
            weight: 1.0,
        });
        observation = step.observation;
    }
    let agreement = agreed as f64 * 100.0 / samples.len().max(1) as f64;
    Ok((samples, rewards, agreement))
}

/// Draws an index with probability softmax(scores / temperature).
fn sample_softmax(scores: &[f32], temperature: f32, rng: &mut SeededRng) -> usize {
    let temperature = temperature.max(1e-6);
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = scores
        .iter()
        .map(|&s| f64::from((s - max) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut point = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (index, weight) in weights.iter().enumerate() {
        if point < *weight {
            return index;
        }
        point -= weight;
    }
    scores.len().saturating_sub(1)
}

/// REINFORCE's weights: discounted returns, minus their mean (the
/// baseline), over their standard deviation.
fn set_advantages(samples: &mut [Sample], rewards: &[f64], gamma: f64) {
    let mut returns = vec![0.0; rewards.len()];
    let mut running = 0.0;
    for (t, reward) in rewards.iter().enumerate().rev() {
        running = reward + gamma * running;
        returns[t] = running;
    }
    let n = returns.len().max(1) as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let std = (returns.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n).sqrt();
    for (sample, g) in samples.iter_mut().zip(returns) {
        sample.weight = ((g - mean) / (std + 1e-8)) as f32;
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
    optimizer.update(model, &grads).map_err(|e| Error::Training {
        reason: format!("optimizer: {e:?}"),
    })?;
    Ok(value)
}
