//! Training the learned policy (`lepton-policies`' `Drl`) in the fill
//! environment ([`FillEnv`]) or a scenario's fleet ([`FleetEnv`], with the
//! cost reward): imitation of FGD, then REINFORCE with a greedy baseline,
//! validated on held-out episodes. It lives in the simulator because every
//! episode is a simulation; the network and its gradient step are the
//! policy's ([`Trainer`]).

use std::ops::RangeInclusive;

use lepton_core::rng::SeededRng;
use lepton_policies::drl::{argmax, Drl, Sample, Trainer};
use lepton_policies::FEATURES;
use serde::Serialize;

use crate::gym::{FillEnv, FleetEnv, Observation, Step, Summary};
use crate::Error;

/// The seeds the fill experiment's results are reported on; training
/// never uses them.
pub const EVALUATION_SEEDS: RangeInclusive<u64> = 42..=51;

/// The seeds the scenarios' results are reported on (`lepton demo --seed
/// 1` … `5`); training in a fleet never uses them.
pub const SCENARIO_SEEDS: RangeInclusive<u64> = 1..=5;

/// An environment the learned policy trains in: an episode per seed, a
/// step per decision, candidates described by the policy's feature rows.
pub trait Environment {
    /// The seeds results are reported on: training refuses them.
    fn evaluation_seeds(&self) -> RangeInclusive<u64>;
    /// Starts an episode; its first decision, if any.
    ///
    /// # Errors
    /// The environment's own.
    fn reset(&mut self, seed: u64) -> Result<Option<Observation>, Error>;
    /// Takes candidate `action`; the reward and the next decision.
    ///
    /// # Errors
    /// The environment's own.
    fn step(&mut self, action: usize) -> Result<Step, Error>;
    /// The episode's figures.
    ///
    /// # Errors
    /// The environment's own.
    fn summary(&self) -> Result<Summary, Error>;
}

impl Environment for FillEnv {
    fn evaluation_seeds(&self) -> RangeInclusive<u64> {
        EVALUATION_SEEDS
    }
    fn reset(&mut self, seed: u64) -> Result<Option<Observation>, Error> {
        FillEnv::reset(self, seed)
    }
    fn step(&mut self, action: usize) -> Result<Step, Error> {
        FillEnv::step(self, action)
    }
    fn summary(&self) -> Result<Summary, Error> {
        FillEnv::summary(self)
    }
}

impl Environment for FleetEnv {
    fn evaluation_seeds(&self) -> RangeInclusive<u64> {
        SCENARIO_SEEDS
    }
    fn reset(&mut self, seed: u64) -> Result<Option<Observation>, Error> {
        FleetEnv::reset(self, seed)
    }
    fn step(&mut self, action: usize) -> Result<Step, Error> {
        FleetEnv::step(self, action)
    }
    fn summary(&self) -> Result<Summary, Error> {
        FleetEnv::summary(self)
    }
}

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
    /// Adam's learning rate while imitating.
    pub learning_rate: f64,
    /// Adam's learning rate for REINFORCE.
    pub reinforce_learning_rate: f64,
    /// Decisions per gradient step.
    pub batch: usize,
    /// Softmax temperature of the sampled actions (REINFORCE).
    pub temperature: f32,
    /// Greedy episodes the model is validated on, with seeds following the
    /// training ones; the best model validated is the one returned. 0
    /// returns the last model.
    pub validation_episodes: usize,
    /// Validate after the imitation phase, then every this many REINFORCE
    /// episodes, and after the last.
    pub validate_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            imitation_episodes: 20,
            episodes: 40,
            seed: 1_000,
            learning_rate: 3e-3,
            reinforce_learning_rate: 1e-4,
            batch: 256,
            temperature: 0.1,
            validation_episodes: 5,
            validate_every: 10,
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
    /// REINFORCE: the return of the greedy rollout on the same seed (the
    /// baseline); imitation: the same as `reward`.
    pub baseline: f64,
    /// Mean loss of the episode's gradient steps.
    pub loss: f64,
    /// GPU allocation % at the episode's end (100% arrived).
    pub alloc_pct: f64,
    /// How often the action equalled FGD's choice among the candidates, %.
    pub fgd_agreement_pct: f64,
    /// When the model was validated after this episode: its mean greedy
    /// return on the validation episodes.
    pub validation: Option<f64>,
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

/// Trains a policy in `env` and returns it with each episode's figures;
/// `progress` sees each episode as it ends.
///
/// # Errors
/// [`Error::EvaluationSeed`] when an episode's seed would be one of the
/// environment's [evaluation seeds](Environment::evaluation_seeds);
/// [`Error::Policy`] when a gradient step fails; the simulator's own
/// errors.
pub fn train<E: Environment>(
    env: &mut E,
    drl: Drl,
    config: &TrainConfig,
    mut progress: impl FnMut(&EpisodeStats),
) -> Result<(Drl, Vec<EpisodeStats>), Error> {
    let total = config.imitation_episodes + config.episodes;
    let seed = |i: usize| config.seed.wrapping_add(i as u64);
    let seeds: Vec<u64> = (0..total).map(seed).collect();
    let validation: Vec<u64> = (total..total + config.validation_episodes)
        .map(seed)
        .collect();
    let evaluation = env.evaluation_seeds();
    if let Some(&seed) = seeds
        .iter()
        .chain(&validation)
        .find(|s| evaluation.contains(s))
    {
        let (first, last) = evaluation.into_inner();
        return Err(Error::EvaluationSeed { seed, first, last });
    }
    let mut training = Training {
        env,
        imitation: Trainer::new(&drl, config.learning_rate),
        reinforce: Trainer::new(&drl, config.reinforce_learning_rate),
        drl,
        config,
        validation,
        rng: SeededRng::new(config.seed),
        best: None,
    };
    let mut history = Vec::with_capacity(total);
    for (episode, &seed) in seeds.iter().enumerate() {
        let stats = training.episode(episode, seed)?;
        progress(&stats);
        history.push(stats);
    }
    let drl = match training.best {
        Some((_, validated)) => validated,
        None => training.drl,
    };
    Ok((drl, history))
}

/// A training run in progress.
struct Training<'a, E> {
    env: &'a mut E,
    drl: Drl,
    /// Adam while imitating, and for REINFORCE.
    imitation: Trainer,
    reinforce: Trainer,
    config: &'a TrainConfig,
    /// The validation episodes' seeds.
    validation: Vec<u64>,
    rng: SeededRng,
    /// The best model validated, with its mean greedy return.
    best: Option<(f64, Drl)>,
}

impl<E: Environment> Training<'_, E> {
    /// Plays episode `episode` on `seed`, learns from it, and validates
    /// when due.
    fn episode(&mut self, episode: usize, seed: u64) -> Result<EpisodeStats, Error> {
        let config = self.config;
        let imitating = episode < config.imitation_episodes;
        let acting = if imitating {
            Acting::Imitate
        } else {
            Acting::Sample(config.temperature)
        };
        let played = play(self.env, &self.drl, seed, acting, &mut self.rng)?;
        let reward: f64 = played.rewards.iter().sum();
        let alloc_pct = self.env.summary()?.alloc_pct;
        let mut samples = played.samples;
        let baseline = if imitating {
            reward
        } else {
            // The baseline: the greedy policy's return on the same episode.
            let greedy = play(self.env, &self.drl, seed, Acting::Greedy, &mut self.rng)?;
            let baseline: f64 = greedy.rewards.iter().sum();
            let advantage = ((reward - baseline) / baseline.abs().max(1.0) * 100.0) as f32;
            for sample in &mut samples {
                sample.weight = advantage;
            }
            baseline
        };
        let loss = self.learn(&mut samples, imitating)?;
        let validation = if self.validation.is_empty() || !validates_after(episode, config) {
            None
        } else {
            Some(self.validate()?)
        };
        Ok(EpisodeStats {
            episode,
            phase: if imitating { "imitation" } else { "reinforce" },
            seed,
            reward,
            baseline,
            loss,
            alloc_pct,
            fgd_agreement_pct: played.agreement_pct,
            validation,
        })
    }

    /// Gradient steps on `samples`, shuffled, in batches; the mean loss.
    fn learn(&mut self, samples: &mut [Sample], imitating: bool) -> Result<f64, Error> {
        self.rng.shuffle(samples);
        let optimizer = if imitating {
            &mut self.imitation
        } else {
            &mut self.reinforce
        };
        let mut losses = Vec::new();
        for batch in samples.chunks(self.config.batch.max(1)) {
            losses.push(optimizer.step(&mut self.drl, batch)?);
        }
        Ok(losses.iter().map(|&l| f64::from(l)).sum::<f64>() / losses.len().max(1) as f64)
    }

    /// The greedy model's mean return on the validation episodes, kept if
    /// it is the best so far.
    fn validate(&mut self) -> Result<f64, Error> {
        let mut total = 0.0;
        for &seed in &self.validation {
            let greedy = play(self.env, &self.drl, seed, Acting::Greedy, &mut self.rng)?;
            total += greedy.rewards.iter().sum::<f64>();
        }
        let mean = total / self.validation.len() as f64;
        if self.best.as_ref().is_none_or(|(b, _)| mean > *b) {
            self.best = Some((mean, self.drl.clone()));
        }
        Ok(mean)
    }
}

/// Whether the model is validated after `episode`: at the end of the
/// imitation phase, every `validate_every` REINFORCE episodes, and last.
fn validates_after(episode: usize, config: &TrainConfig) -> bool {
    let last = config.imitation_episodes + config.episodes;
    let end_of_imitation = config.imitation_episodes;
    if episode + 1 == last || episode + 1 == end_of_imitation {
        return true;
    }
    episode + 1 > end_of_imitation
        && (episode + 1 - end_of_imitation).is_multiple_of(config.validate_every.max(1))
}

/// How the network acts in an episode.
#[derive(Debug, Clone, Copy)]
enum Acting {
    /// Greedily, each sample labelled with FGD's choice (imitation on the
    /// states the network reaches itself).
    Imitate,
    /// Sampling from the softmax of the scores at this temperature.
    Sample(f32),
    /// Greedily (the baseline rollout; its samples are not learned from).
    Greedy,
}

/// An episode played.
struct Played {
    samples: Vec<Sample>,
    rewards: Vec<f64>,
    /// % of actions equal to FGD's choice.
    agreement_pct: f64,
}

/// Plays an episode greedily (the network's best candidate each time)
/// and returns its rewards, summed.
///
/// # Errors
/// As [`Environment::reset`] and [`Environment::step`].
pub fn play_greedy<E: Environment>(env: &mut E, drl: &Drl, seed: u64) -> Result<f64, Error> {
    let played = play(env, drl, seed, Acting::Greedy, &mut SeededRng::new(seed))?;
    Ok(played.rewards.iter().sum())
}

fn play<E: Environment>(
    env: &mut E,
    drl: &Drl,
    seed: u64,
    acting: Acting,
    rng: &mut SeededRng,
) -> Result<Played, Error> {
    let mut samples = Vec::new();
    let mut rewards = Vec::new();
    let mut agreed = 0usize;
    let mut observation = env.reset(seed)?;
    while let Some(current) = observation {
        let rows: Vec<[f32; FEATURES]> = current.candidates.iter().map(|c| c.features).collect();
        let scores = drl.scores(&rows);
        let teacher = fgd_choice(&current).unwrap_or(0);
        let action = match acting {
            Acting::Imitate | Acting::Greedy => argmax(&scores).unwrap_or(0),
            Acting::Sample(temperature) => sample_softmax(&scores, temperature, rng),
        };
        agreed += usize::from(action == teacher);
        let step = env.step(action)?;
        rewards.push(step.reward);
        if !matches!(acting, Acting::Greedy) {
            let label = match acting {
                Acting::Imitate => teacher,
                _ => action,
            };
            samples.push(Sample {
                rows,
                action: label,
                weight: 1.0,
            });
        }
        observation = step.observation;
    }
    let agreement_pct = agreed as f64 * 100.0 / rewards.len().max(1) as f64;
    Ok(Played {
        samples,
        rewards,
        agreement_pct,
    })
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
    let mut point = rng.uniform() * total;
    for (index, weight) in weights.iter().enumerate() {
        if point < *weight {
            return index;
        }
        point -= weight;
    }
    scores.len().saturating_sub(1)
}
