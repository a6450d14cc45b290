"""Built-in log stores: ``jsonl`` (the default), ``multiplex``, ``null`` and ``tensorboard``.

Kept free of heavy imports: tensorboard is imported only when a ``tensorboard`` store is built.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
import time
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar, SupportsFloat

from pydantic import Field

from evsys_sdk.base.install_hints import pip_install
from evsys_sdk.base.io import atomic_write_json
from evsys_sdk.base.logger import get_logger
from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.null_log_store import NullLogStore
from evsys_sdk.spec.params import FIXED
from evsys_sdk.spec.protocols import LogStore, RunContext

_log = get_logger("log_stores")

# Value types the JSON encoder writes as numbers as-is; anything else goes through _json_number.
_PLAIN_NUMBERS = frozenset({int, float})
_encode_strict = json.JSONEncoder(allow_nan=False).encode


def _json_number(key: str, value: object) -> int | float | None:
    """``value`` as a JSON number. NaN and infinities become null: the file must stay valid JSON lines."""
    if isinstance(value, numbers.Integral):  # also bool, which json would write as true/false
        return int(value)
    if isinstance(value, SupportsFloat):  # numpy/torch scalars, Decimal, ...; never str
        number = float(value)
        return number if math.isfinite(number) else None
    raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__}: {value!r:.80}")


def _metrics_line(metrics: dict[str, float], step: int) -> str:
    record: dict[str, Any] = {"ts": time.time(), "step": operator.index(step), "metrics": metrics}
    if _PLAIN_NUMBERS.issuperset(map(type, metrics.values())):
        try:
            return _encode_strict(record) + "\n"
        except ValueError:  # a NaN or an infinity: clean the values below
            pass
    record["metrics"] = {key: _json_number(key, value) for key, value in metrics.items()}
    return _encode_strict(record) + "\n"


class JSONLLogStore:
    """Metrics as JSON lines, hyperparams and artifacts as JSON files, all under ``log_dir``.

    A new store starts a new record: it truncates its metrics file and drops the hyperparams and
    artifacts files an earlier run left in ``log_dir``, so re-runs never mix rows.
    """

    name: ClassVar[str] = "jsonl"

    class Config(StrictModel):
        log_dir: str = Field(
            min_length=1, description="folder of the files (default: <run_dir>/logs)", json_schema_extra=FIXED
        )
        metrics_file: str = Field(
            default="metrics.jsonl",
            min_length=1,
            description="step metrics, one JSON line per call",
            json_schema_extra=FIXED,
        )
        hyperparams_file: str = Field(
            default="hyperparams.json", min_length=1, description="the run's hyperparams", json_schema_extra=FIXED
        )
        artifacts_file: str = Field(
            default="artifacts.json", min_length=1, description="the artifacts logged", json_schema_extra=FIXED
        )

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.log_dir = Path(self.config.log_dir).expanduser()
        self.metrics_path = self.log_dir / self.config.metrics_file
        self.hyperparams_path = self.log_dir / self.config.hyperparams_file
        self.artifacts_path = self.log_dir / self.config.artifacts_file
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        self.hyperparams_path.unlink(missing_ok=True)
        self.artifacts_path.unlink(missing_ok=True)
        self._hyperparams: dict[str, Any] = {}
        self._artifacts: list[dict[str, Any]] = []
        # One handle for the whole run: reopening per line would cost more than the line itself.
        self._metrics = self.metrics_path.open("w", encoding="utf-8")
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"JSONLLogStore({self.log_dir}) is closed")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._check_open()
        self._metrics.write(_metrics_line(metrics, step))
        self._metrics.flush()  # a crash must not lose what was already logged

    def log_scalar(self, key: str, value: float, step: int) -> None:
        self.log_metrics({key: value}, step)

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        """Merge ``params`` into this run's hyperparams and rewrite the file."""
        self._check_open()
        self._hyperparams.update(params)
        atomic_write_json(self.hyperparams_path, self._hyperparams)

    def log_artifact(self, name: str, path: str, *, kind: str = "file") -> None:
        self._check_open()
        self._artifacts.append({"name": name, "path": path, "kind": kind, "ts": time.time()})
        atomic_write_json(self.artifacts_path, self._artifacts)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._metrics.close()


class ChildLogStore(StrictModel):
    """One store of a multiplex: a registered log-store kind and its params."""

    kind: str = Field(min_length=1, description="a registered log-store kind")
    params: dict[str, Any] = Field(default_factory=dict, description="that store's params")


class MultiplexLogStore:
    """Sends every call to each child store, in order (``start_run``/``end_run`` to those that have them)."""

    name: ClassVar[str] = "multiplex"

    class Config(StrictModel):
        children: list[ChildLogStore] = Field(description="the stores every call goes to, in order")

    def __init__(self, **params: Any) -> None:
        from evsys_sdk.plugins.registry import get_log_store  # the registry imports the built-ins: no cycle at import

        self.config = self.Config(**params)
        self.children: list[LogStore] = []
        try:
            for spec in self.config.children:
                self.children.append(get_log_store(spec.kind)(**spec.params))
        except BaseException:
            self.close()  # children built so far may hold open files
            raise
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("MultiplexLogStore is closed")

    def start_run(self, ctx: RunContext) -> None:
        for child in self.children:
            if hasattr(child, "start_run"):
                child.start_run(ctx)

    def end_run(self, status: str) -> None:
        for child in self.children:
            if hasattr(child, "end_run"):
                child.end_run(status)

    def log_scalar(self, key: str, value: float, step: int) -> None:
        self._check_open()
        for child in self.children:
            child.log_scalar(key, value, step)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._check_open()
        for child in self.children:
            child.log_metrics(metrics, step)

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        self._check_open()
        for child in self.children:
            child.log_hyperparams(params)

    def log_artifact(self, name: str, path: str, *, kind: str = "file") -> None:
        self._check_open()
        for child in self.children:
            child.log_artifact(name, path, kind=kind)

    def close(self) -> None:
        """Close every child; one failing to close must not keep the others open."""
        self._closed = True
        for child in self.children:
            try:
                child.close()
            except Exception:  # logged; the other children must still close
                _log.warning("log store %r failed to close", getattr(child, "name", child), exc_info=True)


class TensorBoardLogStore:
    """Scalars as TensorBoard scalars; hyperparams and artifacts as text entries. Needs tensorboard."""

    name: ClassVar[str] = "tensorboard"

    class Config(StrictModel):
        log_dir: str = Field(
            min_length=1, description="the event files' folder (default: <run_dir>/logs)", json_schema_extra=FIXED
        )
        flush_secs: float = Field(default=30, gt=0, description="seconds between flushes to disk")

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        try:  # import_module: tensorboard ships no type information, its names are Any here
            event_pb2 = import_module("tensorboard.compat.proto.event_pb2")
            summary_pb2 = import_module("tensorboard.compat.proto.summary_pb2")
            text_summary = import_module("tensorboard.plugins.text.summary_v2")
            event_file_writer = import_module("tensorboard.summary.writer.event_file_writer")
        except ImportError as exc:
            raise ImportError(
                f"the 'tensorboard' log store needs tensorboard ({exc}); "
                f"install it with: {pip_install('evsys-core[tensorboard]')}"
            ) from exc
        self._event = event_pb2.Event
        self._summary = summary_pb2.Summary
        self._text_pb = text_summary.text_pb
        self.log_dir = Path(self.config.log_dir).expanduser()
        self._writer = event_file_writer.EventFileWriter(str(self.log_dir), flush_secs=self.config.flush_secs)
        self._closed = False

    def _add(self, summary: Any, step: int) -> None:
        if self._closed:
            raise RuntimeError(f"TensorBoardLogStore({self.log_dir}) is closed")
        self._writer.add_event(self._event(wall_time=time.time(), step=operator.index(step), summary=summary))

    def log_scalar(self, key: str, value: float, step: int) -> None:
        self.log_metrics({key: value}, step)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        values = [self._summary.Value(tag=key, simple_value=float(value)) for key, value in metrics.items()]
        self._add(self._summary(value=values), step)

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        self._add(self._text_pb("hparams", str(params)), 0)

    def log_artifact(self, name: str, path: str, *, kind: str = "file") -> None:
        self._add(self._text_pb(f"artifact/{name}", f"[{kind}] {path}"), 0)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()  # flushes pending events first


LOG_STORE_CLASSES: tuple[type[LogStore], ...] = (JSONLLogStore, MultiplexLogStore, NullLogStore, TensorBoardLogStore)
