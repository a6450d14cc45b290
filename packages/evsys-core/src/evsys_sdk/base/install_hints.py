"""Install commands for evsys packages that work where the user is: the published name, and beside it,
from a checkout of the evsys repository, the ``./packages/<dist>`` path pip installs from there."""

from __future__ import annotations

import re
from pathlib import Path

_REQUIREMENT = re.compile(r"^(evsys-[a-z0-9-]+)(\[[a-z0-9_,-]+\])?$")


def checkout_package(dist: str) -> Path | None:
    """``packages/<dist>`` of the evsys checkout around the current directory or around this module."""
    starts = [Path(__file__).resolve().parent]
    try:
        starts.insert(0, Path.cwd())
    except OSError:  # the current directory was removed
        pass
    for start in starts:
        for folder in (start, *start.parents):
            if (folder / "packages" / dist / "pyproject.toml").is_file():
                return folder / "packages" / dist
    return None


def _arg(requirement: str) -> str:
    return f'"{requirement}"' if "[" in requirement else requirement


def pip_install(requirement: str, *others: str) -> str:
    """``pip install evsys-tinker (from this checkout: pip install ./packages/evsys-tinker)``; extras
    too (``evsys-core[plot]``). Outside a checkout, only the published name. ``others`` are further
    arguments of both commands (a pin such as ``"torch==2.13.0"``)."""
    tail = "".join(f" {o}" for o in others)
    published = f"pip install {_arg(requirement)}{tail}"
    match = _REQUIREMENT.match(requirement)
    local = checkout_package(match.group(1)) if match else None
    if match is None or local is None:
        return published
    try:
        where = "./" + local.relative_to(Path.cwd()).as_posix()
    except (ValueError, OSError):
        where = local.as_posix()
    return f"{published} (from this checkout: pip install {_arg(where + (match.group(2) or ''))}{tail})"
