"""The edge scenario's environment: its rows carry the latency columns,
its episode is the scenario's own replay (a cloud-only agent gives the
cloud-only strategy's report of ``lepton demo``), the cost reward is the
bill and the penalties, and a batch of edge environments equals single
ones."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import lepton

CLOUD = lepton.FEATURES + lepton.EDGE_FEATURE_NAMES.index("cloud")
LATENCY = lepton.FEATURES + lepton.EDGE_FEATURE_NAMES.index("latency_over_objective")


def cloud_first(obs: np.ndarray, mask: np.ndarray) -> int:
    """The first cloud candidate, else the first candidate."""
    cloud = np.flatnonzero(mask & (obs[:, CLOUD] == 1.0))
    return int(cloud[0]) if len(cloud) else int(np.flatnonzero(mask)[0])


def test_a_cloud_only_agent_gets_the_cloud_only_strategys_report():
    env = gym.make("lepton/Edge-v0", slo_penalty=0.5)
    columns = lepton.FEATURES + len(lepton.EDGE_FEATURE_NAMES)
    # Every site and the cloud, by default.
    assert env.observation_space.shape == (9, columns)
    assert env.unwrapped.feature_names == lepton.FEATURE_NAMES + lepton.EDGE_FEATURE_NAMES
    obs, info = env.reset(seed=2)
    total, steps, done = 0.0, 0, False
    while not done:
        assert env.observation_space.contains(obs)
        obs, reward, done, _, info = env.step(cloud_first(obs, info["action_mask"]))
        total += reward
        steps += 1
    [scenario] = lepton.demo("edge", seed=2)
    expected = next(s for s in scenario["strategies"] if s["name"] == "cloud-only")
    report = info["report"]
    assert steps == scenario["size"]["tasks"] == report["completed"]
    assert report["cost_usd"] == expected["cost_usd"] > 0
    assert report["objective_violations"] == expected["objective_violations"] > 0
    bill = report["cost_usd"] + 0.5 * report["objective_violations"]
    assert total == pytest.approx(-bill, rel=1e-12)


def test_the_nearest_site_beats_the_cloud_on_latency_and_cost():
    env = lepton.LeptonEnv(mode="edge", tasks=4_000)
    results = {}
    for name in ("nearest", "cloud"):
        obs, info = env.reset(seed=5)
        done = False
        while not done:
            mask = info["action_mask"]
            if name == "nearest":
                action = int(np.flatnonzero(mask)[np.argmin(obs[mask, LATENCY])])
            else:
                action = cloud_first(obs, mask)
            obs, _, done, _, info = env.step(action)
        results[name] = info["report"]
    nearest, cloud = results["nearest"], results["cloud"]
    assert nearest["mean_latency_ms"] < cloud["mean_latency_ms"]
    assert nearest["cost_usd"] < cloud["cost_usd"]
    assert nearest["objective_violations"] < cloud["objective_violations"]


def test_a_batch_of_edge_envs_equals_single_ones():
    options = dict(mode="edge", tasks=300, hours=2, max_candidates=4)
    batch = lepton.VecEnv(2, **options)
    singles = [lepton.LeptonEnv(**options) for _ in range(2)]
    obs, info = batch.reset(seed=[4, 9])
    assert obs.shape == (2, 4, lepton.FEATURES + len(lepton.EDGE_FEATURE_NAMES))
    for i, env in enumerate(singles):
        single_obs, _ = env.reset(seed=[4, 9][i])
        assert np.array_equal(obs[i], single_obs)
    for _ in range(400):
        actions = np.array([cloud_first(o, m) for o, m in zip(obs, info["action_mask"])])
        obs, rewards, terminated, _, info = batch.step(actions)
        for i, env in enumerate(singles):
            single_obs, reward, done, _, _ = env.step(int(actions[i]))
            assert reward == rewards[i] and done == terminated[i]
            if done:
                single_obs, _ = env.reset(seed=[4, 9][i] + 2)
            assert np.array_equal(obs[i], single_obs)


@pytest.mark.parametrize("reward", ["gpus", "frag"])
def test_rewards_without_gpus_are_refused(reward):
    with pytest.raises(ValueError, match=f"reward {reward} is not paid in edge mode; it pays seed, cost"):
        gym.make("lepton/Edge-v0", reward=reward)


def test_edge_options_are_checked():
    with pytest.raises(ValueError, match="sites"):
        gym.make("lepton/Edge-v0", sites=1)
    with pytest.raises(ValueError, match='mode "edge" does not take option "vms"'):
        gym.make("lepton/Edge-v0", vms=10)
