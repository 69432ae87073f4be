"""The batched environment: the same as that many single environments,
whatever the threads, and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

import lepton


def masked_actions(rng, masks):
    return np.array([rng.choice(np.flatnonzero(mask)) for mask in masks], dtype=np.int64)


def test_the_batch_equals_as_many_single_envs(small_trace):
    nodes, pods = small_trace
    options = dict(node_list=nodes, pod_list=pods, max_candidates=8)
    n, seeds = 3, [10, 11, 12]
    batch = lepton.VecEnv(n, **options)
    singles = [lepton.LeptonEnv(**options) for _ in range(n)]
    obs, info = batch.reset(seed=seeds)
    episode_seeds = list(seeds)
    for i, env in enumerate(singles):
        single_obs, single_info = env.reset(seed=seeds[i])
        assert np.array_equal(obs[i], single_obs)
        assert np.array_equal(info["action_mask"][i], single_info["action_mask"])
    rng = np.random.default_rng(3)
    ended = np.zeros(n, dtype=int)
    while ended.min() < 2:
        actions = masked_actions(rng, info["action_mask"])
        obs, rewards, terminated, truncated, info = batch.step(actions)
        assert not truncated.any()
        for i, env in enumerate(singles):
            single_obs, reward, done, _, single_info = env.step(int(actions[i]))
            assert reward == rewards[i]
            assert done == terminated[i]
            if done:
                # Same-step autoreset: the batch shows the next episode's
                # first observation, seeded n further on.
                ended[i] += 1
                episode_seeds[i] += n
                single_obs, single_info = env.reset(seed=episode_seeds[i])
            assert np.array_equal(obs[i], single_obs)
            assert np.array_equal(info["action_mask"][i], single_info["action_mask"])


def run(batch, steps, seed):
    obs, info = batch.reset(seed=seed)
    rng = np.random.default_rng(seed)
    trail = []
    for _ in range(steps):
        obs, rewards, terminated, _, info = batch.step(masked_actions(rng, info["action_mask"]))
        trail.append((obs.copy(), rewards.copy(), terminated.copy()))
    return trail


def test_threads_do_not_change_the_results(small_trace):
    nodes, pods = small_trace
    options = dict(node_list=nodes, pod_list=pods, max_candidates=8)
    one = run(lepton.VecEnv(5, threads=1, **options), 300, 4)
    three = run(lepton.VecEnv(5, threads=3, **options), 300, 4)
    assert all(
        np.array_equal(a, b) for x, y in zip(one, three) for a, b in zip(x, y)
    )


def test_fgd_actions_are_each_envs_fgd_choice(small_trace):
    nodes, pods = small_trace
    batch = lepton.VecEnv(2, node_list=nodes, pod_list=pods)
    batch.reset(seed=[1, 2])
    single = lepton.LeptonEnv(node_list=nodes, pod_list=pods)
    single.reset(seed=2)
    assert batch.fgd_actions()[1] == single.fgd_action()


def test_bad_batches_and_actions_raise_clear_errors(small_trace):
    nodes, pods = small_trace
    with pytest.raises(ValueError, match="num_envs"):
        lepton.VecEnv(0)
    with pytest.raises(ValueError, match="threads"):
        lepton.VecEnv(2, threads=0)
    with pytest.raises(ValueError, match="n = 5000 environments is out of range"):
        lepton.VecEnv(5000, node_list=nodes, pod_list=pods)
    batch = lepton.VecEnv(2, node_list=nodes, pod_list=pods, max_candidates=4)
    with pytest.raises(ValueError, match="3 seeds for 2 environments"):
        batch.reset(seed=[1, 2, 3])
    obs, info = batch.reset(seed=1)
    with pytest.raises(ValueError, match="2 integers"):
        batch.step([0])
    with pytest.raises(ValueError, match="2 integers"):
        batch.step([0.5, 1.0])
    bad = np.array([0, 4])
    with pytest.raises(ValueError, match="environment 1: action 4 is infeasible"):
        batch.step(bad)
    # Nothing stepped: the same decisions still wait.
    obs_after, *_ = batch.step(np.array([0, 0]))
    again = lepton.VecEnv(2, node_list=nodes, pod_list=pods, max_candidates=4)
    again.reset(seed=1)
    expected, *_ = again.step(np.array([0, 0]))
    assert np.array_equal(obs_after, expected)


def test_a_batch_too_large_to_observe_is_refused():
    with pytest.raises(ValueError, match="candidate rows"):
        lepton.VecEnv(4096, max_candidates=1024)


@pytest.mark.parametrize("seed", [-1, [0, -5], True, [1.5, 2]])
def test_bad_batch_seeds_raise_value_errors(seed, small_trace):
    nodes, pods = small_trace
    batch = lepton.VecEnv(2, node_list=nodes, pod_list=pods)
    with pytest.raises(ValueError):
        batch.reset(seed=seed)
