"""The bad-input corpus: every user mistake in ``tests/bad_inputs/`` is one clear line and exit 1.

One small config per mistake. Its leading comments say what it gets wrong and what the error says:

    # mistake: a tab in the indentation
    # expect: tab_indent.yaml:6:1: a tab in the indentation   (a substring of the error; repeatable)
    # commands: validate --deep | run                          (optional; default: both)

Each case is run through the installed CLI from a scratch copy of the folder (so data files beside the
configs resolve the same way), and must exit 1 with exactly one ``ERROR:`` line holding every
``expect``, no traceback, and no run directory. Add a mistake by adding a file; files the configs read
(data, benchmarks) live in sub-folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ROOT, evsys

CORPUS = ROOT / "tests" / "bad_inputs"
DEFAULT_COMMANDS = ("validate --deep", "run")


def _header(path: Path) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        key, sep, value = line.lstrip("# ").partition(": ")
        if sep:
            fields.setdefault(key, []).append(value.strip())
    return fields


def _cases() -> list[tuple[str, str]]:
    out = []
    for path in sorted(CORPUS.glob("*.yaml")):
        header = _header(path)
        assert header.get("mistake") and header.get("expect"), f"{path.name} needs `# mistake:` and `# expect:`"
        commands = header["commands"][0].split(" | ") if "commands" in header else DEFAULT_COMMANDS
        out += [(path.name, command) for command in commands]
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("case", "command"), _cases())
def test_mistake_is_one_clear_line(case: str, command: str, tmp_path: Path) -> None:
    work = tmp_path / "bad_inputs"
    shutil.copytree(CORPUS, work)
    proc = evsys(*command.split(), case, cwd=work)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ERROR: ")
    for needle in _header(CORPUS / case)["expect"]:
        assert needle in lines[0]
    assert not (work / "out").exists()  # every case writes under out/: no arm started
