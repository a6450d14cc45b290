"""In-process verifier functions: the name-keyed registry behind ``InProcessVerifier.fn_name``.

A task stores only a function *name* (plus ``expected`` and ``params``); the code lives here, so a
task file never carries code. A function is ``fn(model_output, expected, params) -> float``.
This registry is separate from the registry of ``Verifier`` classes (``format_only`` and friends).
"""

from __future__ import annotations

import dataclasses
import json
import re
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from evsys_sdk.base.install_hints import pip_install
from evsys_sdk.spec.data_types import E2BVerifier, HarborTask, InProcessVerifier, LLMJudgeVerifier
from evsys_sdk.spec.protocols import VerificationResult

__all__ = [
    "VerifierFn",
    "contains",
    "exact_match",
    "get_fn",
    "list_fns",
    "regex_match",
    "register",
    "register_fn",
    "tool_calls_match",
    "unregister",
    "verify_task",
]

VerifierFn = Callable[[str, Any, dict[str, Any]], float]
F = TypeVar("F", bound=VerifierFn)

_REGISTRY: dict[str, VerifierFn | str] = {}


def register(name: str, fn: VerifierFn | str, *, replace: bool = False) -> None:
    """Register ``fn`` as ``name``: a function, or ``"module:function"``, imported at its first use (a
    plugin's hooks register so at discovery without importing its module). Re-registering the same
    function is a no-op; taking a name that holds another needs ``replace=True``, so two plugins can't
    silently shadow each other."""
    current = _REGISTRY.get(name)
    same = current is fn or ((isinstance(current, str) or isinstance(fn, str)) and _path(current) == _path(fn))
    if current is not None and same:
        if isinstance(current, str):  # a path resolved since, or the function itself: keep the function
            _REGISTRY[name] = fn
        return
    if current is not None and not replace:
        raise ValueError(
            f"verifier fn '{name}' is already registered ({_describe(current)}); pass replace=True to override it"
        )
    _REGISTRY[name] = fn


def register_fn(name: str, *, replace: bool = False) -> Callable[[F], F]:
    """Decorator form of ``register``; returns the function unchanged."""

    def decorate(fn: F) -> F:
        register(name, fn, replace=replace)
        return fn

    return decorate


def unregister(name: str) -> None:
    """Remove ``name`` (absent names are ignored), e.g. to undo a test's registration."""
    _REGISTRY.pop(name, None)


def get_fn(name: str) -> VerifierFn:
    """The function registered as ``name``; ValueError listing the registered names otherwise."""
    try:
        fn = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown verifier fn {name!r}; registered: {list_fns()}") from None
    if isinstance(fn, str):
        import importlib

        module, _, attr = fn.partition(":")
        fn = _REGISTRY[name] = getattr(importlib.import_module(module), attr)
    return fn


def list_fns() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def _path(fn: Callable[..., Any] | str | None) -> str:
    """``module:qualname``, the form a path registration names, so both forms of one function compare equal."""
    return fn if isinstance(fn, str) else f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', id(fn))}"


def _describe(fn: Callable[..., Any] | str) -> str:
    return fn if isinstance(fn, str) else f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _ignore_case(params: dict[str, Any]) -> bool:
    return bool(params.get("ignore_case", False))


def exact_match(model_output: str, expected: Any, params: dict[str, Any]) -> float:
    """1.0 iff the output equals ``expected`` after stripping whitespace (``ignore_case`` optional)."""
    got, want = (model_output or "").strip(), str("" if expected is None else expected).strip()
    if _ignore_case(params):
        got, want = got.casefold(), want.casefold()
    return 1.0 if got == want else 0.0


def contains(model_output: str, expected: Any, params: dict[str, Any]) -> float:
    """1.0 iff ``expected`` is a non-empty substring of the output (``ignore_case`` optional)."""
    got, want = model_output or "", str("" if expected is None else expected)
    if _ignore_case(params):
        got, want = got.casefold(), want.casefold()
    return 1.0 if want and want in got else 0.0


def regex_match(model_output: str, expected: Any, params: dict[str, Any]) -> float:
    """1.0 iff the non-empty pattern ``expected`` is found in the output (``ignore_case`` optional).

    An invalid pattern is a broken task, so it raises ValueError rather than scoring 0.
    """
    pattern = str("" if expected is None else expected)
    if not pattern:
        return 0.0
    try:
        found = re.search(pattern, model_output or "", re.IGNORECASE if _ignore_case(params) else 0)
    except re.error as exc:
        raise ValueError(f"regex_match: invalid pattern {pattern!r}: {exc}") from exc
    return 1.0 if found else 0.0


def _first_json_object(text: str) -> dict[str, Any] | None:
    """The first ``{...}`` in ``text`` that parses as a JSON object, wherever it sits (code fence,
    prose before or after), else None."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def _point(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return float(value[0]), float(value[1])
    return None


def tool_calls_match(model_output: str, expected: Any, params: dict[str, Any]) -> float:
    """1.0 iff the output's tool call matches ``expected`` (a dict or JSON text).

    ``tool`` and ``action`` must be equal; ``ref`` and ``text`` must be equal when ``expected`` has
    them; ``coordinate`` must be an [x, y] within ``params["coordinate_tolerance"]`` (default 25) of
    the expected one on each axis.
    """
    got = _first_json_object(model_output or "")
    want = expected if isinstance(expected, dict) else _first_json_object(str(expected or ""))
    if got is None or want is None:
        return 0.0
    if got.get("tool") != want.get("tool") or got.get("action") != want.get("action"):
        return 0.0
    if any(key in want and got.get(key) != want[key] for key in ("ref", "text")):
        return 0.0
    if "coordinate" in want:
        tolerance = float(params.get("coordinate_tolerance", 25))
        got_xy, want_xy = _point(got.get("coordinate")), _point(want["coordinate"])
        if got_xy is None or want_xy is None:
            return 0.0
        if any(abs(g - w) > tolerance for g, w in zip(got_xy, want_xy, strict=True)):
            return 0.0
    return 1.0


for _fn in (exact_match, contains, regex_match, tool_calls_match):
    register(_fn.__name__, _fn)


_EXECUTORS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def spec_executor(task: HarborTask) -> Any:
    """The registered verifier that executes a task's E2B or LLM-judge spec (registered under the spec's
    ``kind``, e.g. ``llm_judge`` by evsys-frontier); raises when no installed plugin provides one."""
    from evsys_sdk.plugins.registry import registry

    kind = getattr(task.verifier, "kind", "")
    verifiers = registry("verifier")
    if verifiers.has(kind):
        # One executor per kind and registry: a judge keeps its API clients across tasks.
        built = _EXECUTORS.setdefault(verifiers, {})
        if kind not in built:
            built[kind] = verifiers.get(kind)()
        return built[kind]
    if isinstance(task.verifier, E2BVerifier):
        raise NotImplementedError(
            f"task '{task.task_id}' has an E2BVerifier: it runs in a sandbox, which core does not execute; "
            "install a plugin that registers an 'e2b' verifier"
        )
    raise NotImplementedError(
        f"task '{task.task_id}' has an LLMJudgeVerifier: LLM judges are executed by the evsys-frontier "
        f"plugin ({pip_install('evsys-frontier')})"
    )


def verify_task(task: HarborTask, completion: str) -> VerificationResult:
    """Score ``completion`` with ``task``'s verifier. Only in-process verifiers run in core."""
    verifier = task.verifier
    if isinstance(verifier, InProcessVerifier):
        fn = get_fn(verifier.fn_name)
        reward = float(fn(completion, verifier.expected, dict(verifier.params)))
        return VerificationResult(reward=reward, info={"fn_name": verifier.fn_name})
    if isinstance(verifier, E2BVerifier | LLMJudgeVerifier):
        result: VerificationResult = spec_executor(task).verify(
            prompt=task.instruction, completion=completion, target=dataclasses.asdict(verifier)
        )
        return result
    if verifier is None:
        raise TypeError(f"task '{task.task_id}' has no verifier (a generation-only task cannot be scored)")
    raise TypeError(f"task '{task.task_id}' has unknown verifier type: {type(verifier).__name__}")
