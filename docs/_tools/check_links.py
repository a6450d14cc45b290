"""Every Markdown file in the repository points only at files the repository has.

Checked in each tracked ``*.md`` (code blocks and inline code skipped): every relative link target
(``[text](path)``, ``![alt](path)``, ``[ref]: path``; a ``#fragment`` is dropped) must exist relative to
the file, and every other file name ending in ``.md`` that the prose or inline code names must exist
relative to the file or the repository root. URLs and pure ``#anchors`` are not checked (mkdocs checks
the site's anchors). Prints one ``file:line: ...`` per miss and exits 1 when there is one.

    python docs/_tools/check_links.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
MD_NAME = re.compile(r"(?<![\w./-])((?:\.{1,2}/|[\w-]+/)*[\w.-]+\.md)(?![\w/-])")
FENCE = re.compile(r"^\s*(```+|~~~+)")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def markdown_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    return [REPO / raw.decode() for raw in out if raw and (REPO / raw.decode()).is_file()]


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            lines.append((number, line))
    return lines


def check_file(path: Path) -> list[str]:
    """The misses of one Markdown file, as ``file:line: ...`` lines."""
    rel = path.relative_to(REPO)
    problems = []
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        code_spans = [m.group(2) for m in INLINE_CODE.finditer(line)]
        prose = INLINE_CODE.sub(" ", line)
        targets = [m.group(1) for m in LINK.finditer(prose)]
        ref = REF_DEF.match(prose)
        if ref:
            targets.append(ref.group(1))
        for target in targets:
            if EXTERNAL.match(target) or target.startswith("#"):
                continue
            file_part = target.split("#", 1)[0].split("?", 1)[0]
            if file_part and not (path.parent / file_part).exists():
                problems.append(f"{rel}:{number}: link to {target}, which the repository does not have")
        linked = set(targets)
        for text in [LINK.sub(" ", prose), *code_spans]:
            for name in MD_NAME.findall(text):
                if name in linked or EXTERNAL.match(name) or "*" in name or "<" in name:
                    continue
                if not ((path.parent / name).exists() or (REPO / name).exists()):
                    problems.append(f"{rel}:{number}: names {name}, which the repository does not have")
    return problems


def main() -> int:
    files = markdown_files()
    problems = [p for path in files for p in check_file(path)]
    for problem in problems:
        print(problem)
    print(f"{len(files)} Markdown files checked: {len(problems)} missing targets", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
