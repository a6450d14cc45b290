"""Deep validation of the files a config reads: every data file and benchmark exists and parses, and each
training set keeps at least one row through its transforms, before any arm starts.

Files are streamed (one row in memory at a time, each distinct file read once however many arms share
it). Transforms run only when they declare ``pure = True`` (a function of the rows alone, as core's
``identity`` and ``jsonl_to_chat`` are): one that calls a model is left to the run. Rows pulled by
``dataset_id``/``dataset_name`` and hub datasets are resolved when the run starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evsys_sdk.spec.config import DataConfig, ExperimentConfig
from evsys_sdk.spec.problems import Path as KeyPath
from evsys_sdk.spec.problems import Problem


def data_problems(cfg: ExperimentConfig) -> list[Problem]:
    """Problems of every data file and benchmark the config references (the config's kinds are valid)."""
    from evsys_sdk.plugins.registry import registry

    try:
        store = registry("data_store").get(cfg.data_store.kind)(**cfg.data_store.params)
    except Exception as exc:
        return [(("data_store",), f"the data store cannot be opened: {type(exc).__name__}: {exc}")]
    cache: dict[str, list[Problem]] = {}
    out: list[Problem] = []

    def check(data: DataConfig | None, path: KeyPath, *, training: bool) -> None:
        if data is None:
            return
        if data.source_kind == "in_memory" and not data.transforms:  # the common matrix case: no key to build
            found: list[Problem] = [((), _EMPTY)] if training and not data.rows else []
        elif data.source_kind == "in_memory":  # rows already in memory: checking them costs less than a key
            found = _data_problems(data, store, training=training)
        else:
            key = f"{training}\0{data.model_dump_json()}"
            if key not in cache:
                cache[key] = _data_problems(data, store, training=training)
            found = cache[key]
        out.extend(((*path, *p), m) for p, m in found)

    runs = [cfg.run] if cfg.run is not None else cfg.runs or []
    for i, run in enumerate(runs):
        path: KeyPath = ("run",) if cfg.run is not None else ("runs", i)
        check(run.data, (*path, "data"), training=True)
        if run.eval.eval_data is not None:
            check(run.eval.eval_data, (*path, "eval", "eval_data"), training=False)
    for i, data in enumerate(cfg.continual.datasets if cfg.continual else []):
        check(data, ("continual", "datasets", i), training=True)
    return out + _benchmark_problems(cfg.metadata.get("benchmark"))


def _rows(data: DataConfig, store: Any) -> Iterator[dict[str, Any]] | None:
    """The raw rows, streamed where the store can; None when they are only known at run time."""
    if data.dataset_id or data.dataset_name or data.source_kind == "hf_dataset":
        return None
    if data.source_kind == "in_memory":
        return iter(data.rows or [])
    assert data.path is not None
    if not store.exists(data.path):
        raise FileNotFoundError(_missing(data.path, store))
    if data.source_kind == "json":
        from evsys_sdk.loading.data import load_rows

        return iter(load_rows(data, store))
    stream = getattr(store, "iter_jsonl", None)  # optional on a data store: read_jsonl holds every row
    rows: Iterator[dict[str, Any]] = iter(stream(data.path) if callable(stream) else store.read_jsonl(data.path))
    return rows


def _missing(path: str, store: Any) -> str:
    root = getattr(store, "root", None)
    where = f"{Path(root) / path}" if root is not None else path
    return f"data file not found: {where}" + (f" (data paths resolve under the data store root {root})" if root else "")


def _data_problems(data: DataConfig, store: Any, *, training: bool) -> list[Problem]:
    from evsys_sdk.plugins.registry import registry

    where: KeyPath = ("path",) if data.path else ()
    try:
        raw = _rows(data, store)
    except (OSError, ValueError) as exc:  # missing, or a whole-file JSON that does not parse
        return [(where, str(exc))]
    if raw is None:
        return []
    rows = _parsed(raw)
    transforms = [registry("transform").get(t.kind) for t in data.transforms]
    if not all(getattr(cls, "pure", False) for cls in transforms):
        transforms = []  # every line still parses; the transforms wait for the run
    try:
        for cls, spec in zip(transforms, data.transforms, strict=False):
            rows = iter(cls(**spec.params)(rows))
        n = sum(1 for _ in rows)  # counted, never held
    except _BadFile as exc:
        return [(where, str(exc))]
    except Exception as exc:  # a transform rejecting a row
        return [(("transforms",), f"{type(exc).__name__}: {exc}")]
    if n == 0 and training:
        after = f" after transforms ({', '.join(t.kind for t in data.transforms)})" if transforms else ""
        return [(("transforms",) if transforms else where, f"the training set is empty{after}{_NEEDS}")]
    return []


_NEEDS = ": training needs a row"
_EMPTY = f"the training set is empty{_NEEDS}"


class _BadFile(Exception):
    """A line of the data file itself is bad (told apart from a transform failing on a good row)."""


def _parsed(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    try:
        yield from rows
    except (ValueError, UnicodeDecodeError) as exc:  # a JSONDecodeError is a ValueError
        raise _BadFile(str(exc)) from None


def _benchmark_problems(raw: Any) -> list[Problem]:
    """Each benchmark given by ``path``: the folder, its ``tasks.jsonl`` (every task) and ``metadata.yaml``."""
    from evsys_sdk.base.errors import ConfigError
    from evsys_sdk.eval.benchmark import _read_metadata, iter_tasks

    entries = raw if isinstance(raw, list) else [raw] if raw else []
    out: list[Problem] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue  # shape problems are reported by validation; id/name resolve through the store
        where: KeyPath = ("metadata", "benchmark", *([i] if isinstance(raw, list) else []), "path")
        root = Path(entry["path"]).expanduser()
        try:
            if not root.is_dir():
                raise FileNotFoundError(f"benchmark folder not found: {root}")
            if not (root / "tasks.jsonl").is_file():
                raise FileNotFoundError(f"benchmark folder {root} has no tasks.jsonl")
            _read_metadata(root / "metadata.yaml")
            if sum(1 for _ in iter_tasks(root / "tasks.jsonl")) == 0:
                raise ValueError(f"{root / 'tasks.jsonl'} holds no tasks")
        except (OSError, ValueError) as exc:
            out.append((where, str(exc)))
        except ConfigError as exc:
            out.append((where, "; ".join(exc.problems)))
    return out
