"""An on-disk completion cache: re-running an eval after a crash re-sends only what is missing.

Key = (client identity, prompt, sampling params, sample index). The client identity is its registry
kind plus its config with secrets removed, so two models never share entries and no key ends up on
disk. Each identity has its own append-only JSONL file; every entry is one ``write`` of one whole line
to a file opened with O_APPEND, so a crash loses at most the entries in flight, and a torn last line
(power loss) is skipped on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CompletionCache", "client_identity"]

_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "auth", "credential", "cookie")


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    if lowered.endswith("_env"):  # the *name* of an environment variable, not its value
        return False
    return any(word in lowered for word in _SECRET_WORDS)


def _public(value: Any) -> Any:
    """A JSON-able copy of ``value`` without secret-looking keys or pydantic secret values."""
    if type(value).__name__ in ("SecretStr", "SecretBytes"):
        return None
    if isinstance(value, Mapping):
        return {str(k): _public(v) for k, v in value.items() if not _is_secret(str(k))}
    if isinstance(value, list | tuple):
        return [_public(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value) if type(value).__repr__ is not object.__repr__ else type(value).__qualname__  # type: ignore[comparison-overlap]


def client_identity(client: Any) -> dict[str, Any]:
    """What distinguishes one model from another: ``client.cache_identity()`` when defined, else the
    registry kind (``name``) or class, plus the public part of ``client.config``."""
    custom = getattr(client, "cache_identity", None)
    if callable(custom):
        return {"custom": _public(custom())}
    kind = getattr(client, "name", None)
    cls = type(client)
    ident: dict[str, Any] = {"kind": kind if isinstance(kind, str) else f"{cls.__module__}.{cls.__qualname__}"}
    config = getattr(client, "config", None)
    dump = getattr(config, "model_dump", None)
    if callable(dump):
        ident["config"] = _public(dump())
    elif isinstance(config, Mapping):
        ident["config"] = _public(config)
    return ident


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class CompletionCache:
    """Completions under ``directory``, one JSONL file per client identity (thread-safe)."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._shards: dict[str, dict[str, str]] = {}
        self._torn: set[str] = set()

    @staticmethod
    def key(prompt: str, sampling: Mapping[str, Any], sample: int = 0) -> str:
        return _digest({"prompt": prompt, "sampling": dict(sampling), "sample": sample})

    def shard(self, identity: Mapping[str, Any]) -> str:
        return _digest(dict(identity))[:32]

    def _path(self, shard: str) -> Path:
        return self.directory / f"{shard}.jsonl"

    def _load(self, shard: str) -> dict[str, str]:
        entries = self._shards.get(shard)
        if entries is not None:
            return entries
        entries = {}
        try:
            data = self._path(shard).read_bytes()
        except FileNotFoundError:
            data = b""
        for line in data.splitlines():
            try:
                record = json.loads(line)
                entries[record["k"]] = record["v"]
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                continue  # a torn line
        if data and not data.endswith(b"\n"):
            self._torn.add(shard)  # the next entry starts on a fresh line
        self._shards[shard] = entries
        return entries

    def get(self, shard: str, key: str) -> str | None:
        with self._lock:
            return self._load(shard).get(key)

    def put(self, shard: str, key: str, completion: str, *, identity: Mapping[str, Any] | None = None) -> None:
        line = json.dumps({"k": key, "v": completion}, ensure_ascii=False) + "\n"
        with self._lock:
            entries = self._load(shard)
            if entries.get(key) == completion:
                return
            path = self._path(shard)
            if not path.exists():
                self.directory.mkdir(parents=True, exist_ok=True)
                if identity is not None:  # a readable note of whose completions these are
                    path.with_suffix(".identity.json").write_text(json.dumps(dict(identity), indent=2) + "\n")
            if shard in self._torn:
                line = "\n" + line
                self._torn.discard(shard)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
            entries[key] = completion

    def __len__(self) -> int:
        with self._lock:
            return sum(len(self._load(p.stem)) for p in self.directory.glob("*.jsonl"))
