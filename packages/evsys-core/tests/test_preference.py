"""Preference rows, on-policy pairs from verified samples, and the dpo/distill families on the mock backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.builtins.mock import read_checkpoint
from evsys_sdk.builtins.preference import PairStats, on_policy_pairs
from evsys_sdk.builtins.transforms import OnPolicyPairs
from evsys_sdk.plugins.host import PluginHost, use_host
from evsys_sdk.plugins.registry import resolve_algorithm, schema_for
from evsys_sdk.run.runner import run_experiment
from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.data_types import (
    HarborTask,
    InProcessVerifier,
    PreferenceRow,
    TargetFormat,
    detect_format,
    from_dict,
    parse_rows,
    to_dict,
)
from evsys_sdk.spec.families import FAMILIES, DistillParams, DPOParams, distill_endpoints
from evsys_sdk.testing import mock_experiment_config

CONVO = PreferenceRow(
    prompt=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}],
    chosen=[{"role": "assistant", "content": "4"}],
    rejected=[{"role": "assistant", "content": "5"}],
    metadata={"provenance": {"source": "hand"}},
)
PAIRS = [{"prompt": f"{i}+1", "chosen": str(i + 1), "rejected": str(i + 2)} for i in range(6)]


class TestPreferenceRow:
    @pytest.mark.parametrize("row", [PreferenceRow("2+2?", "4", "5"), CONVO])
    def test_json_round_trip_and_detection(self, row: PreferenceRow) -> None:
        raw = json.loads(json.dumps(to_dict(row)))
        assert detect_format(raw) == "preference"
        assert from_dict(raw) == row
        assert parse_rows([raw], TargetFormat.PREFERENCE) == [row]
        assert row.conversational is isinstance(row.prompt, list)

    def test_harbor_and_prompt_rows_win_over_preference_keys(self) -> None:
        assert detect_format({"task_id": "t", "verifier": None, "chosen": 1, "rejected": 2}) == "harbor_task"
        assert detect_format({"chosen": "a", "rejected": "b", "messages": []}) == "preference"
        assert detect_format({"chosen": "a"}) == "unknown"

    @pytest.mark.parametrize(
        ("raw", "match"),
        [
            ({"chosen": "a", "rejected": "b"}, "missing required field 'prompt'"),
            ({"prompt": "p", "chosen": "a", "rejected": [{"role": "assistant", "content": "b"}]}, "all be strings"),
            ({"prompt": "p", "chosen": [], "rejected": "b"}, "'chosen' must be a string or a non-empty list"),
            ({"prompt": "p", "chosen": 3, "rejected": "b"}, "'chosen' must be a string"),
        ],
    )
    def test_bad_rows_name_the_field(self, raw: dict[str, Any], match: str) -> None:
        with pytest.raises((KeyError, ValueError), match=match):
            from_dict(raw)


class Scripted:
    """Answers each prompt from a fixed cycle of completions, so samples differ like a sampling policy's."""

    name: ClassVar[str] = "scripted"

    class Config(StrictModel):
        answers: dict[str, list[str]]

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.seen: dict[str, int] = {}

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        i = self.seen.get(prompt, 0)
        self.seen[prompt] = i + 1
        cycle = self.config.answers[prompt]
        return cycle[i % len(cycle)]


def _task(i: int, expected: str) -> HarborTask:
    return HarborTask(f"t{i}", f"q{i}", InProcessVerifier("exact_match", expected), {"split": "train"})


ANSWERS = {"q0": ["no", "yes", "nope", "yes"], "q1": ["yes", "yes"], "q2": ["x", "y"], "q3": ["a", "yes"]}


class TestOnPolicyPairs:
    def test_pairs_pass_with_fail_and_skip_tasks_without_contrast(self) -> None:
        stats = PairStats()
        tasks = [_task(i, "yes") for i in range(4)]
        pairs = list(on_policy_pairs(tasks, Scripted(answers=ANSWERS), k=4, pairs_per_task=2, stats=stats))
        assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [
            ("q0", "yes", "no"),
            ("q0", "yes", "nope"),
            ("q3", "yes", "a"),
            ("q3", "yes", "a"),  # samples 1/0 and 3/2: no completion is used twice
        ]
        assert (stats.tasks, stats.pairs, stats.all_pass, stats.all_fail) == (4, 4, ["t1"], ["t2"])
        first = pairs[0].metadata
        assert first["split"] == "train"
        assert first["provenance"] == {
            "source": "on_policy_pairs",
            "task_id": "t0",
            "sampler": "scripted",
            "k": 4,
            "temperature": 1.0,
            "threshold": 1.0,
            "chosen": {"sample": 1, "reward": 1.0},
            "rejected": {"sample": 0, "reward": 0.0},
            "pass_rate": 0.5,
        }

    def test_conversational_pairs_round_trip(self) -> None:
        [pair] = on_policy_pairs([_task(3, "yes")], Scripted(answers=ANSWERS), k=2, conversational=True)
        assert pair.prompt == [{"role": "user", "content": "q3"}]
        assert pair.chosen == [{"role": "assistant", "content": "yes"}]
        assert from_dict(json.loads(json.dumps(to_dict(pair)))) == pair

    def test_k_below_two_is_refused(self) -> None:
        with pytest.raises(ValueError, match="k must be >= 2"):
            list(on_policy_pairs([_task(0, "yes")], Scripted(answers=ANSWERS), k=1))

    @pytest.fixture
    def scripted_host(self) -> Iterator[PluginHost]:
        with use_host(PluginHost(entry_points=False)) as host:
            host.registries["inference_client"].add(Scripted)
            yield host

    def test_transform_feeds_a_dpo_run(self, tmp_path: Path, scripted_host: PluginHost) -> None:
        """Harbor tasks in, preference rows out, a dpo run trains on them: the YAML path end to end."""
        tasks = [to_dict(_task(i, "yes")) for i in range(4)]
        config = mock_experiment_config(tmp_path, "dpo", params={"max_steps": 4}, rows=tasks)
        transform = {"kind": "on_policy_pairs", "params": {"inference": {"kind": "scripted", "params": {}}, "k": 4}}
        transform["params"]["inference"]["params"] = {"answers": ANSWERS}
        config["run"]["data"]["transforms"] = [transform]
        [result] = run_experiment(config)
        assert result.status == "completed", result.error
        memory = read_checkpoint(result.artifacts["final_checkpoint"])["memory"]
        assert set(memory) <= {"q0", "q3"} and set(memory.values()) <= {"yes"}

    def test_transform_rejects_non_tasks(self, scripted_host: PluginHost) -> None:
        transform = OnPolicyPairs(inference={"kind": "scripted", "params": {"answers": {}}})
        with pytest.raises(EvsysError, match="rows must be Harbor tasks"):
            list(transform([{"prompt": "p"}]))


class TestFamilies:
    def test_families_route_on_mock_and_export_schemas(self) -> None:
        assert resolve_algorithm("dpo", "mock") == "mock_dpo"
        assert resolve_algorithm("distill", "mock") == "mock_distill"
        for family in ("dpo", "distill"):
            props = schema_for("algorithm", family)["properties"]
            assert set(FAMILIES[family].model_fields) == set(props)
            assert all(p.get("description") for name, p in props.items() if name in ("beta", "teacher", "lmbda"))

    def test_dpo_loss_list_with_weights(self) -> None:
        params = DPOParams(loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5])
        assert params.losses() == [("sigmoid", 1.0), ("sft", 0.5)]
        assert DPOParams().losses() == [("sigmoid", 1.0)]
        with pytest.raises(ValidationError, match="needs 2 weight"):
            DPOParams(loss_type=["sigmoid", "ipo"], loss_weights=[1.0])
        with pytest.raises(ValidationError, match="literal_error|Input should be"):
            DPOParams(loss_type="sigmod")
        with pytest.raises(ValidationError):
            DPOParams(beta=0)

    def test_distill_bounds_and_teacher_required(self) -> None:
        with pytest.raises(ValidationError, match="teacher"):
            DistillParams()
        for bad in ({"beta": 1.5}, {"lmbda": -0.1}, {"temperature": 0}):
            with pytest.raises(ValidationError):
                DistillParams(teacher="t", **bad)

    def test_distill_endpoints(self) -> None:
        assert distill_endpoints("teacher-model", "ckpt") == ("teacher-model", "ckpt")
        assert distill_endpoints("previous", "ckpt") == ("ckpt", None)
        with pytest.raises(EvsysError, match="needs a previous phase"):
            distill_endpoints("previous", None)


def _mock_dpo(tmp_path: Path, **params: Any) -> dict[str, float]:
    config = mock_experiment_config(tmp_path, "dpo", params={"max_steps": 20, **params}, rows=PAIRS)
    [result] = run_experiment(config)
    assert result.status == "completed", result.error
    return result.metrics


class TestMockDPO:
    def test_metrics_deterministic_and_moved_by_beta_and_lr(self, tmp_path: Path) -> None:
        """The mock landscape's optimum (lr 3e-4, full rank, a few epochs) at beta 0.1 learns most."""
        good = {"learning_rate": 3e-4, "lora_rank": 0, "num_epochs": 3}
        best = _mock_dpo(tmp_path / "a", **good)
        assert best == _mock_dpo(tmp_path / "b", **good)
        assert best["dpo/reward_accuracy"] > 0.95
        for knob in ({"beta": 1.0}, {"learning_rate": 1e-2}):
            worse = _mock_dpo(tmp_path / "c", **{**good, **knob})
            assert 0.5 < worse["dpo/reward_accuracy"] < best["dpo/reward_accuracy"]
            assert worse["train/final_loss"] > best["train/final_loss"]

    def test_logs_the_dpo_metrics_every_step(self, tmp_path: Path) -> None:
        _mock_dpo(tmp_path, max_steps=3)
        lines = (tmp_path / "contract" / "logs" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line)["metrics"] for line in lines]
        keys = {"train/loss", "dpo/reward_margin", "dpo/reward_accuracy", "dpo/chosen_logp", "dpo/rejected_logp"}
        assert len(rows) == 3 and all(keys <= set(r) for r in rows)
        assert rows[0]["dpo/reward_margin"] < rows[-1]["dpo/reward_margin"]


class TestMockDistill:
    def test_sft_teacher_then_distill_student_in_one_combo(self, tmp_path: Path) -> None:
        rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(8)]
        phases = [
            {"kind": "sft", "name": "teacher", "config": {"max_steps": 4, "lora_rank": 32, "num_epochs": 3}},
            {"kind": "distill", "name": "student", "config": {"teacher": "previous", "max_steps": 6, "lora_rank": 0}},
        ]
        config = mock_experiment_config(tmp_path, "combo", params={"phases": phases}, rows=rows)
        [result] = run_experiment(config)
        assert result.status == "completed", result.error
        teacher = read_checkpoint(result.artifacts["teacher/final_checkpoint"])
        student = read_checkpoint(result.artifacts["final_checkpoint"])
        assert student["algorithm"] == "mock_distill"
        assert student["init_from"] is None  # the student starts from its own model, not the teacher's weights
        assert student["memory"] and set(student["memory"].items()) <= set(teacher["memory"].items())

    def test_previous_teacher_outside_a_chain_fails_the_run(self, tmp_path: Path) -> None:
        config = mock_experiment_config(tmp_path, "distill", params={"teacher": "previous", "max_steps": 2})
        [result] = run_experiment(config)
        assert result.status == "failed" and "needs a previous phase" in (result.error or "")
