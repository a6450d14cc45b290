"""evsys-optuna's hooks (entry point ``optuna``). Imports only evsys_sdk: listing and validating a
search imports no optuna (the proposers import it at their first ask)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsys_sdk.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from evsys_sdk.plugins.registry import Registry


@hookimpl
def evsys_register_proposers(registry: Registry[Any]) -> None:
    for name, cls in (("tpe", "TPEProposer"), ("cmaes", "CmaEsProposer"), ("gp", "GPProposer")):
        registry.add_lazy(name, f"evsys_optuna.proposers:{cls}")  # imported when a search uses it
