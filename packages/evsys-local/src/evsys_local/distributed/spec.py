"""The picklable description of an arm every rank rebuilds, and the messages rank 0 and the arm exchange."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evsys_sdk.base.errors import EvsysError

# Live objects of the arm's own process: each rank builds its own (handles) or talks back instead.
LOCAL_ONLY = ("store", "backend_handles", "on_validation_step")


@dataclass
class ArmSpec:
    """What a rank needs to train the arm exactly as one process would."""

    algorithm: Any  # the configured algorithm instance (picklable: a class and its pydantic config)
    backend_params: dict[str, Any]
    model: dict[str, Any]
    run_id: str
    output_dir: str
    config: Any  # the arm's one-run ExperimentConfig
    data_store: Any
    extras: dict[str, Any]
    address: tuple[str, int]  # the arm's listener on loopback
    authkey: bytes
    validate: bool  # the arm scores in-loop benchmarks: rank 0 reports every step end
    cwd: str = field(default_factory=os.getcwd)


def shippable_extras(extras: dict[str, Any], algorithm: str) -> dict[str, Any]:
    """The run context's extras a rank can receive; one that cannot be pickled is refused by name."""
    out = {}
    for key, value in extras.items():
        if key in LOCAL_ONLY:
            continue
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise EvsysError(
                f"{algorithm}: run context extra '{key}' cannot be sent to the training processes "
                f"({type(exc).__name__}: {exc}); with backend num_processes > 1 it must be picklable "
                "(e.g. a TrainerCallback class defined at module level)"
            ) from None
        out[key] = value
    return out


def write_spec(spec: ArmSpec, path: Path) -> Path:
    """Write atomically (a rank never reads half a file), readable by this user only: it holds the key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pickle.dumps(spec))
    os.replace(tmp, path)
    return path


def read_spec(path: str | Path) -> ArmSpec:
    spec: ArmSpec = pickle.loads(Path(path).read_bytes())
    return spec
