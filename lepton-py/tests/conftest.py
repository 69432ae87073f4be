"""Shared fixtures: the repository's trace files and a small slice of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRACE = REPO / "data" / "alibaba-gpu-2023"


@pytest.fixture(scope="session")
def small_trace(tmp_path_factory) -> tuple:
    """The first 40 GPU nodes and 300 pods of the shipped trace: episodes
    of a few hundred steps."""
    folder = tmp_path_factory.mktemp("trace")
    nodes = folder / "nodes.csv"
    pods = folder / "pods.csv"
    nodes.write_text("".join(open(TRACE / "openb_node_list_gpu_node.csv").readlines()[:41]))
    pods.write_text("".join(open(TRACE / "openb_pod_list_default.csv").readlines()[:301]))
    return nodes, pods


@pytest.fixture(scope="session")
def lepton_cli() -> Path:
    """The `lepton` command line built by cargo: $LEPTON_BIN, else the
    workspace's debug or release build. Missing, the test fails: run
    `cargo build -p lepton-cli` first (scripts/test.sh builds it)."""
    candidates = [os.environ.get("LEPTON_BIN")] if os.environ.get("LEPTON_BIN") else []
    candidates += [str(REPO / "target" / kind / "lepton") for kind in ("debug", "release")]
    for candidate in candidates:
        if Path(candidate).is_file():
            return Path(candidate)
    pytest.fail(f"no lepton binary among {candidates}: build it with cargo first")
