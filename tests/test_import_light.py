"""`import evsys_sdk` and a registry look-up must not load a training stack or a provider SDK."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "trl", "peft", "tinker", "anthropic", "openai", "gepa", "datasets", "tensorboard")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_bare_import_loads_nothing_heavy() -> None:
    loaded = _modules_after("import evsys_sdk")
    assert not loaded & {*HEAVY, "pydantic", "yaml", "pluggy"}


def test_registry_lookup_loads_no_training_stack() -> None:
    loaded = _modules_after("import evsys_sdk; evsys_sdk.list_algorithms(); evsys_sdk.schema_for('algorithm', 'sft')")
    assert not loaded & set(HEAVY)
    # Kinds are registered by import path: listing them imports no class module and no pydantic.
    listed = _modules_after("import evsys_sdk; evsys_sdk.list_algorithms(); evsys_sdk.list_executors()")
    assert not listed & {"evsys_sdk.builtins.mock", "evsys_sdk.orchestration.executors", "pydantic"}
