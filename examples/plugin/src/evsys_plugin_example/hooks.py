"""The plugin's hooks: evsys imports this module when it discovers plugins, so it imports only core.

Classes are imported inside the hook functions: listing or validating configs never pays for anything
heavy an algorithm module may need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsys_sdk.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from evsys_sdk.plugins.registry import Registry


@hookimpl
def evsys_register_algorithms(registry: Registry[Any]) -> None:
    from evsys_plugin_example.algorithm import ConstantLrToy

    registry.add(ConstantLrToy)
