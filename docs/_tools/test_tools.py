"""The docs session's own tools: a failing runnable block fails the run, a missing link target is found."""

from __future__ import annotations

from pathlib import Path

import check_links
import pytest
import run_blocks


def _page(tmp_path: Path, text: str, name: str = "page.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_parse_finds_only_marked_bash_blocks_with_their_options(tmp_path):
    page = _page(
        tmp_path,
        "# t\n\n```bash\necho not marked\n```\n\n<!-- run -->\n```bash\necho one\necho two\n```\n\n"
        '<!-- run timeout=5 expect="two words" expect=x expect="<a>b</a>" -->\n\n```bash\necho three\n```\n',
    )
    blocks = run_blocks.parse(page)
    assert [b.code for b in blocks] == ["echo one\necho two", "echo three"]
    assert [b.line for b in blocks] == [8, 15]
    assert (blocks[0].timeout, blocks[0].expect) == (run_blocks.DEFAULT_TIMEOUT, [])
    assert (blocks[1].timeout, blocks[1].expect) == (5.0, ["two words", "x", "<a>b</a>"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- run -->\n```yaml\na: 1\n```\n", "must be followed by a ```bash block"),
        ("<!-- run -->\nprose\n", "must be followed by a ```bash block"),
        ("<!-- run -->\n```bash\necho\n", "never closed"),
        ("<!-- run retries=3 -->\n```bash\necho\n```\n", "unknown run option 'retries=3'"),
        ("<!-- run timeout=5\n-->\n```bash\necho\n```\n", "a run marker is one line"),
    ],
)
def test_a_misplaced_or_misspelt_marker_is_an_error_naming_its_line(tmp_path, text, message):
    page = _page(tmp_path, text)
    with pytest.raises(run_blocks.MarkerError, match=r"page\.md:1: .*") as err:
        run_blocks.parse(page)
    assert message in str(err.value)


def test_blocks_of_a_page_share_a_fresh_copy_of_the_repository(tmp_path, capsys):
    page = _page(
        tmp_path,
        "<!-- run -->\n```bash\ntest -f noxfile.py && test ! -e .venv && echo made > made.txt\n```\n"
        '<!-- run expect="made" -->\n```bash\ncat made.txt\n```\n',
    )
    assert run_blocks.run_pages([page]) == 0
    assert "2/2 runnable blocks passed" in capsys.readouterr().out
    assert not (run_blocks.REPO / "made.txt").exists()


@pytest.mark.parametrize(
    ("block", "why"),
    [
        ("<!-- run -->\n```bash\necho before\nfalse\necho after\n```\n", "exit status 1"),
        ("<!-- run -->\n```bash\nfalse | cat\n```\n", "exit status 1"),
        ("<!-- run -->\n```bash\necho $UNSET_VARIABLE_OF_THE_DOCS_TEST\n```\n", "exit status 1"),
        ('<!-- run expect="supported" -->\n```bash\necho contradicted\n```\n', "output lacks ['supported']"),
        ("<!-- run timeout=1 -->\n```bash\nsleep 30 &\nsleep 30\n```\n", "timed out after 1 s"),
    ],
)
def test_a_failing_block_fails_the_run_and_shows_why(tmp_path, capsys, block, why):
    page = _page(tmp_path, "<!-- run -->\n```bash\necho fine\n```\n\n" + block)
    assert run_blocks.run_pages([page]) == 1
    captured = capsys.readouterr()
    assert "ok   " in captured.out and "FAIL " in captured.out and "1/2 runnable blocks passed" in captured.out
    assert why in captured.out


def test_the_cli_exits_1_on_a_failing_page_and_0_on_a_passing_one(tmp_path):
    good = _page(tmp_path, "<!-- run -->\n```bash\ntrue\n```\n", "good.md")
    bad = _page(tmp_path, "<!-- run -->\n```bash\nexit 3\n```\n", "bad.md")
    assert run_blocks.main([str(good)]) == 0
    assert run_blocks.main([str(good), str(bad)]) == 1
    assert run_blocks.main([str(_page(tmp_path, "<!-- run x -->\n```bash\ntrue\n```\n", "typo.md"))]) == 1


def test_links_and_md_names_must_resolve(tmp_path, monkeypatch):
    monkeypatch.setattr(check_links, "REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("x")
    (tmp_path / "README.md").write_text("x")
    page = _page(
        tmp_path / "docs",
        "[ok](there.md#a) [up](../README.md) [web](https://example.org/x.md) [anchor](#here)\n"
        "[gone](missing.md) ![img](pics/none.png)\n"
        "See DESIGN_NOTES.md and `docs/there.md` and `spec/RULES.md`.\n"
        "```text\n[inside a fence](nowhere.md) NOTES.md\n```\n"
        "[ref]: ../nope/VENDORS.md\n",
    )
    assert check_links.check_file(page) == [
        "docs/page.md:2: link to missing.md, which the repository does not have",
        "docs/page.md:2: link to pics/none.png, which the repository does not have",
        "docs/page.md:3: names DESIGN_NOTES.md, which the repository does not have",
        "docs/page.md:3: names spec/RULES.md, which the repository does not have",
        "docs/page.md:7: link to ../nope/VENDORS.md, which the repository does not have",
    ]


def test_the_repository_itself_has_no_missing_targets():
    assert [p for path in check_links.markdown_files() for p in check_links.check_file(path)] == []
