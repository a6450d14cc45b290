"""PEP 562 lazy exports: a package lists where its public names live and imports them on first use
(names a plugin package provides raise an install hint while it is missing)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_getattr(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` resolving ``where`` (name -> module) once per name."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later look-ups skip __getattr__
        return value

    return __getattr__


def plugin_getattr(package: str, module: str, dist: str, names: Iterable[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` whose ``names`` live in ``module`` of the plugin package
    ``dist``: resolved when it is installed, else an ImportError with the command that installs it."""
    known = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name not in known:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        try:
            target = importlib.import_module(module)
        except ImportError as exc:
            if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
                raise  # the plugin is installed but one of its own dependencies is missing
            from evsys_sdk.base.install_hints import pip_install

            raise ImportError(f"{package}.{name} is provided by {dist}: {pip_install(dist)}", name=module) from None
        value = getattr(target, name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
