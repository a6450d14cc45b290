"""Plugin discovery on pluggy: built-ins, the ``evsys_sdk.plugins`` entry points, legacy groups.

Discovery is lazy (the first registry look-up) and runs once per host. Each plugin loads on its own: a
broken one is recorded (``evsys plugins`` shows it with a fix hint) and never breaks the others, unless
``EVSYS_STRICT_PLUGINS=1``. ``EVSYS_DISABLE_PLUGINS=a,b`` blocks plugins by entry or dist name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from evsys_sdk.base.errors import EvsysError, PluginError
from evsys_sdk.base.install_hints import pip_install
from evsys_sdk.base.logger import get_logger
from evsys_sdk.plugins import hookspecs
from evsys_sdk.plugins.registry import KINDS, Registry
from evsys_sdk.spec.protocols import InferenceFactory

log = get_logger("plugins")

PLUGIN_GROUP = "evsys_sdk.plugins"
# Legacy groups name a class per entry; the entry name is the registry key.
LEGACY_GROUPS: dict[str, str] = {
    "evsys_sdk.algorithms": "algorithm",
    "evsys_sdk.backends": "backend",
    "evsys_sdk.verifiers": "verifier",
    "evsys_sdk.metrics": "metric",
    "evsys_sdk.transforms": "transform",
    "evsys_sdk.data_stores": "data_store",
    "evsys_sdk.log_stores": "log_store",
    "evsys_sdk.inference": "inference_client",
    "evsys_sdk.run.callbacks": "callback",
    "evsys_sdk.orchestration.executors": "executor",
    "evsys_sdk.proposers": "proposer",
}
CORE = "evsys-core"
# Core's own plugin, loaded by name like every entry point: the host depends on no extension's code.
CORE_HOOKS = "evsys_sdk.builtins.hooks"


@dataclass
class PluginInfo:
    """One plugin as ``evsys plugins`` shows it."""

    name: str
    dist: str
    module: str
    status: str  # "ok" | "broken" | "disabled"
    error: str | None = None
    hint: str | None = None


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _fix_hint(exc: BaseException, ep_name: str, dist: str) -> str:
    disable = f"disable it with EVSYS_DISABLE_PLUGINS={ep_name}"
    if isinstance(exc, PluginError):  # a name clash: reinstalling fixes nothing
        return f"uninstall one of the two distributions, or {disable}"
    reinstall = f"reinstall {dist} ({pip_install(dist)})"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        missing = exc.name.split(".")[0]
        install = pip_install(missing.replace("_", "-")) if missing.startswith("evsys_") else f"pip install {missing}"
        return f"install the missing module '{exc.name}' ({install}), {reinstall}, or {disable}"
    return f"upgrade or {reinstall}, or {disable}"


class PluginHost:
    """A plugin manager and the registries it fills."""

    def __init__(self, *, entry_points: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registries: dict[str, Registry[Any]] = {k: Registry(k, self) for k in KINDS}
        self.default_factories: dict[str, InferenceFactory] = {}
        self.plugins: list[PluginInfo] = []
        self.current_source = "user code"
        self._use_entry_points = entry_points
        self._plugins_loaded = False
        self._loaded = False
        self._lock = threading.RLock()
        self._sources: dict[str, str] = {}

    def ensure_plugins(self) -> None:
        """Every plugin's hooks module loaded, no registration hook run yet: enough to build the CLI."""
        if not self._plugins_loaded:
            with self._lock:
                if not self._plugins_loaded:
                    self._plugins_loaded = True
                    self._add(import_module(CORE_HOOKS), "core", CORE)
                    if self._use_entry_points:
                        self._load_entry_points()

    def ensure_loaded(self) -> None:
        """Plugins loaded and their registration hooks run (the registries filled)."""
        if not self._loaded:
            with self._lock:  # double-checked: registries may be first used from several threads
                if not self._loaded:
                    self._loaded = True  # set first: hook bodies may look registries up
                    self.ensure_plugins()
                    self._run_registration_hooks()

    def add_plugin(self, module: ModuleType | object, name: str, dist: str | None = None) -> None:
        """Register a plugin object (a hooks module) by hand; tests and notebooks use this."""
        self.ensure_loaded()
        self._add(module, name, dist or name)
        self._run_registration_hooks(only=name)

    def _add(self, module: ModuleType | object, name: str, dist: str) -> None:
        self.pm.register(module, name=name)
        self._sources[name] = dist
        self.plugins.append(PluginInfo(name, dist, getattr(module, "__name__", repr(module)), "ok"))

    def _disabled(self) -> set[str]:
        return {p.strip() for p in os.environ.get("EVSYS_DISABLE_PLUGINS", "").split(",") if p.strip()}

    def _broken(self, name: str, dist: str, module: str, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        hint = _fix_hint(exc, name, dist)
        self.plugins.append(PluginInfo(name, dist, module, "broken", error, hint))
        if _flag("EVSYS_STRICT_PLUGINS"):
            raise PluginError(f"plugin '{name}' ({dist}) failed to load: {error}; {hint}") from exc
        log.warning("plugin '%s' (%s) failed to load: %s; %s", name, dist, error, hint)

    def _load_entry_points(self) -> None:
        disabled = self._disabled()
        found = entry_points()  # one scan of installed distributions, then a selection per group
        for ep in found.select(group=PLUGIN_GROUP):
            dist = ep.dist.name if ep.dist is not None else ep.value
            if ep.name in disabled or dist in disabled:
                self.plugins.append(PluginInfo(ep.name, dist, ep.value, "disabled"))
                continue
            if self.pm.has_plugin(ep.name):
                clash = PluginError(f"entry point name '{ep.name}' is also used by {self._sources.get(ep.name)}")
                self._broken(ep.name, dist, ep.value, clash)
                continue
            try:
                self._add(ep.load(), ep.name, dist)
            except Exception as exc:
                self._broken(ep.name, dist, ep.value, exc)
        for group, kind in LEGACY_GROUPS.items():
            for ep in found.select(group=group):
                self._add_legacy(ep, kind, disabled)

    def _add_legacy(self, ep: EntryPoint, kind: str, disabled: set[str]) -> None:
        dist = ep.dist.name if ep.dist is not None else ep.value
        if ep.name in disabled or dist in disabled:
            self.plugins.append(PluginInfo(ep.name, dist, ep.value, "disabled"))
            return
        try:
            self.registries[kind].add_lazy(ep.name, ep, dist)
        except PluginError as exc:
            self._broken(ep.name, dist, ep.value, exc)

    def _run_registration_hooks(self, only: str | None = None) -> None:
        failed: set[str] = set()  # a plugin that failed once registers nothing more
        for kind, plural in KINDS.items():
            caller = getattr(self.pm.hook, f"evsys_register_{plural}")
            # Call each implementation ourselves so every name is attributed to its distribution.
            for impl in caller.get_hookimpls():
                if (only is not None and impl.plugin_name != only) or impl.plugin_name in failed:
                    continue
                self.current_source = self._sources.get(impl.plugin_name, impl.plugin_name)
                try:
                    impl.function(registry=self.registries[kind])
                except Exception as exc:
                    if impl.plugin_name == "core" or (isinstance(exc, PluginError) and _flag("EVSYS_STRICT_PLUGINS")):
                        raise
                    failed.add(impl.plugin_name)
                    self._mark_broken(impl.plugin_name, exc)
                finally:
                    self.current_source = "user code"

    def _mark_broken(self, name: str, exc: BaseException) -> None:
        for i, info in enumerate(self.plugins):
            if info.name == name and info.status == "ok":
                del self.plugins[i]
                self._broken(name, info.dist, info.module, exc)
                return
        self._broken(name, self._sources.get(name, name), name, exc)


_host: PluginHost | None = None


def current_host() -> PluginHost:
    global _host
    if _host is None:
        _host = PluginHost()
    return _host


def tracking_store(name: str) -> Any:
    """The tracking store a plugin provides under ``name`` (``--store``; core's is ``local``)."""
    host = current_host()
    host.ensure_loaded()
    store = host.pm.hook.evsys_tracking_store(name=name)
    if store is None:
        hint = f" ({pip_install('evsys-dashboard')})" if name == "dashboard" else ""
        raise EvsysError(f"unknown tracking store '{name}'{hint}; core provides 'local'")
    return store


@contextmanager
def use_host(host: PluginHost) -> Iterator[PluginHost]:
    """Swap in ``host`` (an isolated set of registries) for the duration of the block."""
    global _host
    previous, _host = _host, host
    try:
        yield host
    finally:
        _host = previous


def list_plugins() -> list[PluginInfo]:
    host = current_host()
    host.ensure_loaded()
    return list(host.plugins)
