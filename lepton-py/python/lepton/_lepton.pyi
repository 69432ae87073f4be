"""Type stubs of the Rust extension ``lepton._lepton`` (see ``lepton``)."""

from os import PathLike
from typing import Any, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, PathLike]

FEATURES: int
FEATURE_NAMES: List[str]
FEATURE_BOUNDS: List[Tuple[float, float]]
EDGE_FEATURE_NAMES: List[str]
EDGE_FEATURE_BOUNDS: List[Tuple[float, float]]
TRACES: List[str]
MODES: List[Tuple[str, List[str]]]

def policies() -> List[Tuple[str, str]]:
    """Every policy's name and one-line description."""

def fill(
    policy: str,
    seeds: List[int],
    trace: str = "default",
    node_list: Optional[_Path] = None,
    pod_list: Optional[_Path] = None,
    tune: float = 1.3,
    curve: bool = False,
) -> str:
    """The fill experiment's runs, as a JSON list."""

def rust_episode(
    seed: int,
    rule: str,
    trace: str = "default",
    node_list: Optional[_Path] = None,
    pod_list: Optional[_Path] = None,
    max_candidates: int = 64,
    reward: str = "gpus",
    tune: float = 1.3,
) -> List[float]:
    """One fill episode wholly in Rust, each decision by ``rule``
    (``"fgd"``, ``"first"``, ``"last"``, ``"random"``): its step rewards."""

class Env:
    """One environment in ``mode`` (see ``MODES``) with the mode's options."""

    def __init__(
        self,
        mode: str = "fill",
        max_candidates: Optional[int] = None,
        reward: Optional[str] = None,
        **options: Any,
    ) -> None: ...
    @property
    def width(self) -> int: ...
    @property
    def columns(self) -> int: ...
    def reset(self, seed: int) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]: ...
    def step(
        self, action: int
    ) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], float, bool, int, int]:
        """Observation, mask, reward, done, node, tasks dropped."""
    def fgd_action(self) -> Optional[int]: ...
    def summary(self) -> str: ...
    def report(self) -> Optional[str]: ...

class VecEnv:
    """``n`` environments stepped together in Rust."""

    def __init__(
        self,
        n: int,
        mode: str = "fill",
        max_candidates: Optional[int] = None,
        reward: Optional[str] = None,
        threads: Optional[int] = None,
        **options: Any,
    ) -> None: ...
    def __len__(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def columns(self) -> int: ...
    def reset(
        self, seeds: List[int]
    ) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]: ...
    def step(
        self, actions: npt.NDArray[np.int64]
    ) -> Tuple[
        npt.NDArray[np.float32],
        npt.NDArray[np.bool_],
        npt.NDArray[np.float64],
        npt.NDArray[np.bool_],
    ]:
        """Observations, masks, rewards, episodes ended."""
    def fgd_actions(self) -> npt.NDArray[np.int64]: ...

class Scheduler:
    """Lepton's scheduler; specs as JSON (see ``lepton.Scheduler``)."""

    def __init__(self, policy: str = "bestfit") -> None: ...
    @property
    def policy(self) -> str: ...
    def set_policy(self, name: str) -> None: ...
    def add_node(self, node: str) -> None: ...
    def remove_node(self, node: int) -> None: ...
    def cordon(self, node: int) -> None: ...
    def uncordon(self, node: int) -> None: ...
    def submit(self, task: str) -> int: ...
    def schedule(self) -> str: ...
    def complete(self, task: int) -> None: ...
    def fail(self, task: int, reason: str) -> None: ...
    def cancel(self, task: int) -> None: ...
    def explain(self, task: int) -> str: ...
    def report(self) -> str: ...

def demo(
    scenario: str = "all",
    seed: Optional[int] = None,
    policy: str = "lifetime",
    vms: Optional[int] = None,
    tasks: Optional[int] = None,
    hours: Optional[int] = None,
) -> str:
    """The scenarios' comparisons, as a JSON list."""
