"""Lepton for Python: Gymnasium environments on Lepton's scheduler.

Importing ``lepton`` registers the environments with Gymnasium:

- ``LeptonEnv`` (the article's name) and ``lepton/Fill-v0``: the FGD
  paper's fill experiment on the Alibaba GPU trace; each step places one
  task on one of up to ``max_candidates`` candidate nodes.
- ``lepton/Timed-v0``: the trace replayed in virtual time; tasks arrive and
  end, and wait when nothing fits.
- ``lepton/Datacenter-v0``, ``lepton/DatacenterTrace-v0``,
  ``lepton/Hybrid-v0``: the article's scenarios (``lepton demo``): a fleet
  Lepton's strategy scales while the agent places each task; the reward
  ``cost`` pays minus the run's cost and a penalty per SLO violation.
- ``lepton/Edge-v0``: the edge scenario: each step chooses the site (edge
  or cloud) that runs a task from an edge site's user; rows carry the
  latency and site columns ``lepton.EDGE_FEATURE_NAMES`` after the usual
  ones.

>>> import gymnasium as gym, lepton
>>> env = gym.make("LeptonEnv")
>>> obs, info = env.reset(seed=1)
>>> obs.shape == env.observation_space.shape
True

Options (keywords to ``gym.make``): ``max_candidates``, ``reward``
(``"gpus"``, ``"frag"``, the article's ``"seed"``: +1 per task placed, -1
per task dropped or timed out, or the fleets' ``"cost"``), and each mode's
own (``lepton.MODES``): ``trace`` (a shipped pod list: one of
``lepton.TRACES``), ``node_list`` and ``pod_list`` (openb CSV files instead
of the shipped ones), ``tune`` (the fill's inflation, 1.3); the fleets'
``vms``, ``tasks``, ``hours`` and ``slo_penalty`` (USD, 1.0); the edge's
``sites``, ``nodes_per_site``, ``cloud_nodes``, ``tasks``, ``hours`` and
``slo_penalty``.

Also: :class:`VecEnv` (many environments stepped in Rust with the GIL
released), :class:`Scheduler` (Lepton's scheduler itself), :func:`fill`
(``lepton fill``'s runs), :func:`demo` (``lepton demo``'s scenarios) and
:func:`policies`.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Union

from gymnasium.envs.registration import register, registry

from . import _lepton
from ._envs import LeptonEnv, VecEnv
from ._scheduler import Scheduler

__all__ = [
    "EDGE_FEATURE_BOUNDS",
    "EDGE_FEATURE_NAMES",
    "FEATURES",
    "FEATURE_BOUNDS",
    "FEATURE_NAMES",
    "MODES",
    "TRACES",
    "LeptonEnv",
    "Scheduler",
    "VecEnv",
    "demo",
    "fill",
    "policies",
]

#: Numbers in each candidate's row of an observation.
FEATURES: int = _lepton.FEATURES
#: What each of them is, in order.
FEATURE_NAMES: tuple = tuple(_lepton.FEATURE_NAMES)
#: Each one's least and greatest value, in order.
FEATURE_BOUNDS: tuple = tuple(_lepton.FEATURE_BOUNDS)
#: The edge mode's columns after the features, in order.
EDGE_FEATURE_NAMES: tuple = tuple(_lepton.EDGE_FEATURE_NAMES)
#: Each one's least and greatest value, in order.
EDGE_FEATURE_BOUNDS: tuple = tuple(_lepton.EDGE_FEATURE_BOUNDS)
#: The pod lists shipped with Lepton, by the name ``trace=`` takes.
TRACES: tuple = tuple(_lepton.TRACES)
#: Each environment mode and the options it takes.
MODES: dict = {mode: tuple(options) for mode, options in _lepton.MODES}

PathLike = Union[str, "os.PathLike[str]"]


def policies() -> Dict[str, str]:
    """Every placement policy's name and one-line description, as
    ``lepton policies`` lists them."""
    return dict(_lepton.policies())


def fill(
    policy: str = "fgd",
    seeds: Sequence[int] = (42,),
    *,
    trace: str = "default",
    node_list: Optional[PathLike] = None,
    pod_list: Optional[PathLike] = None,
    tune: float = 1.3,
    curve: bool = False,
) -> List[dict]:
    """The FGD paper's fill experiment (``lepton fill``): one run of
    ``policy`` per seed; each run's result as a dict (``alloc_pct_at_100``,
    ``frag_pct_at_100``, ``tasks_arrived``, ``tasks_placed``, ...; the
    allocation curve only when ``curve``).

    Raises ``ValueError`` for an unknown policy or trace, or a malformed
    file, and ``OSError`` for a file that cannot be read."""
    text = _lepton.fill(
        policy,
        [int(seed) for seed in seeds],
        trace,
        _path(node_list),
        _path(pod_list),
        float(tune),
        bool(curve),
    )
    return json.loads(text)


def demo(
    scenario: str = "all",
    *,
    seed: Optional[int] = None,
    policy: str = "lifetime",
    vms: Optional[int] = None,
    tasks: Optional[int] = None,
    hours: Optional[int] = None,
) -> List[dict]:
    """The article's scenarios (``lepton demo``): Lepton against the
    baselines a user would otherwise run, in the data center
    (``"datacenter"``), on Alibaba's DLRM trace (``"datacenter-trace"``),
    at the edge (``"edge"``) and in a hybrid cloud (``"hybrid"``), or
    ``"all"``; one dict per scenario, as ``lepton demo -o json`` gives
    them under ``"scenarios"`` for the same settings (``seed``, Lepton's
    ``policy`` in the data centers, the data center's ``vms``, ``tasks``
    and ``hours`` of arrivals).

    Raises ``ValueError`` for an unknown scenario or policy, a setting out
    of range, or one the scenario does not read."""
    return json.loads(_lepton.demo(scenario, seed, policy, vms, tasks, hours))


def _path(path: Optional[PathLike]) -> Optional[str]:
    return None if path is None else os.fspath(path)


def _register() -> None:
    entry = "lepton._envs:LeptonEnv"
    ids = {
        "LeptonEnv": {"mode": "fill"},
        "lepton/Fill-v0": {"mode": "fill"},
        "lepton/Timed-v0": {"mode": "timed"},
        "lepton/Datacenter-v0": {"mode": "datacenter"},
        "lepton/DatacenterTrace-v0": {"mode": "datacenter-trace"},
        "lepton/Hybrid-v0": {"mode": "hybrid"},
        "lepton/Edge-v0": {"mode": "edge"},
    }
    for env_id, kwargs in ids.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry, kwargs=kwargs)


_register()
