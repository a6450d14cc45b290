from __future__ import annotations

import math
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from evsys_sdk import validate_yaml
from evsys_sdk.base.errors import ConfigError
from evsys_sdk.loading.yaml_loader import check_config, dump_yaml, load_yaml
from evsys_sdk.spec import source as yaml_source
from evsys_sdk.spec.paths import anchor_paths
from evsys_sdk.spec.source import parse_yaml_text

BASE = """\
name: exp
output_dir: {out}
run:
  name: r0
  data: {{source_kind: in_memory, rows: [{{q: 1}}]}}
  model: {{name: tiny}}
  backend: {{kind: mock}}
  algorithm:
    kind: sft
    params:
      learning_rate: 1e-4
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text).format(out=tmp_path / "out"))
    return path


def test_yaml_12_numbers_and_strings() -> None:
    data, _ = parse_yaml_text(
        "a: 1e-4\nb: 5E+3\nc: yes\nd: on\ne: 0o17\nf: 0x1F\ng: .inf\nh: 012\ni: true\nj: ~\nk: 1_000"
    )
    assert data["a"] == 1e-4 and isinstance(data["a"], float)
    assert data["b"] == 5000.0
    assert data["c"] == "yes" and data["d"] == "on"  # YAML 1.1 booleans are strings in 1.2
    assert data["e"] == 15 and data["f"] == 31 and data["g"] == math.inf and data["h"] == 12
    assert data["i"] is True and data["j"] is None and data["k"] == "1_000"


def test_load_yaml_reads_floats_as_floats(tmp_path: Path) -> None:
    cfg = load_yaml(write(tmp_path, BASE))
    assert cfg.run is not None and cfg.run.algorithm.params["learning_rate"] == 1e-4


def test_typo_names_file_line_column_key_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("name: r0", "name: r0\n  sede: 3"))
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}:5:3: run.sede: unknown field; did you mean 'seed'?"


def test_deep_validation_locates_bad_params(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("learning_rate: 1e-4", "learnin_rate: 1e-4"))
    assert validate_yaml(path) == []  # shallow mode does not look into params
    problems = validate_yaml(path, deep=True)
    assert problems == [f"{path}:11:7: run.algorithm.params.learnin_rate: unknown field; did you mean 'learning_rate'?"]


def test_deep_validation_names_installed_kinds_and_install_hints(tmp_path: Path) -> None:
    problems = validate_yaml(write(tmp_path, BASE.replace("kind: mock", "kind: mokc")), deep=True)
    assert len(problems) == 1
    assert ":7:" in problems[0] and "run.backend.kind" in problems[0]
    assert "did you mean 'mock'?" in problems[0] and "Available: mock" in problems[0]
    problems = validate_yaml(write(tmp_path, BASE.replace("kind: mock", "kind: tinker")), deep=True)
    assert "provided by evsys-tinker: pip install evsys-tinker (from this checkout: pip install " in problems[0]
    assert problems[0].endswith("packages/evsys-tinker)")
    problems = validate_yaml(write(tmp_path, BASE.replace("kind: sft", "kind: local_sft")), deep=True)
    assert "evsys-local" in problems[0]


def test_deep_validation_covers_every_block(tmp_path: Path) -> None:
    text = BASE + textwrap.dedent("""\
          eval:
            metrics: [{{kind: pass_ratee}}]
            inference: {{kind: mock, params: {{tempalte: x}}}}
        data_store: {{kind: local, params: {{rot: .}}}}
        log_store: {{kind: multiplex, params: {{children: [{{kind: jsonl}}, {{kind: nope}}]}}}}
    """)
    problems = "\n".join(validate_yaml(write(tmp_path, text), deep=True))
    for needle in (
        "run.eval.metrics[0].kind",
        "did you mean 'pass_rate'?",
        "run.eval.inference.params.tempalte",
        "data_store.params.rot",
        "log_store.params.children[1].kind",
    ):
        assert needle in problems


def test_family_param_of_another_backend_is_explained(tmp_path: Path) -> None:
    problems = validate_yaml(write(tmp_path, BASE.replace("learning_rate: 1e-4", "num_generations: 4")), deep=True)
    # num_generations belongs to mock_rl, not to the sft family.
    assert problems and "unknown field" in problems[0]
    problems = validate_yaml(
        write(tmp_path, BASE.replace("kind: sft", "kind: rl").replace("learning_rate: 1e-4", "topk: 4")), deep=True
    )
    assert "run.algorithm.params.topk" in problems[0]


def test_matrix_problems_point_into_the_matrix(tmp_path: Path) -> None:
    text = f"""\
name: exp
output_dir: {tmp_path / "out"}
matrix:
  base_run:
    name: b
    data: {{source_kind: in_memory}}
    model: {{name: tiny}}
    backend: {{kind: mock}}
    algorithm: {{kind: sft, params: {{learnin_rate: 1.0}}}}
  axes:
    algorithm.params.lora_rank: [1, x]
"""
    path = tmp_path / "m.yaml"
    path.write_text(text)
    problems = validate_yaml(path, deep=True)
    typo = "unknown field; did you mean 'learning_rate'? (run 'b__lora_rank1' and 1 more)"
    assert f"{path}:9:37: matrix.base_run.algorithm.params.learnin_rate: {typo}" in problems
    assert any(
        p.startswith(f"{path}:11:33: matrix.axes.algorithm.params.lora_rank:") and "b__lora_rankx" in p
        for p in problems
    )


def test_bad_axis_path_is_found_at_load_time(tmp_path: Path, mock_run: Any) -> None:
    with pytest.raises(ConfigError, match=r"matrix\.axes\.modle\.name"):
        load_yaml({"name": "e", "matrix": {"base_run": mock_run(), "axes": {"modle.name": ["a"]}}})


def test_duplicate_keys_and_syntax_errors_are_located(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config.yaml:2:1: name: duplicate key 'name'"):
        load_yaml(write(tmp_path, "name: a\nname: b\n"))
    with pytest.raises(ConfigError, match=r"config.yaml:\d+:\d+: YAML syntax error"):
        load_yaml(write(tmp_path, "name: [a\n"))


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb.yaml:1:\d+: YAML aliases expand to over \d+ values") as info:
        parse_yaml_text(billion_laughs(), "bomb.yaml")
    # The expansion budget refuses it (the match above); the clock only guards against a hang: 0.03-0.14 s
    # measured idle, so 5 s cannot flake on a loaded machine.
    assert time.perf_counter() - started < 5.0
    assert len(info.value.problems) == 1
    # aliases a config really uses (one anchor reused by a handful of runs) are fine
    data, _ = parse_yaml_text(billion_laughs(levels=3, width=9))
    assert data["a2"][8] == data["a1"] and data["a1"][0] == ["lol"] * 9


def test_oversized_document_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_source, "MAX_CONFIG_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "# padding\n" * 20)
    with pytest.raises(ConfigError, match=r"big.yaml: 208 bytes is too large for a config \(at most 100\)"):
        load_yaml(path)


@pytest.mark.parametrize(
    ("text", "where"),
    [("name: x\nrun:\n\tname: y\n", "3:1"), ("name: x\nrun:\n  name: y\n  data:\n  \t  path: p\n", "5:3")],
)
def test_tab_in_indentation_says_use_spaces(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml_text(text, "tabs.yaml")
    assert info.value.problems == [
        f"tabs.yaml:{where}: a tab in the indentation: YAML does not allow tabs there; indent with spaces"
    ]


def test_unknown_algorithm_kind_suggests_the_family(tmp_path: Path) -> None:
    problems = validate_yaml(write(tmp_path, BASE.replace("kind: sft", "kind: sfft")), deep=True)
    assert len(problems) == 1
    assert ":9:11: run.algorithm.kind: No algorithm registered under 'sfft'; did you mean 'sft'?" in problems[0]


def test_missing_file_and_bad_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="YAML not found"):
        load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="YAML root must be a mapping, got list"):
        load_yaml(write(tmp_path, "- a\n"))


def test_duplicate_names_after_expansion(tmp_path: Path, mock_run: Any) -> None:
    data = {"name": "e", "matrix": {"base_run": mock_run(), "axes": {"algorithm.params.lora_rank": [1, 1]}}}
    with pytest.raises(ConfigError, match="duplicate run name 'r0__lora_rank1'"):
        load_yaml(data)


def test_check_config_raises_config_error(experiment: Any) -> None:
    cfg = load_yaml(
        experiment(
            run={
                "name": "r",
                "data": {"source_kind": "in_memory"},
                "model": {"name": "m"},
                "backend": {"kind": "mock"},
                "algorithm": {"kind": "nope"},
            }
        )
    )
    with pytest.raises(ConfigError, match="No algorithm registered under 'nope'"):
        check_config(cfg)


def test_dump_round_trips(tmp_path: Path, mock_run: Any) -> None:
    run = mock_run(params={"learning_rate": 1e-4, "note": "1e-4", "flag": "yes"})
    cfg = load_yaml({"name": "e", "run": run, "metadata": {"x": None}})
    out = tmp_path / "dump.yaml"
    text = dump_yaml(cfg, path=out)
    assert out.read_text() == text
    assert text.index("name:") < text.index("run:")  # field order, not sorted
    again = load_yaml(out)
    anchor_paths(cfg, tmp_path)  # read from a file, its relative paths resolve against the file's folder
    assert again.model_dump() == cfg.model_dump()
    assert again.run is not None and again.run.algorithm.params["note"] == "1e-4"
