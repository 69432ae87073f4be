"""The article's training loop on Gymnasium, with NumPy only.

    pip install ./lepton-py
    python examples/python/train_numpy.py --episodes 10

A policy-gradient (REINFORCE) agent learns to place tasks in
``gym.make("LeptonEnv")``: a linear score per candidate row, a softmax over
the valid candidates (``info["action_mask"]``), trained on the step reward
``frag`` (minus the fragmentation each placement adds) against a running
baseline. It trains on seeds from ``--seed`` and is evaluated, acting
greedily, on other seeds beside a random agent and FGD; the last line of
output is JSON with each one's mean GPU allocation (%) when the fill
reaches 100 % of the GPUs requested (the FGD paper's metric).
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np

import lepton

#: Evaluation seeds, never trained on (training seeds start at --seed).
EVALUATION_SEEDS = (9001, 9002, 9003)


class Agent:
    """A linear softmax policy over candidate rows."""

    def __init__(self, features: int, rng: np.random.Generator, learning_rate: float):
        self.weights = rng.normal(0.0, 0.01, size=features)
        self.learning_rate = learning_rate
        # Adam's moments.
        self.m = np.zeros(features)
        self.v = np.zeros(features)
        self.t = 0

    def probabilities(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        logits = np.where(mask, obs @ self.weights, -np.inf)
        logits -= logits.max()
        p = np.exp(logits)
        return p / p.sum()

    def act(self, obs, mask, rng=None) -> int:
        p = self.probabilities(obs, mask)
        if rng is None:
            return int(np.argmax(p))
        return int(rng.choice(len(p), p=p))

    def learn(self, episode: list) -> None:
        """One gradient step on an episode's (obs, mask, action, reward)."""
        rewards = np.array([r for *_, r in episode])
        advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-8)
        gradient = np.zeros_like(self.weights)
        for (obs, mask, action, _), advantage in zip(episode, advantages):
            p = self.probabilities(obs, mask)
            # d log softmax / d w = x_a - E_p[x].
            gradient += advantage * (obs[action] - p @ obs)
        gradient /= len(episode)
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * gradient
        self.v = 0.999 * self.v + 0.001 * gradient**2
        m_hat = self.m / (1 - 0.9**self.t)
        v_hat = self.v / (1 - 0.999**self.t)
        self.weights += self.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)


def run_episode(env, seed, choose) -> tuple:
    """Plays one episode; the steps (obs, mask, action, reward) and the
    final allocation %."""
    obs, info = env.reset(seed=seed)
    steps = []
    terminated = truncated = False
    while not (terminated or truncated):
        mask = info["action_mask"]
        action = choose(obs, mask)
        next_obs, reward, terminated, truncated, info = env.step(action)
        steps.append((obs, mask, action, reward))
        obs = next_obs
    return steps, info["summary"]["alloc_pct"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--trace", default="default", choices=lepton.TRACES)
    parser.add_argument("--max-candidates", type=int, default=64)
    args = parser.parse_args()

    env = gym.make(
        "LeptonEnv", trace=args.trace, max_candidates=args.max_candidates, reward="frag"
    )
    # The article reads the state size off the observation space.
    rows, features = env.observation_space.shape
    rng = np.random.default_rng(args.seed)
    agent = Agent(features, rng, args.learning_rate)
    started = time.perf_counter()
    steps = 0
    for episode in range(args.episodes):
        trail, alloc = run_episode(env, args.seed + episode, lambda o, m: agent.act(o, m, rng))
        agent.learn(trail)
        steps += len(trail)
        print(f"episode {episode}: {len(trail)} steps, allocation {alloc:.2f}%", flush=True)
    train_s = time.perf_counter() - started

    def evaluate(choose) -> float:
        return float(np.mean([run_episode(env, seed, choose)[1] for seed in EVALUATION_SEEDS]))

    result = {
        "episodes": args.episodes,
        "training_steps": steps,
        "training_s": round(train_s, 2),
        "evaluation_seeds": list(EVALUATION_SEEDS),
        "trained_alloc_pct": evaluate(lambda o, m: agent.act(o, m)),
        "random_alloc_pct": evaluate(lambda o, m: int(rng.choice(np.flatnonzero(m)))),
        "fgd_alloc_pct": evaluate(lambda o, m: env.unwrapped.fgd_action()),
        "weights": dict(zip(lepton.FEATURE_NAMES, np.round(agent.weights, 3).tolist())),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
