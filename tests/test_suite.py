"""The suite itself: every nox pytest run has a per-test timeout, and the tests that press Ctrl-C pass when
the suite was started with SIGINT ignored (``nohup nox &``: every child inherits the ignored signal)."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

# Every test that interrupts a process with SIGINT.
CTRL_C_TESTS = [
    "packages/evsys-core/tests/test_executors.py::test_ctrl_c_cancels_running_and_pending_arms_then_resume_continues",
    "packages/evsys-core/tests/test_search.py::test_ctrl_c_then_resume",
    "tests/test_examples.py::test_ctrl_c_then_resume_reruns_only_unfinished_arms",
]


def test_every_test_that_sends_sigint_restores_it() -> None:
    """A test module that sends SIGINT restores its default first (``kit.interruptible()`` in this
    process, ``preexec_fn=default_sigint`` for a child), or it hangs or fails under ``nohup nox &``."""
    senders = [
        path
        for path in [*ROOT.glob("packages/*/tests/test_*.py"), *ROOT.glob("tests/test_*.py")]
        if path.name != "test_suite.py"
        and any(sends in path.read_text(encoding="utf-8") for sends in ("SIGINT", "interrupt_once_run"))
    ]
    assert len(senders) >= 4, senders
    for path in senders:
        text = path.read_text(encoding="utf-8")
        assert "interruptible()" in text or "preexec_fn=default_sigint" in text, path


def test_every_nox_pytest_run_has_a_timeout() -> None:
    source = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    runs = re.findall(r"session\.run\(\s*\"pytest\".*", source)
    assert len(runs) >= 5 and all("*TIMEOUT" in run for run in runs), runs
    installs = [line for line in re.findall(r"session\.install\(.*", source) if "pytest" in line.lower()]
    assert installs and all("*PYTEST" in line and '"pytest"' not in line for line in installs), installs
    assert 'PYTEST = ("pytest", "pytest-timeout")' in source


def test_ctrl_c_tests_pass_with_sigint_ignored() -> None:
    ignore_then_test = (
        "import signal, subprocess, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "sys.exit(subprocess.call([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', "
        "'--timeout', '120', *sys.argv[1:]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", ignore_then_test, *CTRL_C_TESTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"{len(CTRL_C_TESTS)} passed" in done.stdout
