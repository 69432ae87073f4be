"""Lepton's scheduler from Python: placements, swapping policies, the
learned policy, why a task waits, and clear errors."""

from __future__ import annotations

import pytest

import lepton


def node(id, cpu, memory, gpus=0, model="V100M32"):
    spec = {"id": id, "capacity": {"cpu_milli": cpu, "memory_mib": memory}}
    if gpus:
        spec["gpus"] = {"model": model, "count": gpus}
    return spec


def task(id, cpu, memory, gpus=0, milli=1000, **extra):
    spec = {"id": id, "request": {"cpu_milli": cpu, "memory_mib": memory}, **extra}
    if gpus:
        spec["gpu"] = {"count": gpus, "milli_per_gpu": milli}
    return spec


def test_the_readme_example_places_and_completes():
    s = lepton.Scheduler("bestfit")
    s.add_node(node(1, 32_000, 131_072, gpus=4))
    s.add_node(node(2, 8_000, 16_384))
    assert s.submit(task(1, 4_000, 8_192, gpus=1, milli=500)) == 1
    assert s.submit(task(2, 2_000, 4_096)) == 2
    placed = {a["task"]: a for a in s.schedule()}
    assert placed[1]["node"] == 1 and len(placed[1]["gpus"]) == 1
    assert placed[2]["node"] == 2 and placed[2]["gpus"] == []
    assert placed[1]["attempt"] == 1 and placed[1]["evicts"] == []
    assert s.report()["tasks"]["running"] == 2
    s.complete(1)
    assert s.report()["tasks"]["completed"] == 1
    with pytest.raises(ValueError, match="cannot complete task t-1: it is completed"):
        s.complete(1)


def test_the_policy_swaps_between_cycles():
    s = lepton.Scheduler("bestfit")
    s.add_node(node(1, 16_000, 32_768))
    s.add_node(node(2, 16_000, 32_768))
    s.submit(task(1, 8_000, 1_024))
    [first] = s.schedule()
    # Best fit packs the next task beside the first; spread avoids it.
    s.submit(task(2, 1_000, 1_024))
    assert s.schedule()[0]["node"] == first["node"]
    s.set_policy("spread")
    assert s.policy == "spread"
    s.submit(task(3, 1_000, 1_024))
    assert s.schedule()[0]["node"] != first["node"]


def test_the_learned_policy_places_like_a_scheduler():
    s = lepton.Scheduler("drl")
    assert s.policy == "drl"
    for i in range(8):
        s.add_node(node(i, 64_000, 262_144, gpus=1 + i % 4, model="P100"))
    shapes = [(1, 1000), (1, 500), (2, 1000), (1, 250)]
    for i in range(12):
        gpus, milli = shapes[i % 4]
        s.submit(task(i, 4_000, 8_192, gpus=gpus, milli=milli))
    placed = s.schedule()
    assert len(placed) == 12
    assert s.report()["tasks"]["running"] == 12


def test_a_waiting_task_says_why():
    s = lepton.Scheduler()
    s.add_node(node(1, 4_000, 8_192))
    s.add_node(node(2, 4_000, 8_192))
    s.submit(task(9, 8_000, 1_024))
    assert s.schedule() == []
    why = s.explain(9)
    assert "0/2 nodes are available: 2 not enough free cpu_milli" in why, why
    with pytest.raises(ValueError, match="unknown task 10"):
        s.explain(10)


def test_policies_lists_every_policy_with_a_description():
    names = lepton.policies()
    assert {"fgd", "drl", "bestfit", "spread"} <= set(names)
    assert all(description for description in names.values())


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: s.add_node({"id": 3}), "invalid node: missing field `capacity`"),
        (lambda s: s.add_node({**node(3, 1, 1), "colour": "red"}), "unknown field `colour`"),
        (lambda s: s.add_node(node(1, 1_000, 1_024)), "1"),
        (lambda s: s.add_node("n1"), "a node is a dict"),
        (lambda s: s.submit(task(1, 1, 1, gpus=1, milli=1500)), "1500 milli-GPUs on one GPU"),
        (lambda s: s.submit({"id": -1, "request": {"cpu_milli": 1, "memory_mib": 1}}), "id"),
        (lambda s: s.cancel(77), "77"),
        (lambda s: s.set_policy("nope"), "nope"),
        (lambda s: s.remove_node(42), "42"),
    ],
)
def test_bad_input_raises_a_value_error_naming_it(call, message):
    s = lepton.Scheduler()
    s.add_node(node(1, 1_000, 1_024))
    with pytest.raises(ValueError, match=message):
        call(s)


def test_a_duplicate_task_is_refused():
    s = lepton.Scheduler()
    s.submit(task(5, 100, 100))
    with pytest.raises(ValueError, match="5"):
        s.submit(task(5, 100, 100))


def test_an_unknown_policy_is_refused_at_construction():
    with pytest.raises(ValueError, match="nope"):
        lepton.Scheduler("nope")
