from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from evsys_sdk.base.logger import LEVEL_ENV, configure_logger, get_logger, set_level


def _own_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger("evsys").handlers if h.get_name() == "evsys-stderr"]


@pytest.fixture(autouse=True)
def fresh_evsys_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """An unconfigured ``evsys`` logger for each test; whatever was there before comes back afterwards."""
    log = logging.getLogger("evsys")
    saved_level = log.level
    monkeypatch.setattr(log, "handlers", [])
    monkeypatch.delenv(LEVEL_ENV, raising=False)
    log.setLevel(logging.NOTSET)
    yield log
    log.setLevel(saved_level)


@contextmanager
def bare_root() -> Iterator[None]:
    """A root logger with no handlers, as in a script that never configured logging. Used inside the
    test body: pytest adds its capture handlers to the root only once the test call starts."""
    saved = list(logging.root.handlers)
    for handler in saved:
        logging.root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in saved:
            logging.root.addHandler(handler)


def test_get_logger_names_children_of_evsys() -> None:
    assert get_logger().name == "evsys"
    assert get_logger("runner").name == "evsys.runner"
    assert get_logger("evsys.runner") is get_logger("runner")  # no double prefix
    assert get_logger("evsys") is get_logger()
    assert get_logger("evsys_sdk.x").name == "evsys.evsys_sdk.x"
    assert get_logger("runner").parent is get_logger()


def test_first_get_logger_configures_once_and_never_touches_root() -> None:
    root_handlers, root_level = list(logging.root.handlers), logging.root.level
    for _ in range(3):
        get_logger("a")
        configure_logger()
        configure_logger("DEBUG", fmt="%(message)s")
    set_level("INFO")
    assert len(_own_handlers()) == 1
    assert logging.root.handlers == root_handlers and logging.root.level == root_level


def test_default_level_is_warning() -> None:
    assert get_logger().level == logging.WARNING


@pytest.mark.parametrize(("raw", "level"), [("DEBUG", 10), (" info ", 20), ("warn", 30), ("15", 15), ("", 30)])
def test_level_comes_from_the_env_var(monkeypatch: pytest.MonkeyPatch, raw: str, level: int) -> None:
    monkeypatch.setenv(LEVEL_ENV, raw)
    assert get_logger("x").getEffectiveLevel() == level


def test_invalid_env_level_names_the_var_and_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LEVEL_ENV, "LOUD")
    with pytest.raises(ValueError, match="EVSYS_LOGGING_LEVEL='LOUD'") as info:
        configure_logger()
    for name in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET"):
        assert name in str(info.value)


def test_explicit_level_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LEVEL_ENV, "LOUD")  # not even read when a level is given
    assert configure_logger("error").level == logging.ERROR
    assert configure_logger(5).level == 5


@pytest.mark.parametrize("bad", ["verbose", -1, True])
def test_invalid_explicit_level_raises(bad: str | int) -> None:
    with pytest.raises(ValueError, match="is not a logging level"):
        configure_logger(bad)
    with pytest.raises(ValueError, match="is not a logging level"):
        set_level(bad)


def test_set_level_sticks_even_before_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LEVEL_ENV, "ERROR")
    set_level("DEBUG")
    assert get_logger("late").getEffectiveLevel() == logging.DEBUG  # not reset to the env level
    set_level(logging.CRITICAL)
    assert get_logger().level == logging.CRITICAL


def test_writes_to_the_current_stderr_with_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logger("INFO", fmt="%(levelname)s|%(name)s|%(message)s")
    redirected = io.StringIO()
    monkeypatch.setattr(sys, "stderr", redirected)  # stderr swapped after setup still gets the lines
    with bare_root():
        get_logger("runner").info("hello %s", "world")
        get_logger("runner").debug("hidden")
    assert redirected.getvalue() == "INFO|evsys.runner|hello world\n"
    assert capsys.readouterr().out == ""


def test_reconfiguring_replaces_the_format_without_duplicating(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logger("INFO", fmt="one %(message)s")
    configure_logger("INFO", fmt="two %(message)s")
    with bare_root():
        get_logger().info("x")
    assert capsys.readouterr().err == "two x\n"


def test_defers_to_application_root_handlers(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logger("INFO")
    get_logger("plugins").warning("plugin %s broken", "p")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("evsys.plugins", "plugin p broken")]
    assert capsys.readouterr().err == ""  # printed once, by the root's handlers, not by evsys too


def test_without_propagation_evsys_prints_itself(
    fresh_evsys_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fresh_evsys_logger, "propagate", False)
    configure_logger("INFO", fmt="%(message)s")
    get_logger().info("direct")
    assert capsys.readouterr().err == "direct\n"


def test_fresh_interpreter_logs_to_stderr_at_env_level() -> None:
    code = (
        "from evsys_sdk.base.logger import get_logger\n"
        "log = get_logger('demo')\n"
        "log.debug('debug line'); log.info('info line')\n"
    )
    env = {**os.environ, LEVEL_ENV: "INFO"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout == ""
    assert "INFO evsys.demo: info line" in done.stderr and "debug line" not in done.stderr

    env[LEVEL_ENV] = "chatty"
    failed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert failed.returncode != 0 and "ValueError: EVSYS_LOGGING_LEVEL='chatty'" in failed.stderr
