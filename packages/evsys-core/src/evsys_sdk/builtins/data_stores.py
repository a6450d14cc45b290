"""Built-in data stores: ``local`` (files under a root directory) and ``in_memory`` (tests, notebooks)."""

from __future__ import annotations

import copy
import glob
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from evsys_sdk.base.io import atomic_write_json, atomic_write_text, iter_jsonl_values
from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.params import FIXED
from evsys_sdk.spec.protocols import DataStore


def _fspath(value: Any) -> Any:
    """A path object (``Path``, any ``os.PathLike``) as its string; other values go on to validation."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


class LocalDataStore:
    """Files on disk. Relative paths resolve under ``root``; absolute paths are used as they are.

    Writes are atomic (temp file + rename), so a reader never sees half a file.
    """

    name: ClassVar[str] = "local"

    class Config(StrictModel):
        root: Annotated[str, BeforeValidator(_fspath)] = Field(
            default=".", description="folder relative data paths resolve against", json_schema_extra=FIXED
        )

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.root = Path(self.config.root).expanduser().resolve()

    def _path(self, path: str) -> Path:
        return self.root / Path(path).expanduser()  # joining an absolute path yields that path

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else path.as_posix()

    def read_jsonl(self, path: str) -> list[dict[str, Any]]:
        return list(self.iter_jsonl(path))

    def iter_jsonl(self, path: str) -> Iterator[dict[str, Any]]:
        """The rows one at a time (validation streams a file of any size through this)."""
        where = self._path(path)
        for lineno, value in iter_jsonl_values(where):
            if not isinstance(value, dict):
                raise ValueError(f"{where}:{lineno}: a row must be a JSON object, got {type(value).__name__}")
            yield value

    def write_jsonl(self, path: str, rows: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
        atomic_write_text(self._path(path), text)

    def read_json(self, path: str) -> Any:
        return json.loads(self._path(path).read_text(encoding="utf-8"))

    def write_json(self, path: str, value: Any) -> None:
        atomic_write_json(self._path(path), value)

    def exists(self, path: str) -> bool:
        return self._path(path).exists()

    def list(self, prefix: str = "") -> list[str]:
        """Files under ``prefix`` if it is a directory (recursively), else files matching it as a glob;
        paths relative to ``root`` (absolute when outside it), sorted."""
        base = self._path(prefix)
        if base.is_dir():
            found = (p for p in base.rglob("*") if p.is_file())
        else:
            found = (Path(p) for p in glob.glob(str(base), recursive=True) if Path(p).is_file())
        return sorted(self._relative(p) for p in found)


class InMemoryDataStore:
    """Values in dicts keyed by path: JSONL rows and JSON values apart, as two files would be.

    Values are deep-copied in and out, so a caller mutating what it wrote or read cannot change the
    store, just as with files.
    """

    name: ClassVar[str] = "in_memory"

    class Config(StrictModel):
        pass

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self._jsonl: dict[str, list[dict[str, Any]]] = {}
        self._json: dict[str, Any] = {}

    def read_jsonl(self, path: str) -> list[dict[str, Any]]:
        if path not in self._jsonl:
            raise FileNotFoundError(f"in_memory data store has no JSONL at {path!r}")
        return copy.deepcopy(self._jsonl[path])

    def write_jsonl(self, path: str, rows: Iterable[dict[str, Any]]) -> None:
        self._jsonl[path] = copy.deepcopy(list(rows))

    def read_json(self, path: str) -> Any:
        if path not in self._json:
            raise FileNotFoundError(f"in_memory data store has no JSON at {path!r}")
        return copy.deepcopy(self._json[path])

    def write_json(self, path: str, value: Any) -> None:
        self._json[path] = copy.deepcopy(value)

    def exists(self, path: str) -> bool:
        return path in self._jsonl or path in self._json

    def list(self, prefix: str = "") -> list[str]:
        return sorted({key for key in (*self._jsonl, *self._json) if key.startswith(prefix)})


DATA_STORE_CLASSES: tuple[type[DataStore], ...] = (LocalDataStore, InMemoryDataStore)
