"""The Gymnasium classes around the Rust environments."""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence, Union

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from . import _lepton


def _options(options: dict) -> dict:
    """The mode's options, file names as strings."""
    return {
        name: os.fspath(value) if name in ("node_list", "pod_list") and value is not None else value
        for name, value in options.items()
    }


def _columns(columns: int) -> tuple:
    """The names and bounds of a row of ``columns`` numbers: the features,
    then (edge mode) the edge columns."""
    names = tuple(_lepton.FEATURE_NAMES) + tuple(_lepton.EDGE_FEATURE_NAMES)
    bounds = tuple(_lepton.FEATURE_BOUNDS) + tuple(_lepton.EDGE_FEATURE_BOUNDS)
    return names[:columns], bounds[:columns]


def _spaces(width: int, columns: int) -> tuple:
    """A decision's observation space (``width`` rows of ``columns``, each
    within its bounds) and action space."""
    low, high = np.array(_columns(columns)[1], dtype=np.float32).T
    observation = spaces.Box(
        low=np.tile(low, (width, 1)), high=np.tile(high, (width, 1)), dtype=np.float32
    )
    return observation, spaces.Discrete(width)


def _draw_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**63 - 1))


class LeptonEnv(gym.Env):
    """One scheduling episode per reset: place each arriving task on one of
    its candidate nodes.

    Modes (``lepton.MODES``) and their options: ``fill`` (``trace``,
    ``node_list``, ``pod_list``, ``tune``), ``timed`` (``trace``,
    ``node_list``, ``pod_list``), and the scenarios' fleets, where Lepton's
    strategy scales the fleet around the agent's placements and the default
    reward ``cost`` pays minus the run's cost (USD) and ``slo_penalty`` per
    late start or avoidable deadline miss at the end: ``datacenter``
    (``vms``, ``tasks``, ``hours``, ``slo_penalty``), ``datacenter-trace``
    (``slo_penalty``), ``hybrid`` (``tasks``, ``hours``, ``slo_penalty``);
    and ``edge`` (``sites``, ``nodes_per_site``, ``cloud_nodes``,
    ``tasks``, ``hours``, ``slo_penalty``), where each decision is which
    site runs a task from an edge site's user: one candidate per site (its
    best fit; the cloud counts as one), the reward ``cost`` paying minus
    the cloud's bill and ``slo_penalty`` per task run farther than its
    latency objective (``gpus`` and ``frag`` are refused: no GPUs there).
    An option the mode does not take is refused.

    ``max_candidates`` (the observation's rows, the actions) defaults to
    64, and in edge mode to every site and the cloud (``sites + 1``).

    Observation: ``(max_candidates, FEATURES)`` float32, one row per
    candidate node (``lepton.FEATURE_NAMES``; in edge mode
    ``FEATURES + len(EDGE_FEATURE_NAMES)`` columns, the edge ones last:
    ``env.feature_names`` names them), zero rows past the candidates. Action: the index of a candidate; ``info["action_mask"]``
    (and :meth:`action_masks`) marks the valid ones. An action naming no
    candidate raises ``ValueError``. The episode terminates when the fill
    reaches 100 % of the GPUs requested (fill mode) or the replay ends
    (timed mode, scenarios); it is never truncated. The terminal step's
    info holds the episode's ``summary`` (and a scenario's run ``report``:
    cost, utilization, SLO violations, latencies, ...).
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        mode: str = "fill",
        max_candidates: Optional[int] = None,
        reward: Optional[str] = None,
        render_mode: Optional[str] = None,
        **options: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode {render_mode!r} is not supported; expected None or 'ansi'"
            )
        self._env = _lepton.Env(
            mode, _candidates(max_candidates), reward, **_options(options)
        )
        self.mode = mode
        self.render_mode = render_mode
        self.observation_space, self.action_space = _spaces(
            self._env.width, self._env.columns
        )
        #: What each number of a candidate's row is, in order.
        self.feature_names = _columns(self._env.columns)[0]
        self._mask = np.zeros(self._env.width, dtype=bool)

    def reset(
        self, *, seed: Optional[int] = None, options: Optional[dict] = None
    ) -> tuple:
        if seed is not None:
            _seed(seed)
        super().reset(seed=seed)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; none are taken")
        episode_seed = seed if seed is not None else _draw_seed(self.np_random)
        obs, self._mask = self._env.reset(int(episode_seed))
        return obs, {"action_mask": self._mask, "episode_seed": int(episode_seed)}

    def step(self, action: Any) -> tuple:
        obs, self._mask, reward, done, node, dropped = self._env.step(_action(action))
        info = {"action_mask": self._mask, "node": node, "dropped": dropped}
        if done:
            info["summary"] = self.summary()
            report = self._env.report()
            if report is not None:
                info["report"] = json.loads(report)
        return obs, float(reward), bool(done), False, info

    def action_masks(self) -> np.ndarray:
        """The valid actions of the waiting decision (MaskablePPO's hook)."""
        return self._mask

    def fgd_action(self) -> Optional[int]:
        """The action FGD (the published state of the art) would take."""
        return self._env.fgd_action()

    def summary(self) -> dict:
        """The episode's figures so far: ``alloc_pct``, ``frag_pct``,
        ``tasks_arrived``, ``tasks_placed``, ``tasks_dropped``,
        ``deadline_misses``, ``utility``."""
        return json.loads(self._env.summary())

    def render(self) -> Optional[str]:
        if self.render_mode == "ansi":
            s = self.summary()
            return (
                f"alloc {s['alloc_pct']:.2f}% frag {s['frag_pct']:.2f}% "
                f"placed {s['tasks_placed']}/{s['tasks_arrived']} "
                f"deadline misses {s['deadline_misses']} utility {s['utility']:.4f}"
            )
        return None


class VecEnv(VectorEnv):
    """``num_envs`` Lepton environments stepped together in Rust, on
    ``threads`` threads with the GIL released. Options as
    :class:`LeptonEnv`.

    An environment whose episode ends starts its next one in the same step
    (``autoreset_mode`` SAME_STEP: the observation returned is the new
    episode's first), seeded ``num_envs`` after its previous seed.
    ``info["action_mask"]`` is ``(num_envs, max_candidates)``.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int,
        mode: str = "fill",
        max_candidates: Optional[int] = None,
        reward: Optional[str] = None,
        threads: Optional[int] = None,
        **options: Any,
    ) -> None:
        self._env = _lepton.VecEnv(
            _count("num_envs", num_envs),
            mode,
            _candidates(max_candidates),
            reward,
            None if threads is None else _count("threads", threads),
            **_options(options),
        )
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces(
            self._env.width, self._env.columns
        )
        #: What each number of a candidate's row is, in order.
        self.feature_names = _columns(self._env.columns)[0]
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._mask = np.zeros((num_envs, self._env.width), dtype=bool)

    def reset(
        self,
        *,
        seed: Optional[Union[int, Sequence[int]]] = None,
        options: Optional[dict] = None,
    ) -> tuple:
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; none are taken")
        if seed is None:
            super().reset()
            seeds = [_draw_seed(self.np_random) for _ in range(self.num_envs)]
        elif isinstance(seed, (int, np.integer)):
            first = _seed(seed)
            seeds = [_seed(first + i) for i in range(self.num_envs)]
            super().reset(seed=first)
        else:
            seeds = [_seed(s) for s in seed]
        obs, self._mask = self._env.reset(seeds)
        return obs, {"action_mask": self._mask}

    def step(self, actions: Any) -> tuple:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"actions must be {self.num_envs} integers, got shape {actions.shape} "
                f"of {actions.dtype}"
            )
        obs, self._mask, rewards, terminated = self._env.step(
            np.ascontiguousarray(actions, dtype=np.int64)
        )
        truncated = np.zeros(self.num_envs, dtype=bool)
        return obs, rewards, terminated, truncated, {"action_mask": self._mask}

    def action_masks(self) -> np.ndarray:
        return self._mask

    def fgd_actions(self) -> np.ndarray:
        """FGD's choice in every environment."""
        return self._env.fgd_actions()


def _count(name: str, value: Any) -> int:
    """A positive whole number, or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    return int(value)


def _candidates(value: Any) -> Optional[int]:
    """``max_candidates``: None (the mode's default) or a positive whole
    number, or ValueError."""
    return None if value is None else _count("max_candidates", value)


def _seed(seed: Any) -> int:
    """A seed (a whole number from 0 to 2**64 - 1), or ValueError naming it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed {seed!r} is not a whole number")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed {seed} is out of range: 0 to 2**64 - 1")
    return int(seed)


def _action(action: Any) -> int:
    """An action as an int, or ValueError naming it."""
    if isinstance(action, np.ndarray) and action.shape == ():
        action = action.item()
    if isinstance(action, bool) or not isinstance(action, (int, np.integer)):
        raise ValueError(f"action {action!r} is not a whole number")
    if not -(2**63) <= action < 2**63:
        raise ValueError(f"action {action} is infeasible: far outside the candidates")
    return int(action)
