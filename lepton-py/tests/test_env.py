"""The Gymnasium environments: Gymnasium's own checker, the article's
workflow, agreement with Lepton's fill experiment and command line,
determinism, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import lepton

IDS = [
    "LeptonEnv",
    "lepton/Fill-v0",
    "lepton/Timed-v0",
    "lepton/Datacenter-v0",
    "lepton/DatacenterTrace-v0",
    "lepton/Hybrid-v0",
    "lepton/Edge-v0",
]


def random_masked(rng: np.random.Generator, mask: np.ndarray) -> int:
    return int(rng.choice(np.flatnonzero(mask)))


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_check_env_passes(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_the_articles_workflow_runs_an_episode_to_its_end():
    env = gym.make("LeptonEnv")
    assert env.observation_space.shape[0] == 64
    assert env.observation_space.shape == (64, lepton.FEATURES)
    assert env.action_space.n == 64
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    rng = np.random.default_rng(0)
    steps, total = 0, 0.0
    terminated = truncated = False
    while not (terminated or truncated):
        mask = info["action_mask"]
        assert mask.dtype == bool and mask.any()
        # Rows past the candidates are zero.
        assert not obs[~mask].any()
        assert env.observation_space.contains(obs)
        obs, reward, terminated, truncated, info = env.step(random_masked(rng, mask))
        total += reward
        steps += 1
    summary = info["summary"]
    assert summary["tasks_placed"] == steps > 5000
    # Reward "gpus": the return is the GPUs allocated, which the summary
    # reads as a share of the trace's 6,212 GPUs.
    assert total == pytest.approx(summary["alloc_pct"] * 6212 / 100, rel=1e-9)
    assert not truncated


def fgd_episode(env, seed):
    obs, info = env.reset(seed=seed)
    rewards = []
    terminated = False
    while not terminated:
        obs, reward, terminated, _, info = env.step(env.unwrapped.fgd_action())
        rewards.append(reward)
    return rewards, info["summary"]


def test_fgd_through_the_python_env_gives_fgds_fill_result(lepton_cli):
    env = gym.make("lepton/Fill-v0")
    _, summary = fgd_episode(env, 7)
    [run] = lepton.fill("fgd", [7])
    assert summary["alloc_pct"] == run["alloc_pct_at_100"]
    assert summary["frag_pct"] == pytest.approx(run["frag_pct_at_100"], abs=1e-9)
    # The command line, another process, gives the same numbers.
    out = subprocess.run(
        [str(lepton_cli), "fill", "--policy", "fgd", "--seed", "7", "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    [cli] = json.loads(out)["results"]
    assert cli["alloc_pct_at_100_per_seed"] == [summary["alloc_pct"]]


def test_fill_results_match_the_command_lines_json(lepton_cli):
    runs = lepton.fill("bestfit", [42, 43], trace="multigpu20")
    out = subprocess.run(
        [
            str(lepton_cli),
            "fill",
            "--policy",
            "bestfit",
            "--seed",
            "42-43",
            "--pod-list",
            str(lepton_cli.parents[2] / "data/alibaba-gpu-2023/openb_pod_list_multigpu20.csv"),
            "-o",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    [cli] = json.loads(out)["results"]
    assert [run["alloc_pct_at_100"] for run in runs] == cli["alloc_pct_at_100_per_seed"]
    assert [run["seed"] for run in runs] == [42, 43]
    assert all(run["curve"] == [] for run in runs)


def episode(env, seed, actions_seed, steps):
    rng = np.random.default_rng(actions_seed)
    obs, info = env.reset(seed=seed)
    trail = [obs.copy()]
    for _ in range(steps):
        obs, reward, terminated, _, info = env.step(random_masked(rng, info["action_mask"]))
        trail += [obs.copy(), reward]
        if terminated:
            break
    return trail


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("env_id", ["lepton/Fill-v0", "lepton/Timed-v0"])
def test_an_episode_is_determined_by_its_seed(env_id, small_trace):
    nodes, pods = small_trace
    first = gym.make(env_id, node_list=nodes, pod_list=pods)
    second = gym.make(env_id, node_list=nodes, pod_list=pods)
    a = episode(first, 5, 1, 200)
    assert same(a, episode(second, 5, 1, 200))
    # The fill's seed shuffles the arrivals; the timed replay keeps the
    # trace's order (its seed draws only node failures, none by default).
    assert same(a, episode(second, 6, 1, 200)) == (env_id == "lepton/Timed-v0")
    # The agent's choices matter in either.
    assert not same(a, episode(second, 5, 2, 200))


def test_unseeded_resets_follow_the_first_seed():
    env = gym.make("LeptonEnv").unwrapped
    env.reset(seed=11)
    _, first = env.reset()
    env.reset(seed=11)
    _, again = env.reset()
    assert first["episode_seed"] == again["episode_seed"]


def test_every_masked_action_is_feasible_and_no_other(small_trace):
    nodes, pods = small_trace
    env = lepton.LeptonEnv(node_list=nodes, pod_list=pods, max_candidates=8)
    _, info = env.reset(seed=1)
    mask = info["action_mask"]
    for action in np.flatnonzero(~mask):
        with pytest.raises(ValueError, match=f"action {action} is infeasible"):
            env.step(int(action))
    for action in np.flatnonzero(mask):
        env.reset(seed=1)
        env.step(int(action))


@pytest.mark.parametrize("action", [-1, 64, 10**30, 1.5, True, "3", None])
def test_a_bad_action_raises_a_value_error_naming_it(action):
    env = lepton.LeptonEnv()
    env.reset(seed=2)
    with pytest.raises(ValueError, match=str(action if action != 10**30 else "10000")):
        env.step(action)
    # The decision still waits for a good action.
    env.step(env.fgd_action())


def test_a_step_without_an_episode_raises():
    env = lepton.LeptonEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    with pytest.raises(gym.error.ResetNeeded):
        gym.make("LeptonEnv").step(0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"trace": "nope"}, ValueError, "unknown trace \"nope\".*default"),
        ({"reward": "cash"}, ValueError, "cash"),
        ({"mode": "batch"}, ValueError, "unknown mode \"batch\""),
        ({"max_candidates": 0}, ValueError, "max_candidates"),
        ({"tune": 0.5}, ValueError, "tune"),
        ({"pod_list": "/nonexistent/pods.csv"}, OSError, "/nonexistent/pods.csv"),
        ({"render_mode": "human"}, ValueError, "human"),
    ],
)
def test_bad_options_raise_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        gym.make("LeptonEnv", **kwargs)


def test_a_malformed_file_names_its_line(tmp_path):
    pods = tmp_path / "pods.csv"
    pods.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,1024,one,0\n")
    with pytest.raises(ValueError, match='pods.csv:2: column num_gpu: "one"'):
        lepton.LeptonEnv(pod_list=pods)


def test_an_unknown_id_is_refused():
    with pytest.raises(gym.error.Error):
        gym.make("lepton/Nope-v0")


def test_unknown_reset_options_are_refused():
    env = lepton.LeptonEnv()
    with pytest.raises(ValueError, match="surprise"):
        env.reset(seed=1, options={"surprise": 1})


def test_the_rust_reference_draws_random_candidates_per_seed(small_trace):
    nodes, pods = small_trace
    options = dict(node_list=nodes, pod_list=pods, max_candidates=16)
    first = lepton._lepton.rust_episode(9, "first", **options)
    random = lepton._lepton.rust_episode(9, "random", **options)
    assert random == lepton._lepton.rust_episode(9, "random", **options)
    assert random != first and len(random) > 50
    with pytest.raises(ValueError, match="unknown rule"):
        lepton._lepton.rust_episode(9, "best", **options)


@pytest.mark.parametrize("rule", ["fgd", "first", "last"])
@pytest.mark.parametrize("reward", ["gpus", "frag", "seed"])
def test_the_python_env_reproduces_the_rust_envs_episode(rule, reward, small_trace):
    nodes, pods = small_trace
    options = dict(node_list=nodes, pod_list=pods, max_candidates=16, reward=reward)
    expected = lepton._lepton.rust_episode(9, rule, **options)
    env = gym.make("lepton/Fill-v0", **options)
    _, info = env.reset(seed=9)
    rewards, terminated = [], False
    while not terminated:
        valid = np.flatnonzero(info["action_mask"])
        action = {"fgd": env.unwrapped.fgd_action(), "first": valid[0], "last": valid[-1]}[rule]
        _, reward_, terminated, _, info = env.step(action)
        rewards.append(reward_)
    assert len(rewards) > 50
    assert rewards == expected


@pytest.mark.parametrize("seed, message", [(-1, "seed -1 is out of range"), (2**64, "out of range"), (1.5, "not a whole number"), (True, "not a whole number")])
def test_a_bad_seed_raises_a_value_error_naming_it(seed, message):
    with pytest.raises(ValueError, match=message):
        lepton.LeptonEnv().reset(seed=seed)


@pytest.mark.parametrize("width", [0, 1025, 10**12])
def test_a_huge_or_empty_observation_is_refused(width):
    with pytest.raises(ValueError, match="max_candidates"):
        lepton.LeptonEnv(max_candidates=width)


def test_a_pod_list_nothing_fits_says_so(tmp_path):
    pods = tmp_path / "pods.csv"
    pods.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000000,1024,1,1000\n")
    env = lepton.LeptonEnv(pod_list=pods)
    with pytest.raises(ValueError, match="no task of the trace fits any node"):
        env.reset(seed=1)


def test_tune_is_refused_where_it_is_not_read():
    with pytest.raises(ValueError, match='mode "timed" does not take option "tune"'):
        gym.make("lepton/Timed-v0", tune=1.5)
    with pytest.raises(ValueError, match='mode "datacenter" does not take option "trace"'):
        gym.make("lepton/Datacenter-v0", trace="default")


def test_fill_refuses_more_seeds_than_the_command_line():
    with pytest.raises(ValueError, match="10001 seeds: at most 10000 runs"):
        lepton.fill("fgd", range(10_001))
