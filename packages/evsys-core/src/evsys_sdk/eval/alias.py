"""Alias matching: a prediction is right when it names the expected slug or one of its aliases."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["AliasMatcher"]


def _targets(key: str, value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{where}: aliases of {key!r} must be a string or a list of strings, got {value!r}")


class AliasMatcher:
    """Which predicted slugs count as the expected one.

    ``primary_aliases`` maps a slug to one alias, ``secondary_aliases`` a slug to several. With
    ``bidirectional=True`` (default) every pair links both ways and links are transitive: each slug
    accepts its whole equivalence class. With ``bidirectional=False`` a pair ``{a: b}`` only lets ``a``
    accept ``b`` (and whatever ``b`` accepts), never ``b`` accept ``a``.
    """

    def __init__(
        self,
        primary_aliases: Mapping[str, Any] | None = None,
        secondary_aliases: Mapping[str, Any] | None = None,
        *,
        bidirectional: bool = True,
    ):
        self.bidirectional = bidirectional
        self._edges: dict[str, set[str]] = {}
        for where, mapping in (("primary_aliases", primary_aliases), ("secondary_aliases", secondary_aliases)):
            for key, value in (mapping or {}).items():
                for target in _targets(key, value, where):
                    self._link(str(key), target)
        self._closure: dict[str, frozenset[str]] = {}

    def _link(self, a: str, b: str) -> None:
        if not a or not b or a == b:
            return
        self._edges.setdefault(a, set()).add(b)
        if self.bidirectional:
            self._edges.setdefault(b, set()).add(a)

    def _accepted(self, expected: str) -> frozenset[str]:
        cached = self._closure.get(expected)
        if cached is not None:
            return cached
        seen, stack = {expected}, [expected]
        while stack:
            for nxt in self._edges.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        result = frozenset(seen)
        if self.bidirectional:  # a class is shared by all its members
            for member in result:
                self._closure[member] = result
        else:
            self._closure[expected] = result
        return result

    def matches(self, expected: str, predicted: str) -> bool:
        """True if ``predicted`` is ``expected`` or an accepted alias of it; False if either is empty."""
        if not expected or not predicted:
            return False
        return predicted == expected or predicted in self._accepted(expected)

    def accepted_slugs(self, expected: str) -> list[str]:
        """``[expected, *sorted aliases]``."""
        return [expected, *sorted(self._accepted(expected) - {expected})] if expected else [expected]

    def found_in(self, expected: str, returned: Iterable[str]) -> bool:
        """True if any of ``returned`` matches ``expected``."""
        return any(self.matches(expected, r) for r in returned)

    @classmethod
    def from_files(
        cls,
        primary_path: str | os.PathLike[str],
        secondary_path: str | os.PathLike[str] | None = None,
        *,
        bidirectional: bool = True,
    ) -> AliasMatcher:
        """Read JSON objects from the files; a missing secondary file is ignored."""
        primary = _read_mapping(Path(primary_path))
        secondary = None
        if secondary_path is not None and Path(secondary_path).exists():
            secondary = _read_mapping(Path(secondary_path))
        return cls(primary, secondary, bidirectional=bidirectional)


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: an alias file must hold a JSON object, got {type(data).__name__}")
    return data
