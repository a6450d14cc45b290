"""One registry per extension kind, and the seeds' ``register_*`` / ``get_*`` / ``list_*`` helpers.

Registries belong to the current plugin host (``evsys_sdk.plugins.host``); the first look-up discovers
plugins, registering never does, so user code can register before or after discovery. The host is built
from this module's ``Registry`` and ``KINDS``, so the helpers below import it when called: the one import
cycle left in core, inside the plugins layer (the registries and their host are one unit, split for size).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from evsys_sdk.base.errors import PluginError, UnknownKindError, did_you_mean
from evsys_sdk.base.install_hints import pip_install

if TYPE_CHECKING:
    from evsys_sdk.plugins.host import PluginHost
    from evsys_sdk.spec.config import RunConfig
    from evsys_sdk.spec.protocols import InferenceFactory

T = TypeVar("T")

# The algorithm families (their params: evsys_sdk.spec.families.FAMILIES), named here so that listing and
# name checks build no pydantic model.
FAMILY_NAMES = ("sft", "sdft", "rl", "dpo", "distill")

# kind -> plural, in the order `evsys list` shows them.
KINDS: dict[str, str] = {
    "algorithm": "algorithms",
    "backend": "backends",
    "verifier": "verifiers",
    "metric": "metrics",
    "transform": "transforms",
    "data_store": "data_stores",
    "log_store": "log_stores",
    "inference_client": "inference_clients",
    "callback": "callbacks",
    "executor": "executors",
    "proposer": "proposers",
}
_KIND_ALIASES = {**{p: k for k, p in KINDS.items()}, "inference": "inference_client", "inferences": "inference_client"}

# Names that live in a plugin package, so a miss can say what to install.
KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    "algorithm": {
        "local_sft": "evsys-local",
        "local_rl": "evsys-local",
        "local_sdft": "evsys-local",
        "tinker_sft": "evsys-tinker",
        "tinker_sdft": "evsys-tinker",
        "tinker_rl": "evsys-tinker",
        "gepa_prompt": "evsys-gepa",
    },
    "backend": {"local": "evsys-local", "tinker": "evsys-tinker"},
    "inference_client": {
        "local": "evsys-local",
        "tinker": "evsys-tinker",
        "claude": "evsys-frontier",
        "openai": "evsys-frontier",
        "gemini": "evsys-frontier",
    },
    "verifier": {"llm_judge": "evsys-frontier"},
    "log_store": {"tensorboard": "evsys-core[tensorboard]", "mlflow": "evsys-mlflow"},
    "executor": {"ray": "evsys-ray"},
    "proposer": {"tpe": "evsys-optuna"},
}


def plugin_distributions() -> list[str]:
    """The evsys plugin packages that provide known names, sorted."""
    return sorted({dist for names in KNOWN_PROVIDERS.values() for dist in names.values() if "[" not in dist})


def normalize_kind(kind: str) -> str:
    """``algorithm`` from ``algorithm``/``algorithms``; ``inference_client`` also from ``inference``."""
    k = _KIND_ALIASES.get(kind, kind)
    if k not in KINDS:
        raise UnknownKindError(
            f"Unknown registry kind: {kind}" + did_you_mean(kind, KINDS) + f" (kinds: {', '.join(KINDS)})"
        )
    return k


def install_hint(kind: str, name: str) -> str:
    dist = KNOWN_PROVIDERS.get(kind, {}).get(name)
    return f" '{name}' is provided by {dist}: {pip_install(dist)}" if dist else ""


def _set_name(cls: Any, name: str) -> None:
    """Best effort: a class's ``name`` is its registry key (builtins and slotted classes refuse)."""
    try:
        cls.name = name
    except (AttributeError, TypeError):
        pass


def _path(cls: type[Any]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


@dataclass
class _Entry:
    target: type[Any] | EntryPoint
    source: str


class Registry(Generic[T]):
    """A name -> class map for one extension kind."""

    def __init__(self, kind: str, host: PluginHost | None = None):
        self.kind = kind
        self._host = host
        self._entries: dict[str, _Entry] = {}

    def _discover(self) -> None:
        if self._host is not None:
            self._host.ensure_loaded()

    def register(self, name: str | None = None) -> Callable[[type[T]], type[T]]:
        """Decorator registering a class under ``name`` (default: the class's ``name`` attribute)."""

        def decorator(cls: type[T]) -> type[T]:
            self.add(cls, name)
            return cls

        return decorator

    def _check_name(self, key: str) -> None:
        if self.kind == "algorithm" and key in FAMILY_NAMES:
            raise ValueError(
                f"'{key}' is an algorithm family, resolved by backend: register a concrete name "
                f"(e.g. 'mybackend_{key}') and route it with the evsys_resolve_algorithm hook"
            )

    def _source(self) -> str:
        return self._host.current_source if self._host is not None else "user code"

    def add(self, cls: type[T], name: str | None = None) -> None:
        key = name or getattr(cls, "name", None)
        if not isinstance(key, str) or not key:
            raise ValueError(f"{cls!r} has no `name` and register_{self.kind} was called without one")
        self._check_name(key)
        source = self._source()
        old = self._entries.get(key)
        if old is not None and isinstance(old.target, EntryPoint) and old.target.value == _path(cls):
            old.target = cls  # the class a lazy entry names, now imported
        if old is not None and old.target is not cls:
            if old.source != source:
                raise PluginError(
                    f"{self.kind} '{key}' is registered by both {old.source} and {source}; "
                    f"uninstall one, or block one with EVSYS_DISABLE_PLUGINS=<its entry-point name>"
                )
            raise ValueError(f"{self.kind} '{key}' already registered (existing={old.target!r}, new={cls!r})")
        _set_name(cls, key)
        self._entries[key] = _Entry(cls, source)

    def add_lazy(self, name: str, target: str | EntryPoint, source: str | None = None) -> None:
        """Register ``name`` as ``"module:Class"`` (or an entry point), imported at its first look-up:
        listing and name checks then import nothing. Hooks of plugins with many or heavy classes use it."""
        self._check_name(name)
        source = source or self._source()
        if isinstance(target, str):
            target = EntryPoint(name=name, value=target, group=f"evsys_sdk.{self.kind}")
        if name not in self._entries:
            self._entries[name] = _Entry(target, source)
        elif self._entries[name].source != source:
            raise PluginError(f"{self.kind} '{name}' is registered by both {self._entries[name].source} and {source}")

    def get(self, name: str) -> type[T]:
        self._discover()
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownKindError(self.unknown_message(name))
        if isinstance(entry.target, EntryPoint):
            try:
                loaded = entry.target.load()
            except Exception as exc:
                raise PluginError(
                    f"{self.kind} '{name}' from {entry.source} failed to load ({entry.target.value}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            _set_name(loaded, name)
            entry.target = loaded
        return cast("type[T]", entry.target)

    def unknown_message(self, name: str) -> str:
        available = ", ".join(self.list()) or "(none)"
        hint = did_you_mean(name, [*self.list(), *(FAMILY_NAMES if self.kind == "algorithm" else ())])
        msg = f"No {self.kind} registered under '{name}'{hint}{' ' if hint else '. '}Available: {available}."
        if self.kind == "algorithm":
            msg += f" Families (resolved by backend): {', '.join(sorted(FAMILY_NAMES))}."
        return msg + install_hint(self.kind, name)

    def has(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def list(self) -> builtins.list[str]:
        self._discover()
        return sorted(self._entries)

    def items(self) -> builtins.list[tuple[str, type[T]]]:
        return [(name, self.get(name)) for name in self.list()]

    def source_of(self, name: str) -> str:
        self._discover()
        return self._entries[name].source

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)


def registry(kind: str) -> Registry[Any]:
    """The current host's registry for ``kind`` (singular, plural or alias)."""
    from evsys_sdk.plugins.host import current_host

    return current_host().registries[normalize_kind(kind)]


def _helpers(kind: str) -> tuple[Callable[..., Any], Callable[[str], Any], Callable[[], list[str]]]:
    def register(name: str | None = None) -> Callable[[type[T]], type[T]]:
        return registry(kind).register(name)

    def get(name: str) -> Any:
        return registry(kind).get(name)

    def list_() -> list[str]:
        return registry(kind).list()

    return register, get, list_


register_algorithm, _get_registered_algorithm, _list_registered_algorithms = _helpers("algorithm")
register_backend, get_backend, list_backends = _helpers("backend")
register_verifier, get_verifier, list_verifiers = _helpers("verifier")
register_metric, get_metric, list_metrics = _helpers("metric")
register_transform, get_transform, list_transforms = _helpers("transform")
register_data_store, get_data_store, list_data_stores = _helpers("data_store")
register_log_store, get_log_store, list_log_stores = _helpers("log_store")
register_inference, get_inference, list_inferences = _helpers("inference_client")
register_callback, get_callback, list_callbacks = _helpers("callback")
register_executor, get_executor, list_executors = _helpers("executor")
register_proposer, get_proposer, list_proposers = _helpers("proposer")


class AlgorithmFamily:
    """An algorithm family (``sft``, ``sdft``, ``rl``, ...) as ``get_algorithm`` gives it: ``Config`` holds
    the params every implementation shares, ``resolve(backend_kind)`` is the implementation for a backend."""

    def __init__(self, name: str):
        from evsys_sdk.spec.families import FAMILIES as PARAMS

        self.name = name
        self.Config = PARAMS[name]

    def resolve(self, backend_kind: str) -> type[Any]:
        """The algorithm class serving this family on ``backend_kind`` (an install hint when none does)."""
        found: type[Any] = registry("algorithm").get(resolve_algorithm(self.name, backend_kind))
        return found

    def implementations(self) -> dict[str, str]:
        """``{backend kind: algorithm}`` for every installed backend serving this family."""
        return family_backends(self.name)

    def __repr__(self) -> str:
        return f"AlgorithmFamily({self.name!r})"


def get_algorithm(name: str) -> Any:
    """The algorithm class registered as ``name``, or for a family name its ``AlgorithmFamily``."""
    if name in FAMILY_NAMES:
        return AlgorithmFamily(name)
    return _get_registered_algorithm(name)


def list_algorithms() -> list[str]:
    """Every registered algorithm and every family, sorted."""
    return sorted({*_list_registered_algorithms(), *FAMILY_NAMES})


def schema_for(kind: str, name: str) -> dict[str, Any]:
    """The JSON schema of a registered class's ``Config`` (an algorithm family gives its shared params)."""
    k = normalize_kind(kind)
    if k == "algorithm" and name in FAMILY_NAMES and not registry(k).has(name):
        from evsys_sdk.spec.families import FAMILIES as PARAMS

        return PARAMS[name].model_json_schema()
    config = getattr(registry(k).get(name), "Config", None)
    if config is None or not hasattr(config, "model_json_schema"):
        return {"type": "object", "properties": {}, "additionalProperties": False}
    schema: dict[str, Any] = config.model_json_schema()
    return schema


def resolve_algorithm(kind: str, backend_kind: str) -> str:
    """The concrete algorithm for ``kind`` on ``backend_kind`` (families route through plugins)."""
    from evsys_sdk.plugins.host import current_host

    algorithms = registry("algorithm")
    if algorithms.has(kind):
        return kind
    if kind in FAMILY_NAMES:
        name = current_host().pm.hook.evsys_resolve_algorithm(kind=kind, backend_kind=backend_kind)
        if isinstance(name, str):
            return name
        served = family_backends(kind)
        where = ", ".join(f"{b} ({a})" for b, a in served.items()) or "none"
        dist = KNOWN_PROVIDERS["backend"].get(backend_kind)
        hint = f" {pip_install(dist)}" if dist else ""
        raise UnknownKindError(
            f"No implementation of algorithm family '{kind}' for backend '{backend_kind}'. "
            f"Backends that serve it: {where}.{hint}"
        )
    raise UnknownKindError(algorithms.unknown_message(kind))


def family_backends(family: str) -> dict[str, str]:
    """``{backend kind: concrete algorithm}`` for every installed backend serving ``family``."""
    from evsys_sdk.plugins.host import current_host

    hook = current_host().pm.hook.evsys_resolve_algorithm
    out = {}
    for backend in registry("backend").list():
        name = hook(kind=family, backend_kind=backend)
        if isinstance(name, str):
            out[backend] = name
    return out


def register_default_inference_factory(backend_kind: str) -> Callable[[InferenceFactory], InferenceFactory]:
    """Legacy decorator: the factory serving finished arms of ``backend_kind``."""
    from evsys_sdk.plugins.host import current_host

    def decorator(fn: InferenceFactory) -> InferenceFactory:
        current_host().default_factories[backend_kind] = fn
        return fn

    return decorator


def get_default_inference_factory(run_config: RunConfig | str) -> InferenceFactory | None:
    """The factory serving a finished arm: the first plugin answering the hook, else the legacy
    per-backend factory. A string argument is a backend kind (legacy call style)."""
    from evsys_sdk.plugins.host import current_host

    host = current_host()
    host.ensure_loaded()
    if isinstance(run_config, str):
        return host.default_factories.get(run_config)
    factory: InferenceFactory | None = host.pm.hook.evsys_default_inference_factory(run_config=run_config)
    return factory or host.default_factories.get(run_config.backend.kind)
