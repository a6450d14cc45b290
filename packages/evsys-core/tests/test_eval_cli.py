from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from evsys_sdk.cli import eval as eval_cli
from evsys_sdk.cli.main import build_parser, main
from evsys_sdk.plugins.host import PluginHost
from evsys_sdk.plugins.registry import register_inference


@pytest.fixture
def data(tmp_path: Path) -> dict[str, str]:
    rows = [
        {"tool_slug": "MOCK_ANSWER", "toolkit": "mock", "queries": ["a", "b", "c"]},
        {"tool_slug": "OTHER_TOOL", "toolkit": "other", "queries": ["d"]},
    ]
    (tmp_path / "data.json").write_text(json.dumps(rows))
    (tmp_path / "aliases.json").write_text(json.dumps({"OTHER_TOOL": "MOCK_ANSWER"}))
    return {
        "dataset": str(tmp_path / "data.json"),
        "aliases": str(tmp_path / "aliases.json"),
        "out": str(tmp_path / "o"),
    }


def eval_args(d: dict[str, str], *extra: str, kind: str = "mock") -> list[str]:
    return [
        "eval", "model", "--dataset", d["dataset"], "--aliases", d["aliases"],
        "--output-dir", d["out"], "--inference-kind", kind, "--no-progress", *extra,
    ]  # fmt: skip


def test_eval_model_with_mock_ignores_model_name(data: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(eval_args(data, "--model-name", "Qwen/Qwen3-0.6B", "--adapter-path", "/x", "--max-tokens", "8"))
    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith("# Model eval (mock)\n\n- Rows: **2**, queries: **4**\n- pass@1: **100.0%**")
    assert "takes no 'model_name'; ignored" in err and "takes no 'adapter_path'" in err
    summary = json.loads((Path(data["out"]) / "model_summary.json").read_text())
    assert summary["overall"]["pass_pow_3"] == 1.0 and summary["n_queries"] == 4
    assert (Path(data["out"]) / "model_per_row.json").exists() and (Path(data["out"]) / "model_summary.md").exists()


def test_eval_model_params_for_the_client(data: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(eval_args(data, "--param", "template=<answer>NOT_THE_TOOL</answer>")) == 0
    assert "- pass@1: **0.0%**" in capsys.readouterr().out
    assert main(eval_args(data, "--param", "temperature=1")) == 1
    err = capsys.readouterr().err
    assert "inference kind 'mock' has no param 'temperature' (takes: " in err and "template" in err
    assert main(eval_args(data, "--param", "novalue")) == 1
    assert "--param expects key=value" in capsys.readouterr().err


def test_eval_model_user_errors(data: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(eval_args(data, kind="nonexistent")) == 1
    err = capsys.readouterr().err
    assert "No inference_client registered under 'nonexistent'" in err and "Traceback" not in err
    assert main(eval_args({**data, "dataset": str(tmp_path / "missing.json")})) == 1
    assert "missing.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["eval", "model", "--dataset", data["dataset"]])
    assert exc.value.code == 2


class Flaky:
    """Registered in the test's plugin host: needs model_name, fails 'd' for good, 'b' once."""

    name: ClassVar[str] = "flaky_test"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model_name: str

    instances: ClassVar[list[Flaky]] = []

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.seen: dict[str, int] = {}
        self.calls = 0
        Flaky.instances.append(self)

    def generate(self, *, prompt: str, **kw: Any) -> str:
        self.calls += 1
        query = prompt.split("Query: ")[1].split("<|im_end|>")[0]
        self.seen[query] = self.seen.get(query, 0) + 1
        if query == "d" or (query == "b" and self.seen[query] == 1):
            raise ConnectionResetError("reset")
        return "<answer>MOCK_ANSWER</answer>"


def test_fail_on_retries_and_cache(
    plugin_host: PluginHost, data: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)

    async def no_sleep(s: float) -> None:
        return None

    monkeypatch.setattr("asyncio.sleep", no_sleep)
    register_inference("flaky_test")(Flaky)
    cache = str(tmp_path / "cache")
    args = eval_args(data, "--model-name", "m1", "--max-attempts", "2", "--cache", cache, kind="flaky_test")
    assert main(args) == 0  # failures alone don't change the exit code
    out = capsys.readouterr().out
    assert "## Retry-exhausted failures: 1" in out and "| ConnectionResetError | 1 |" in out
    assert Flaky.instances[-1].calls == 6  # a, b twice, c, d twice
    assert main([*args, "--fail-on-retries"]) == 2
    assert Flaky.instances[-1].calls == 2  # from the cache: only the failed query is sent again (twice)
    assert main(eval_args(data, kind="flaky_test")) == 1
    assert "can't create inference client 'flaky_test'" in capsys.readouterr().err


def test_benchmark_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    tasks = [
        {
            "task_id": f"t{i}",
            "instruction": f"say {i}",
            "verifier": {"kind": "in_process", "fn_name": "contains", "expected": "MOCK" if i % 2 else "zzz"},
            "metadata": {"parity": i % 2},
        }
        for i in range(4)
    ]
    (bench / "tasks.jsonl").write_text("\n".join(json.dumps(t) for t in tasks))
    out_file = tmp_path / "score.json"
    args = ["benchmark", "run", "--path", str(bench), "--model", "mock", "--model-name", "x", "--no-progress"]
    code = main(
        [
            *args,
            "--num-samples",
            "2",
            "--metrics",
            "mean_reward",
            "pass@1",
            "--breakdown",
            "parity",
            "-o",
            str(out_file),
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["benchmark"] == "bench" and payload["model"] == "mock"
    assert payload["metrics"] == {"n_tasks": 4.0, "mean_reward": 0.5, "pass@1": 0.5}
    assert payload["stderr"]["mean_reward"] == pytest.approx(0.2886751, rel=1e-5)
    assert payload["estimates"]["pass@2_unbiased"] == 0.5
    assert payload["breakdowns"]["parity"]["1"] == {"n": 2.0, "mean_reward": 1.0, "pass_rate": 1.0}
    assert payload["retry_report"] == {"total_failures": 0, "by_exception_type": {}}
    saved = json.loads(out_file.read_text())
    assert len(saved["per_task"]) == 4 and len(saved["rollouts"]) == 8
    assert main([*args, "--limit", "1", "--param", "template=zzz"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["mean_reward"] == 1.0


def test_benchmark_run_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "run", "--path", str(tmp_path / "nope"), "--model", "mock"]) == 1
    assert "benchmark dir not found" in capsys.readouterr().err
    (tmp_path / "e2b").mkdir()
    (tmp_path / "e2b" / "tasks.jsonl").write_text(
        json.dumps({"task_id": "x", "instruction": "i", "verifier": {"kind": "e2b"}}) + "\n"
    )
    assert main(["benchmark", "run", "--path", str(tmp_path / "e2b"), "--model", "mock"]) == 1
    assert "E2BVerifier" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["benchmark", "run", "--path", "a", "--name", "b", "--model", "mock"])  # mutually exclusive


def test_benchmark_group_is_shared_with_other_plugins() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    other = eval_cli.benchmark_group(sub)  # another plugin's hook may run first
    other.add_parser("upload").set_defaults(func=lambda a: 0)
    group = eval_cli.add_commands(sub)
    assert group is other is eval_cli.BENCHMARK_COMMANDS
    assert set(group.choices) == {"upload", "run"}
    built = build_parser()
    assert eval_cli.BENCHMARK_COMMANDS is not None and "run" in eval_cli.BENCHMARK_COMMANDS.choices
    assert built.parse_args(["benchmark", "run", "--id", "b1", "--model", "mock"]).id == "b1"
