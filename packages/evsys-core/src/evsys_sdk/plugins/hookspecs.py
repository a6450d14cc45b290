"""The pluggy hook specifications every evsys plugin implements a subset of.

A plugin is a module (its ``hooks`` module) declared in the ``evsys_sdk.plugins`` entry-point group;
its functions are marked with ``@evsys_sdk.hookimpl``. Hooks run once, at the first registry look-up.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from evsys_sdk.plugins.registry import Registry
    from evsys_sdk.spec.config import RunConfig
    from evsys_sdk.spec.protocols import InferenceFactory

PROJECT = "evsys"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def evsys_register_algorithms(registry: Registry[Any]) -> None:
    """Register algorithm classes: ``registry.register("name")(cls)``. Called at first look-up."""


@hookspec
def evsys_register_backends(registry: Registry[Any]) -> None:
    """Register backend classes (``prepare``/``teardown``)."""


@hookspec
def evsys_register_inference_clients(registry: Registry[Any]) -> None:
    """Register inference client classes (``generate``)."""


@hookspec
def evsys_register_metrics(registry: Registry[Any]) -> None:
    """Register metric classes (``compute``)."""


@hookspec
def evsys_register_verifiers(registry: Registry[Any]) -> None:
    """Register verifier classes (``verify``)."""


@hookspec
def evsys_register_transforms(registry: Registry[Any]) -> None:
    """Register row transform classes (callable on rows)."""


@hookspec
def evsys_register_data_stores(registry: Registry[Any]) -> None:
    """Register data store classes."""


@hookspec
def evsys_register_log_stores(registry: Registry[Any]) -> None:
    """Register log store classes."""


@hookspec
def evsys_register_callbacks(registry: Registry[Any]) -> None:
    """Register experiment callback classes (``on_run_end`` and the other events of evsys_sdk.run.callbacks)."""


@hookspec
def evsys_register_executors(registry: Registry[Any]) -> None:
    """Register executor classes: where an experiment's arms run (``sequential``, ``process``, ``ray``)."""


@hookspec
def evsys_register_proposers(registry: Registry[Any]) -> None:
    """Register search proposers (``ask``/``tell``) for ``evsys evolve``: ``search.proposer.kind``."""


@hookspec
def evsys_register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``evsys`` CLI verbs. A parser's ``func`` default is called with the parsed args and
    returns the exit code."""


@hookspec(firstresult=True)
def evsys_tracking_store(name: str) -> Any:
    """Build the tracking store ``name`` for ``evsys run --store NAME`` (e.g. ``dashboard``), or return
    None to let another plugin answer. Core answers ``local``."""


@hookspec(firstresult=True)
def evsys_resolve_algorithm(kind: str, backend_kind: str) -> str | None:
    """Map an algorithm family (``sft``, ``sdft``, ``rl``) on a backend kind to a concrete algorithm
    name, or return None to let another plugin answer."""


@hookspec(firstresult=True)
def evsys_default_inference_factory(run_config: RunConfig) -> InferenceFactory | None:
    """Return a factory ``(run_result, run_config) -> InferenceClient`` able to serve a finished arm
    of this run (by its backend kind or algorithm kind), or None to let another plugin answer."""
