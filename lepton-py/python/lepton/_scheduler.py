"""Lepton's scheduler from Python."""

from __future__ import annotations

import json
from typing import Any, Dict, List


class Scheduler:
    """Lepton's scheduler: add nodes, submit tasks, run a cycle, get the
    assignments; the policy (any name :func:`lepton.policies` lists, the
    learned ``"drl"`` among them) can change between cycles.

    Nodes and tasks are dicts in the format of Lepton's API and workload
    files::

        s = lepton.Scheduler(policy="fgd")
        s.add_node({"id": 1, "capacity": {"cpu_milli": 32000, "memory_mib": 131072},
                    "gpus": {"model": "V100M32", "count": 4}})
        s.submit({"id": 7, "request": {"cpu_milli": 4000, "memory_mib": 8192},
                  "gpu": {"count": 1, "milli_per_gpu": 500}})
        s.schedule()   # [{"task": 7, "attempt": 1, "node": 1, "gpus": [0], "evicts": []}]
        s.complete(7)

    A bad spec, an unknown id or a change a task's state forbids raises
    ``ValueError`` with the scheduler's message.
    """

    def __init__(self, policy: str = "bestfit") -> None:
        from . import _lepton

        self._scheduler = _lepton.Scheduler(policy)

    @property
    def policy(self) -> str:
        """The policy's name."""
        return self._scheduler.policy

    def set_policy(self, name: str) -> None:
        """Places with the policy ``name`` from the next cycle on."""
        self._scheduler.set_policy(name)

    def add_node(self, node: Dict[str, Any]) -> None:
        """Adds a node: ``id``, ``capacity`` (``cpu_milli``,
        ``memory_mib``), and optionally ``gpus`` (``model``, ``count``),
        ``labels``, ``taints``, ``zone``, ``price_per_hour``, ``name``."""
        self._scheduler.add_node(_spec(node, "node"))

    def remove_node(self, node: int) -> None:
        """Removes a node; its tasks go back to the queue."""
        self._scheduler.remove_node(node)

    def cordon(self, node: int) -> None:
        """Takes no new tasks on ``node``."""
        self._scheduler.cordon(node)

    def uncordon(self, node: int) -> None:
        """Takes tasks on ``node`` again."""
        self._scheduler.uncordon(node)

    def submit(self, task: Dict[str, Any]) -> int:
        """Queues a task: ``id``, ``request`` (``cpu_milli``,
        ``memory_mib``), and optionally ``gpu`` (``count``,
        ``milli_per_gpu``), ``priority``, ``qos``, ``kind``, ``timeout_ms``,
        ``constraints``, ``name``; returns its id."""
        return self._scheduler.submit(_spec(task, "task"))

    def schedule(self) -> List[dict]:
        """One scheduling cycle: each placement as ``{"task", "attempt",
        "node", "gpus", "evicts"}`` (stop the runs in ``evicts`` first)."""
        return json.loads(self._scheduler.schedule())

    def complete(self, task: int) -> None:
        """The running task ended well; its resources are free."""
        self._scheduler.complete(task)

    def fail(self, task: int, reason: str) -> None:
        """The running task failed; it is retried within its budget."""
        self._scheduler.fail(task, reason)

    def cancel(self, task: int) -> None:
        """Cancels a task that has not ended."""
        self._scheduler.cancel(task)

    def explain(self, task: int) -> str:
        """Where the task is and, if it waits, why: ``"task 7 waits: 0/2
        nodes are available: 2 not enough free cpu_milli"``."""
        return self._scheduler.explain(task)

    def report(self) -> dict:
        """Counts per task state, nodes in use and utilization."""
        return json.loads(self._scheduler.report())


def _spec(value: Any, what: str) -> str:
    if not isinstance(value, dict):
        raise ValueError(f"a {what} is a dict, got {type(value).__name__}")
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid {what}: {err}") from None
