"""Steps per second of Lepton's Python environments, side by side with the
Rust environment in the same process.

    pip install ./lepton-py
    python examples/python/bench.py

Every rate is one fill episode after another on the shipped trace (1,213
nodes, 64 candidates), actions drawn at random among the valid ones
(NumPy), for at least --seconds each:
- rust: the episode run wholly in Rust (`lepton._lepton.rust_episode`,
  first candidate each step): the limit a binding can reach;
- rust random: the same with a random candidate each step (drawn in
  Rust): random placements leave the cluster in more distinct states, so
  FGD's ranking behind the candidates costs more per step;
- env: `lepton.LeptonEnv` stepped from Python;
- gym.make: the same through Gymnasium's wrappers (order enforcing, the
  passive checker), as `gym.make("LeptonEnv")` returns it;
- vec N: `lepton.VecEnv(N)` on one thread per core;
- edge env: `lepton.LeptonEnv(mode="edge")`, the edge scenario's day
  (20,000 tasks, 9 candidates), its replay on a thread of its own.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import gymnasium as gym
import numpy as np

import lepton


def single(env, seconds: float) -> float:
    rng = np.random.default_rng(0)
    steps, seed = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        _, info = env.reset(seed=seed)
        seed += 1
        terminated = False
        while not terminated:
            mask = info["action_mask"]
            action = int(rng.choice(np.flatnonzero(mask)))
            _, _, terminated, _, info = env.step(action)
            steps += 1
    return steps / (time.perf_counter() - started)


def rust(seconds: float, rule: str) -> float:
    steps, seed = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        steps += len(lepton._lepton.rust_episode(seed, rule))
        seed += 1
    return steps / (time.perf_counter() - started)


def batched(n: int, seconds: float) -> float:
    env = lepton.VecEnv(n)
    rng = np.random.default_rng(0)
    _, info = env.reset(seed=0)
    steps = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        masks = info["action_mask"]
        # A random valid action per environment, vectorised: the
        # (masked) argmax of uniform noise.
        actions = np.argmax(np.where(masks, rng.random(masks.shape), -1.0), axis=1)
        _, _, _, _, info = env.step(actions)
        steps += n
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batches", default="1,8,32,128,512")
    args = parser.parse_args()
    result = {"cores": os.cpu_count(), "rust": rust(args.seconds, "first")}
    result["rust random"] = rust(args.seconds, "random")
    result["env"] = single(lepton.LeptonEnv(), args.seconds)
    result["gym.make"] = single(gym.make("LeptonEnv"), args.seconds)
    for n in (int(n) for n in args.batches.split(",")):
        result[f"vec {n}"] = batched(n, args.seconds)
    result["edge env"] = single(lepton.LeptonEnv(mode="edge"), args.seconds)
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
