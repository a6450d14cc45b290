"""Every test runs offline under core's network guard, with plugins loaded strictly; ``host`` has the
proposers of this package and core's synthetic objectives (known optimum, score = -regret)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evsys_optuna import hooks
from evsys_sdk.testing import search as search_kit

os.environ.setdefault("EVSYS_STRICT_PLUGINS", "1")

BOWL_SPACE = {
    "algorithm.params.x": {"uniform": [-5, 5]},
    "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-1]},
    "algorithm.params.depth": {"int_uniform": [1, 12]},
    "algorithm.params.activation": {"choice": ["relu", "gelu", "tanh", "sigmoid"]},
}


@pytest.fixture(autouse=True)
def _offline(no_network: None) -> Iterator[None]:
    yield


@pytest.fixture
def host(plugin_host: Any) -> Any:
    plugin_host.add_plugin(hooks, "optuna")
    plugin_host.add_plugin(search_kit, "search_kit")
    return plugin_host


def search_config(tmp_path: Path, *, n_repeats: int = 1, **search: Any) -> dict[str, Any]:
    """A search over the synthetic bowl with ``tpe``; ``search`` overrides the block's keys."""
    block = {
        "proposer": {"kind": "tpe"},
        "budget": {"candidates": 12},
        "parallel": 2,
        "seed": 0,
        "space": BOWL_SPACE,
        **search,
    }
    return search_kit.experiment(tmp_path / "out", block, n_repeats=n_repeats)
