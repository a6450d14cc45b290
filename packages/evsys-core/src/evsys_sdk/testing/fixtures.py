"""The ``evsys`` pytest plugin (entry point ``pytest11: evsys``): fixtures for plugin authors' tests.

pytest imports this module in every session of every project installed next to evsys-core, so it
imports only pytest and stdlib-light modules here; evsys's registries load inside the fixtures.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from evsys_sdk.testing.configs import MockConfigFactory, mock_experiment_config
from evsys_sdk.testing.network import network_guard

if TYPE_CHECKING:
    from evsys_sdk.plugins.host import PluginHost

# Contract failures then show pytest's detailed assertion diffs; must run before contracts is imported.
pytest.register_assert_rewrite("evsys_sdk.testing.contracts")

__all__ = ["mock_config", "no_network", "plugin_host"]


@pytest.fixture
def plugin_host() -> Iterator[PluginHost]:
    """A fresh plugin host with the built-ins but no installed plugins, current for the test.

    Register what the test needs with ``plugin_host.add_plugin(hooks_module, "name")`` or the
    ``register_*`` decorators; it all disappears with the host when the test ends.
    """
    from evsys_sdk.plugins.host import PluginHost, use_host

    with use_host(PluginHost(entry_points=False)) as host:
        yield host


@pytest.fixture
def no_network() -> Iterator[None]:
    """Any connection to a non-loopback address raises ``NetworkAccessError`` during the test."""
    with network_guard():
        yield


@pytest.fixture
def mock_config(tmp_path: Path) -> MockConfigFactory:
    """A factory of single-run ExperimentConfig dicts writing under ``tmp_path``:
    ``mock_config("mock_rl", params={"num_steps": 3})``; pass it to ``run_experiment``."""
    return functools.partial(mock_experiment_config, tmp_path)
