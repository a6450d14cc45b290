from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from evsys_sdk.base.errors import UnknownKindError
from evsys_sdk.builtins.log_stores import (
    LOG_STORE_CLASSES,
    JSONLLogStore,
    MultiplexLogStore,
    TensorBoardLogStore,
)
from evsys_sdk.plugins.host import PluginHost, use_host
from evsys_sdk.spec.null_log_store import NullLogStore
from evsys_sdk.spec.protocols import LogStore


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _every_write(store: LogStore) -> list[Callable[[], None]]:
    return [
        lambda: store.log_scalar("loss", 1.0, 1),
        lambda: store.log_metrics({"loss": 1.0}, 1),
        lambda: store.log_hyperparams({"lr": 0.1}),
        lambda: store.log_artifact("a", "/a"),
    ]


# --- jsonl -------------------------------------------------------------------------------------------


def test_jsonl_writes_one_line_per_call_visible_before_close(tmp_path: Path) -> None:
    store = JSONLLogStore(log_dir=str(tmp_path / "a" / "logs"))
    before = time.time()
    store.log_metrics({"loss": 0.5, "acc": 1}, step=3)
    store.log_scalar("lr", 1e-4, 4)

    # flushed per line: readable while the store is still open (a crash keeps them)
    rows = _lines(tmp_path / "a" / "logs" / "metrics.jsonl")
    assert [(r["step"], r["metrics"]) for r in rows] == [(3, {"loss": 0.5, "acc": 1}), (4, {"lr": 1e-4})]
    assert set(rows[0]) == {"ts", "step", "metrics"}
    assert before <= rows[0]["ts"] <= rows[1]["ts"] <= time.time()
    assert isinstance(rows[0]["metrics"]["acc"], int)  # ints stay ints
    store.close()


def test_jsonl_expands_user_and_uses_custom_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = JSONLLogStore(
        log_dir="~/runs/x", metrics_file="m.jsonl", hyperparams_file="h.json", artifacts_file="a.json"
    )
    store.log_scalar("loss", 1.0, 0)
    store.log_hyperparams({"lr": 0.1})
    store.log_artifact("ckpt", "/c")
    store.close()
    assert sorted(p.name for p in (tmp_path / "runs" / "x").iterdir()) == ["a.json", "h.json", "m.jsonl"]


def test_jsonl_nan_and_inf_become_null_so_every_line_is_valid_json(tmp_path: Path) -> None:
    store = JSONLLogStore(log_dir=str(tmp_path))
    store.log_metrics({"a": math.nan, "b": math.inf, "c": -math.inf, "d": 2.5}, 1)
    store.close()
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    # parse_constant fires on NaN/Infinity: strict JSON must never need it
    row = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert row["metrics"] == {"a": None, "b": None, "c": None, "d": 2.5}


class _Floaty:
    def __float__(self) -> float:
        return 0.25


def test_jsonl_coerces_number_like_values(tmp_path: Path) -> None:
    store = JSONLLogStore(log_dir=str(tmp_path))
    store.log_metrics({"flag": True, "dec": Decimal("1.5"), "frac": Fraction(1, 4), "obj": _Floaty()}, 0)  # type: ignore[dict-item]
    store.close()
    metrics = _lines(tmp_path / "metrics.jsonl")[0]["metrics"]
    assert metrics == {"flag": 1, "dec": 1.5, "frac": 0.25, "obj": 0.25}
    assert type(metrics["flag"]) is int  # a number, not JSON true


@pytest.mark.parametrize("bad", ["0.5", None, [1.0], b"1"])
def test_jsonl_rejects_non_numbers_naming_the_key(tmp_path: Path, bad: Any) -> None:
    store = JSONLLogStore(log_dir=str(tmp_path))
    with pytest.raises(TypeError, match="metric 'loss' must be a number"):
        store.log_metrics({"ok": 1.0, "loss": bad}, 0)
    store.close()
    assert (tmp_path / "metrics.jsonl").read_text() == ""  # nothing half-written


def test_jsonl_step_must_be_an_integer(tmp_path: Path) -> None:
    store = JSONLLogStore(log_dir=str(tmp_path))
    with pytest.raises(TypeError):
        store.log_scalar("loss", 1.0, 1.5)  # type: ignore[arg-type]
    store.close()


def test_jsonl_fresh_store_starts_a_fresh_record(tmp_path: Path) -> None:
    old = JSONLLogStore(log_dir=str(tmp_path))
    old.log_scalar("loss", 9.0, 1)
    old.log_hyperparams({"old_only": True})
    old.log_artifact("old_ckpt", "/old")
    old.close()

    new = JSONLLogStore(log_dir=str(tmp_path))
    assert (tmp_path / "metrics.jsonl").read_text() == ""
    assert not (tmp_path / "hyperparams.json").exists()
    assert not (tmp_path / "artifacts.json").exists()
    new.log_scalar("loss", 1.0, 1)
    new.log_hyperparams({"lr": 0.1})
    new.log_artifact("ckpt", "/new")
    new.close()

    assert [r["metrics"] for r in _lines(tmp_path / "metrics.jsonl")] == [{"loss": 1.0}]
    assert json.loads((tmp_path / "hyperparams.json").read_text()) == {"lr": 0.1}
    assert [a["name"] for a in json.loads((tmp_path / "artifacts.json").read_text())] == ["ckpt"]


def test_jsonl_hyperparams_merge_across_calls(tmp_path: Path) -> None:
    store = JSONLLogStore(log_dir=str(tmp_path))
    store.log_hyperparams({"lr": 0.1, "model": {"name": "m"}})
    store.log_hyperparams({"lr": 0.2, "seed": 7})
    store.close()
    text = (tmp_path / "hyperparams.json").read_text()
    assert json.loads(text) == {"lr": 0.2, "model": {"name": "m"}, "seed": 7}
    assert '\n  "lr": 0.2' in text  # 2-space indent


def test_jsonl_artifacts_accumulate_with_kind_and_ts(tmp_path: Path) -> None:
    store = JSONLLogStore(log_dir=str(tmp_path))
    before = time.time()
    store.log_artifact("ckpt", "/run/ckpt")
    store.log_artifact("final", "s3://b/final", kind="checkpoint")
    store.close()
    artifacts = json.loads((tmp_path / "artifacts.json").read_text())
    assert [(a["name"], a["path"], a["kind"]) for a in artifacts] == [
        ("ckpt", "/run/ckpt", "file"),
        ("final", "s3://b/final", "checkpoint"),
    ]
    assert all(before <= a["ts"] <= time.time() for a in artifacts)


def test_jsonl_json_files_are_rewritten_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JSONLLogStore(log_dir=str(tmp_path))
    store.log_hyperparams({"lr": 0.1})
    store.log_artifact("a", "/a")

    def crash(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.log_hyperparams({"lr": 0.2})
    with pytest.raises(OSError, match="disk full"):
        store.log_artifact("b", "/b")
    monkeypatch.undo()
    store.close()
    # the previous complete files survive and no temp file is left behind
    assert json.loads((tmp_path / "hyperparams.json").read_text()) == {"lr": 0.1}
    assert [a["name"] for a in json.loads((tmp_path / "artifacts.json").read_text())] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts.json", "hyperparams.json", "metrics.jsonl"]


def test_jsonl_every_write_after_close_raises(tmp_path: Path) -> None:
    store = JSONLLogStore(log_dir=str(tmp_path))
    store.log_scalar("loss", 1.0, 0)
    store.close()
    store.close()  # idempotent
    for call in _every_write(store):
        with pytest.raises(RuntimeError, match="is closed"):
            call()
    assert len(_lines(tmp_path / "metrics.jsonl")) == 1
    assert not (tmp_path / "hyperparams.json").exists()
    assert not (tmp_path / "artifacts.json").exists()


def test_jsonl_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        JSONLLogStore()
    with pytest.raises(ValidationError, match="log_dri"):
        JSONLLogStore(log_dir="x", log_dri="y")


# --- null --------------------------------------------------------------------------------------------


def test_null_store_accepts_everything_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = NullLogStore()
    store.log_scalar("loss", 1.0, 0)
    store.log_metrics({"loss": math.nan}, 1)
    store.log_hyperparams({"lr": 0.1})
    store.log_artifact("a", "/a", kind="dir")
    store.close()
    store.log_scalar("loss", 1.0, 2)  # a no-op even after close
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValidationError):
        NullLogStore(log_dir="x")


# --- multiplex ---------------------------------------------------------------------------------------


class Recording:
    """A log store that records its calls, so fan-out order and arguments can be checked."""

    name: ClassVar[str] = "recording"
    calls: ClassVar[list[tuple[Any, ...]]] = []

    def __init__(self, tag: str, fail_close: bool = False) -> None:
        self.tag, self.fail_close = tag, fail_close

    def log_scalar(self, key: str, value: float, step: int) -> None:
        self.calls.append((self.tag, "scalar", key, value, step))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.calls.append((self.tag, "metrics", metrics, step))

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        self.calls.append((self.tag, "hyperparams", params))

    def log_artifact(self, name: str, path: str, *, kind: str = "file") -> None:
        self.calls.append((self.tag, "artifact", name, path, kind))

    def close(self) -> None:
        self.calls.append((self.tag, "close"))
        if self.fail_close:
            raise OSError(f"{self.tag} cannot close")


@pytest.fixture
def host() -> Iterator[PluginHost]:
    Recording.calls = []
    with use_host(PluginHost(entry_points=False)) as isolated:
        isolated.registries["log_store"].add(Recording)
        yield isolated


def _child(tag: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "recording", "params": {"tag": tag, **extra}}


def test_multiplex_fans_out_every_call_in_order(host: PluginHost) -> None:
    store = MultiplexLogStore(children=[_child("a"), _child("b")])
    assert [c.tag for c in store.children if isinstance(c, Recording)] == ["a", "b"]
    store.log_scalar("loss", 1.0, 1)
    store.log_metrics({"acc": 0.5}, 2)
    store.log_hyperparams({"lr": 0.1})
    store.log_artifact("ckpt", "/c", kind="checkpoint")
    store.close()
    assert Recording.calls == [
        ("a", "scalar", "loss", 1.0, 1), ("b", "scalar", "loss", 1.0, 1),
        ("a", "metrics", {"acc": 0.5}, 2), ("b", "metrics", {"acc": 0.5}, 2),
        ("a", "hyperparams", {"lr": 0.1}), ("b", "hyperparams", {"lr": 0.1}),
        ("a", "artifact", "ckpt", "/c", "checkpoint"), ("b", "artifact", "ckpt", "/c", "checkpoint"),
        ("a", "close"), ("b", "close"),
    ]  # fmt: skip


def test_multiplex_builds_registered_builtins(host: PluginHost, tmp_path: Path) -> None:
    store = MultiplexLogStore(
        children=[
            {"kind": "jsonl", "params": {"log_dir": str(tmp_path / "jsonl")}},
            {"kind": "null"},
            {"kind": "jsonl", "params": {"log_dir": str(tmp_path / "copy")}},
        ]
    )
    assert [type(c) for c in store.children] == [JSONLLogStore, NullLogStore, JSONLLogStore]
    store.log_metrics({"loss": 0.5}, 1)
    store.log_hyperparams({"lr": 0.1})
    store.close()
    for sub in ("jsonl", "copy"):
        assert [r["metrics"] for r in _lines(tmp_path / sub / "metrics.jsonl")] == [{"loss": 0.5}]
        assert json.loads((tmp_path / sub / "hyperparams.json").read_text()) == {"lr": 0.1}


def test_multiplex_close_swallows_and_logs_child_errors(host: PluginHost, caplog: pytest.LogCaptureFixture) -> None:
    store = MultiplexLogStore(children=[_child("a", fail_close=True), _child("b")])
    with caplog.at_level(logging.WARNING, logger="evsys"):
        store.close()
    assert ("b", "close") in Recording.calls  # the failure did not stop the next child
    [record] = [r for r in caplog.records if "failed to close" in r.getMessage()]
    assert record.name == "evsys.log_stores" and record.exc_info is not None
    assert "a cannot close" in str(record.exc_info[1])


def test_multiplex_rejects_calls_after_close(host: PluginHost) -> None:
    store = MultiplexLogStore(children=[_child("a")])
    store.close()
    for call in _every_write(store):
        with pytest.raises(RuntimeError, match="closed"):
            call()
    assert Recording.calls == [("a", "close")]


def test_multiplex_unknown_child_kind_closes_the_children_already_built(host: PluginHost) -> None:
    with pytest.raises(UnknownKindError, match="jsnol"):
        MultiplexLogStore(children=[_child("a"), {"kind": "jsnol", "params": {}}])
    assert Recording.calls == [("a", "close")]


def test_multiplex_config_is_strict(host: PluginHost) -> None:
    with pytest.raises(ValidationError):
        MultiplexLogStore()
    with pytest.raises(ValidationError, match="parms"):
        MultiplexLogStore(children=[{"kind": "null", "parms": {}}])
    with pytest.raises(ValidationError):
        MultiplexLogStore(children=[{"params": {}}])  # kind is required


# --- tensorboard -------------------------------------------------------------------------------------


def test_tensorboard_missing_gives_the_install_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [m for m in sys.modules if m.startswith("tensorboard.")]:
        monkeypatch.delitem(sys.modules, name)  # an earlier test may have imported it
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # makes every tensorboard import fail
    with pytest.raises(ImportError, match=r'pip install "evsys-core\[tensorboard\]"'):
        TensorBoardLogStore(log_dir=str(tmp_path))


def test_tensorboard_config_and_module_import_need_no_tensorboard() -> None:
    code = (
        "import sys; from evsys_sdk.builtins.log_stores import TensorBoardLogStore as T;"
        "s = T.Config.model_json_schema(); assert s['required'] == ['log_dir'], s;"
        "assert T.Config(log_dir='x').flush_secs == 30;"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorboard', 'torch', 'numpy')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.tensorboard
def test_tensorboard_writes_readable_events(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    store = TensorBoardLogStore(log_dir=str(tmp_path), flush_secs=1)
    store.log_scalar("loss", 0.5, 1)
    store.log_metrics({"loss": 0.25, "acc": 0.75}, 2)
    store.log_hyperparams({"lr": 0.1})
    store.log_artifact("ckpt", "/c", kind="checkpoint")
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError, match="is closed"):
        store.log_scalar("loss", 1.0, 3)

    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(1, 0.5), (2, 0.25)]
    assert [(e.step, e.value) for e in events.Scalars("acc")] == [(2, 0.75)]
    texts = {tag: events.Tensors(tag)[0].tensor_proto.string_val[0].decode() for tag in events.Tags()["tensors"]}
    assert texts == {"hparams": "{'lr': 0.1}", "artifact/ckpt": "[checkpoint] /c"}


# --- all ---------------------------------------------------------------------------------------------


def test_log_store_classes_satisfy_the_protocol(tmp_path: Path) -> None:
    assert {cls.name: cls for cls in LOG_STORE_CLASSES} == {
        "jsonl": JSONLLogStore,
        "multiplex": MultiplexLogStore,
        "null": NullLogStore,
        "tensorboard": TensorBoardLogStore,
    }
    stores: list[LogStore] = [JSONLLogStore(log_dir=str(tmp_path)), MultiplexLogStore(children=[]), NullLogStore()]
    assert all(isinstance(s, LogStore) for s in stores)
    for s in stores:
        s.close()


class RunAware(Recording):
    """A store that logs per run elsewhere: told which run it logs, and how the run ended."""

    name: ClassVar[str] = "run_aware"

    def start_run(self, ctx: Any) -> None:
        self.calls.append((self.tag, "start", ctx.run_id))

    def end_run(self, status: str) -> None:
        self.calls.append((self.tag, "end", status))


@pytest.mark.parametrize("fail", [False, True])
def test_a_run_aware_store_in_a_multiplex_hears_the_start_and_the_end_of_its_run(
    host: PluginHost, tmp_path: Path, fail: bool
) -> None:
    from evsys_sdk.run.runner import run_experiment
    from evsys_sdk.testing.configs import mock_experiment_config

    host.registries["log_store"].add(RunAware)
    cfg = mock_experiment_config(tmp_path, params={"max_steps": 2}, backend_params={"fail_on_prepare": fail})
    cfg["log_store"] = {"kind": "multiplex", "params": {"children": [_child("plain"), {"kind": "run_aware"}]}}
    cfg["log_store"]["params"]["children"][1]["params"] = {"tag": "aware"}
    [result] = run_experiment(cfg)
    aware = [c for c in Recording.calls if c[0] == "aware"]
    if fail:  # failed before the run had a context: nothing to start, only the end
        assert result.status == "failed"
        assert aware == [("aware", "end", "failed"), ("aware", "close")]
    else:
        assert result.status == "completed"
        assert aware[0] == ("aware", "start", "contract") and aware[1][1] == "hyperparams"
        assert aware[-2:] == [("aware", "end", "completed"), ("aware", "close")]
    assert not [c for c in Recording.calls if c[0] == "plain" and c[1] in ("start", "end")]
