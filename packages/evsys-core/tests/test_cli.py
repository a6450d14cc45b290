from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from evsys_sdk.cli.main import main


def write(tmp_path: Path, cfg: dict[str, Any]) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_validate(tmp_path: Path, experiment: Any, mock_run: Any, capsys: Any) -> None:
    path = write(tmp_path, experiment())
    assert main(["validate", path, "--deep"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"OK: {path} parses and validates (deep); relative paths resolve against {tmp_path.resolve()}"
    path = write(tmp_path, experiment(run=mock_run(params={"lora_rnak": 2})))
    assert main(["validate", path]) == 0
    assert main(["validate", path, "--deep"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ERROR: {path}:") and "did you mean 'lora_rank'?" in err


def test_run_exit_codes_and_output(tmp_path: Path, experiment: Any, mock_run: Any, capsys: Any) -> None:
    out_file = tmp_path / "results.json"
    assert main(["run", write(tmp_path, experiment()), "-o", str(out_file)]) == 0
    summary = capsys.readouterr().out
    assert "r0" in summary and "completed" in summary and "1/1 arms completed." in summary
    payload = json.loads(out_file.read_text())
    assert payload[0]["run_id"] == "r0" and payload[0]["status"] == "completed" and payload[0]["error"] is None

    failing = mock_run("f", backend={"kind": "mock", "params": {"fail_on_prepare": True}})
    assert main(["run", write(tmp_path, experiment(runs=[mock_run("ok"), failing])), "--json"]) == 2
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["completed", "failed"]


def test_config_errors_exit_1_without_traceback(tmp_path: Path, experiment: Any, mock_run: Any, capsys: Any) -> None:
    assert main(["run", write(tmp_path, experiment(run=mock_run(algorithm="nope")))]) == 1
    err = capsys.readouterr().err
    assert "No algorithm registered under 'nope'" in err and "Traceback" not in err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 1
    assert "YAML not found" in capsys.readouterr().err


def test_list_and_kinds(capsys: Any) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    sections = [line for line in out.splitlines() if not line.startswith(" ")]
    assert sections == [
        "algorithms:",
        "backends:",
        "verifiers:",
        "metrics:",
        "transforms:",
        "data_stores:",
        "log_stores:",
        "inference:",
        "callbacks:",
        "executors:",
        "proposers:",
    ]
    assert "  - mock_sft" in out and "  - mutate" in out and "  - sft (family: mock -> mock_sft)" in out
    assert main(["list", "--kind", "backends"]) == 0
    assert capsys.readouterr().out == "backends:\n  - mock\n"
    assert main(["list", "--kind", "algoritms"]) == 1
    assert "did you mean 'algorithm'?" in capsys.readouterr().err


def test_schema(capsys: Any) -> None:
    assert main(["schema", "algorithm", "mock_sft"]) == 0
    assert "learning_rate" in json.loads(capsys.readouterr().out)["properties"]
    assert main(["schema", "--all"]) == 0
    schema = json.loads(capsys.readouterr().out)
    algo = schema["$defs"]["AlgorithmConfig"]
    kinds = {v["properties"]["kind"]["const"] for v in algo["oneOf"]}
    assert {"mock_sft", "combo", "sft", "rl"} <= kinds and algo["discriminator"] == {"propertyName": "kind"}
    combo = next(v for v in algo["oneOf"] if v["properties"]["kind"]["const"] == "combo")
    ref = combo["properties"]["params"]["properties"]["phases"]["items"]["$ref"]
    assert ref.removeprefix("#/$defs/") in schema["$defs"]  # nested models are carried along
    store = schema["$defs"]["DataStoreSpec"]["oneOf"]
    local = next(v for v in store if v["properties"]["kind"]["const"] == "local")
    assert "required" not in local  # the default kind may be left out
    assert main(["schema", "algorithm"]) == 1


def test_plugins_lists_core(capsys: Any) -> None:
    assert main(["plugins"]) == 0
    assert capsys.readouterr().out.startswith("core  evsys-core 0.1.0  ok  evsys_sdk.builtins.hooks")


def test_plugins_names_how_to_install_the_missing_ones(capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[3])  # the root of this checkout
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    hint = "pip install evsys-tinker (from this checkout: pip install ./packages/evsys-tinker)"
    assert f"evsys-tinker  not installed: {hint}" in lines


def test_a_subcommand_is_required() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
