"""Atomic file writes (a reader never sees a half-written record) and streamed JSONL reads."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory and a rename."""
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except FileNotFoundError:  # create the directory only when missing: mkdir is a costly syscall here
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], value: Any) -> None:
    """Write ``value`` as 2-space-indented JSON, atomically."""
    atomic_write_text(path, json.dumps(value, indent=2, default=str) + "\n")


def iter_jsonl_values(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line, one line in memory at a time. A bad line raises
    ValueError ``<path>:<line>: invalid JSON: <what> at column <n>`` (the line is the file's own)."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.rstrip()  # a column past the line's end would otherwise read as "line 2 column 1"
            if not text:
                continue
            try:
                yield lineno, json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {exc.msg} at column {exc.colno}") from None
