"""Run the docs' runnable code blocks: every fenced ``bash`` block right after a ``<!-- run -->`` comment.

    <!-- run -->                              the block must exit 0
    <!-- run timeout=60 expect="supported" -->  within 60 s (default 120), its output containing the text

The blocks of one page run in order, in one shell state per block but one folder per page: a fresh copy of
the repository's tracked files (what a user who cloned it has), so a page's blocks build on each other
and pages never see each other's outputs. A block fails on its first failing command (``set -euo
pipefail``). Exit 1 when any block fails, after printing its location, command and output.

    python docs/_tools/run_blocks.py                # every page under docs/
    python docs/_tools/run_blocks.py docs/tutorials/sweep.md --list
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!--\s*run(?P<opts>\s.*?)?\s*-->$")
MARKER_START = re.compile(r"^<!--\s*run\b")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w-]*)")
DEFAULT_TIMEOUT = 120.0
ENV = {"EVSYS_STRICT_PLUGINS": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    timeout: float = DEFAULT_TIMEOUT
    expect: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        try:
            return f"{self.path.relative_to(REPO)}:{self.line}"
        except ValueError:
            return f"{self.path}:{self.line}"


class MarkerError(ValueError):
    """A ``<!-- run -->`` marker that does not sit on a bash block or has an unknown option."""


def _options(text: str, where: str) -> tuple[float, list[str]]:
    timeout, expect = DEFAULT_TIMEOUT, []
    for token in shlex.split(text):
        key, sep, value = token.partition("=")
        if key == "timeout" and sep:
            timeout = float(value)
        elif key == "expect" and sep:
            expect.append(value)
        else:
            raise MarkerError(f"{where}: unknown run option {token!r}; use timeout=SECONDS or expect=TEXT")
    return timeout, expect


def parse(path: Path) -> list[Block]:
    """The runnable blocks of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        where = f"{path}:{i + 1}"
        marker = MARKER.match(lines[i].strip())
        if not marker:
            if MARKER_START.match(lines[i].strip()):
                raise MarkerError(f"{where}: a run marker is one line: <!-- run [timeout=S] [expect=TEXT] -->")
            i += 1
            continue
        timeout, expect = _options(marker.group("opts") or "", where)
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        fence = FENCE.match(lines[j].strip()) if j < len(lines) else None
        if fence is None or fence.group("lang") not in ("bash", "sh", "console"):
            raise MarkerError(f"{where}: <!-- run --> must be followed by a ```bash block")
        end = j + 1
        while end < len(lines) and not lines[end].strip().startswith(fence.group("fence")):
            end += 1
        if end == len(lines):
            raise MarkerError(f"{where}: the block after <!-- run --> is never closed")
        indent = len(lines[j]) - len(lines[j].lstrip())
        code = "\n".join(line[indent:] for line in lines[j + 1 : end])
        blocks.append(Block(path, j + 1, code, timeout, expect))
        i = end + 1
    return blocks


def copy_repo(dest: Path) -> None:
    """The repository's tracked files (a fresh clone's content, with uncommitted edits) into ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = raw.decode()
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def run_block(block: Block, cwd: Path) -> tuple[bool, str, float]:
    """Run one block in ``cwd``: (passed, output, seconds)."""
    env = {**os.environ, **ENV}
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout kills what the block started too
    )
    try:
        out, _ = proc.communicate(timeout=block.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return False, f"{out}\ntimed out after {block.timeout:g} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything the block left running in the background
    except ProcessLookupError:
        pass
    if proc.returncode != 0:
        return False, f"{out}\nexit status {proc.returncode}", seconds
    missing = [text for text in block.expect if text not in out]
    if missing:
        return False, f"{out}\noutput lacks {missing!r}", seconds
    return True, out, seconds


def run_pages(paths: list[Path]) -> int:
    """Run every page's blocks; print one line per block; 0 when all passed, else 1."""
    failures, count, total = 0, 0, 0.0
    for path in paths:
        blocks = parse(path)
        if not blocks:
            continue
        with tempfile.TemporaryDirectory(prefix="evsys-docs-") as tmp:
            work = Path(tmp)
            copy_repo(work)
            for block in blocks:
                passed, output, seconds = run_block(block, work)
                count, total = count + 1, total + seconds
                print(f"{'ok  ' if passed else 'FAIL'} {block.where} ({seconds:.1f} s)", flush=True)
                if not passed:
                    failures += 1
                    print("---- command\n" + block.code + "\n---- output (last 40 lines)")
                    print("\n".join(output.splitlines()[-40:]) + "\n----", flush=True)
    print(f"{count - failures}/{count} runnable blocks passed in {total:.1f} s")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pages", nargs="*", type=Path, help="Markdown files (default: every page under docs/)")
    parser.add_argument("--list", action="store_true", help="list the runnable blocks, run nothing")
    args = parser.parse_args(argv)
    pages = [p.resolve() for p in args.pages] or sorted((REPO / "docs").rglob("*.md"))
    try:
        if args.list:
            for path in pages:
                for block in parse(path):
                    print(f"{block.where}: {block.code.splitlines()[0] if block.code else ''}")
            return 0
        return run_pages(pages)
    except MarkerError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
