"""MaskablePPO (sb3-contrib) on Lepton's fill experiment, beside random and FGD.

    python -m venv venv
    venv/bin/pip install sb3-contrib        # brings stable-baselines3 and PyTorch
    venv/bin/pip install ./lepton-py
    OMP_NUM_THREADS=1 venv/bin/python examples/python/maskable_ppo.py --timesteps 200000

Not run in CI: PyTorch (pulled in by sb3-contrib) is several GB to install.

A MaskablePPO agent (``MlpPolicy`` on the flattened ``(max_candidates,
FEATURES)`` observation) learns to place tasks in ``gym.make("LeptonEnv")``;
the invalid candidates are masked through the env's ``action_masks()``
hook, so it never picks one. Training episodes run on seeds ``--seed``,
``--seed + 1``, ... (never the evaluation seeds 9001-9003). It is then
evaluated, acting deterministically, on seeds 9001, 9002 and 9003 beside an
agent picking a uniformly random valid candidate and FGD (the published
state of the art, ``env.unwrapped.fgd_action()``). The PPO and random agents
read only the observation and the mask. The last line of output is JSON
with each one's mean GPU allocation (%) when the fill reaches 100 % of the
GPUs requested (the FGD paper's metric), per seed too.

Hyperparameters are stable-baselines3's defaults except where given below
(``PPO_KWARGS``); training uses one PyTorch thread.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import sb3_contrib
import stable_baselines3
import torch
from gymnasium.wrappers import FlattenObservation
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

import lepton

#: Evaluation seeds, never trained on.
EVALUATION_SEEDS = (9001, 9002, 9003)

#: The settings that differ from stable-baselines3's PPO defaults.
PPO_KWARGS = dict(
    n_steps=2048,
    batch_size=256,
    n_epochs=5,
    learning_rate=3e-4,
    gamma=0.99,
    ent_coef=0.0,
    policy_kwargs=dict(net_arch=[128, 128]),
)


class TrainingSeeds(gym.Wrapper):
    """Resets episode i with seed ``first + i``, whatever seed is asked for,
    so that training never meets an evaluation seed."""

    def __init__(self, env: gym.Env, first: int):
        super().__init__(env)
        self.next_seed = first

    def reset(self, *, seed=None, options=None):
        seed, self.next_seed = self.next_seed, self.next_seed + 1
        if seed in EVALUATION_SEEDS:
            raise RuntimeError(f"training reached evaluation seed {seed}")
        return self.env.reset(seed=seed, options=options)


def make_env(args) -> gym.Env:
    env = gym.make("LeptonEnv", max_candidates=args.max_candidates, reward=args.reward)
    return FlattenObservation(env)


def evaluate(env: gym.Env, choose) -> list:
    """The allocation % of each evaluation episode, ``choose(obs, mask)``
    picking the actions; an invalid choice stops the run."""
    allocations = []
    for seed in EVALUATION_SEEDS:
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            mask = info["action_mask"]
            action = int(choose(obs, mask))
            if not mask[action]:
                raise RuntimeError(f"invalid action {action} on seed {seed}")
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        allocations.append(float(info["summary"]["alloc_pct"]))
    return allocations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1, help="first training seed")
    parser.add_argument("--max-candidates", type=int, default=64)
    parser.add_argument("--reward", default="gpus", choices=("gpus", "frag", "seed"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    train_env = TrainingSeeds(make_env(args), args.seed)
    # MaskablePPO takes the masks from action_masks() only where this holds.
    assert is_masking_supported(train_env), "the env exposes no action_masks()"
    model = MaskablePPO(
        "MlpPolicy", train_env, seed=args.seed, device="cpu", verbose=0, **PPO_KWARGS
    )
    assert is_masking_supported(model.get_env())
    started = time.perf_counter()
    model.learn(total_timesteps=args.timesteps)
    train_s = time.perf_counter() - started
    episodes = train_env.next_seed - args.seed
    print(f"trained {args.timesteps} timesteps ({episodes} episodes) in {train_s:.0f} s", flush=True)

    env = make_env(args)
    rng = np.random.default_rng(args.seed)

    def ppo(obs, mask):
        # The mask given to predict() is the env's own (get_action_masks).
        assert np.array_equal(mask, get_action_masks(env))
        action, _ = model.predict(obs, action_masks=mask, deterministic=True)
        return action

    results = {
        "ppo": evaluate(env, ppo),
        "random": evaluate(env, lambda o, m: rng.choice(np.flatnonzero(m))),
        "fgd": evaluate(env, lambda o, m: env.unwrapped.fgd_action()),
    }
    for name, values in results.items():
        print(f"{name:>6}: mean {np.mean(values):.2f}%  per seed "
              + ", ".join(f"{v:.2f}" for v in values), flush=True)
    summary = {
        "reward": args.reward,
        "timesteps": args.timesteps,
        "training_episodes": episodes,
        "training_s": round(train_s, 1),
        "evaluation_seeds": list(EVALUATION_SEEDS),
        **{f"{name}_alloc_pct": round(float(np.mean(v)), 3) for name, v in results.items()},
        "per_seed": {name: [round(v, 3) for v in values] for name, values in results.items()},
        "hyperparameters": {k: v for k, v in PPO_KWARGS.items()},
        "versions": {
            "torch": torch.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__,
            "gymnasium": gym.__version__,
        },
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
