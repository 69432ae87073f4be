"""lepton.demo gives the command line's numbers."""

from __future__ import annotations

import json
import subprocess

import pytest

import lepton


def cli_demo(lepton_cli, tmp_path, *flags):
    out = subprocess.run(
        [str(lepton_cli), "demo", *flags, "--out", str(tmp_path / "report"), "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)["scenarios"]


def test_a_small_data_center_and_the_hybrid_cloud_match_the_cli(lepton_cli, tmp_path):
    small = dict(seed=3, tasks=600, hours=2)
    datacenter = lepton.demo("datacenter", vms=40, policy="bestfit", **small)
    assert datacenter == cli_demo(
        lepton_cli, tmp_path, "--scenario", "datacenter", "--seed", "3", "--vms", "40",
        "--tasks", "600", "--hours", "2", "--policy", "bestfit",
    )
    [only] = datacenter
    assert only["scenario"] == "datacenter"
    hybrid = lepton.demo("hybrid", **small)
    assert hybrid == cli_demo(
        lepton_cli, tmp_path, "--scenario", "hybrid", "--seed", "3", "--tasks", "600",
        "--hours", "2",
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scenario": "moon"}, "unknown scenario \"moon\""),
        ({"scenario": "edge", "vms": 10}, "vms is the data center's"),
        ({"scenario": "datacenter-trace", "tasks": 10}, "not read by datacenter-trace"),
        ({"scenario": "datacenter", "policy": "nope"}, "nope"),
        ({"scenario": "datacenter", "vms": 0}, "vms"),
    ],
)
def test_bad_settings_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lepton.demo(**kwargs)
