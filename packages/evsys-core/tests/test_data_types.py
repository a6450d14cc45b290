"""Harbor data shapes (BEHAVIOR 1.17): construction, format detection, parsing, JSON round-trips."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

import evsys_sdk.spec.data_types as dt
from evsys_sdk.spec.data_types import (
    ChatMessagesRow,
    E2BVerifier,
    HarborTask,
    InProcessVerifier,
    LLMJudgeVerifier,
    PromptExample,
    Row,
    TargetFormat,
    block_to_image_src,
    chat_messages_row_from_dict,
    detect_format,
    from_dict,
    harbor_task_from_dict,
    has_images,
    image_base64_block,
    image_url_block,
    iter_jsonl,
    parse_rows,
    prompt_example_from_dict,
    text_block,
    to_dict,
)

USER = {"role": "user", "content": "hi"}
HARBOR = {"task_id": "t1", "instruction": "say 42", "verifier": {"kind": "in_process", "fn_name": "exact_match"}}


def test_all_names_resolve() -> None:
    assert set(dt.__all__) >= {
        "TargetFormat", "ChatMessagesRow", "InProcessVerifier", "E2BVerifier", "LLMJudgeVerifier",
        "VerifierPayload", "HarborTask", "PromptExample", "text_block", "image_url_block",
        "image_base64_block", "block_to_image_src", "has_images", "detect_format", "harbor_task_from_dict",
        "chat_messages_row_from_dict", "prompt_example_from_dict", "from_dict", "to_dict", "iter_jsonl",
        "parse_rows",
    }  # fmt: skip
    for name in dt.__all__:
        assert hasattr(dt, name), name


class TestShapes:
    def test_target_format_is_a_str_enum(self) -> None:
        as_str: str = TargetFormat.CHAT_MESSAGES
        assert as_str == "chat_messages"
        assert TargetFormat.HARBOR_TASK.value == "harbor_task"
        assert TargetFormat.PROMPT_DATASET.value == "prompt_dataset"
        assert TargetFormat("harbor_task") is TargetFormat.HARBOR_TASK
        assert f"{TargetFormat.HARBOR_TASK}" == "harbor_task"

    def test_defaults(self) -> None:
        row = ChatMessagesRow([USER])
        assert row.metadata == {} and row.target_assistant is None
        assert ChatMessagesRow([USER], {"a": 1}).metadata == {"a": 1}  # docs positional order
        v = InProcessVerifier("exact_match")
        assert (v.expected, v.params, v.kind) == (None, {}, "in_process")
        assert E2BVerifier() == E2BVerifier(dockerfile="", test_sh="", test_state_py="", kind="e2b")
        assert LLMJudgeVerifier() == LLMJudgeVerifier(judge_model="", rubric="", kind="llm_judge")
        task = HarborTask("t", "do it")
        assert task.verifier is None and task.metadata == {}
        example = PromptExample({"q": "1+1"}, "2")
        assert example.metadata == {}

    def test_default_dicts_are_not_shared(self) -> None:
        assert ChatMessagesRow([]).metadata is not ChatMessagesRow([]).metadata
        assert InProcessVerifier("f").params is not InProcessVerifier("f").params

    def test_older_vintage_target_assistant(self) -> None:
        row = ChatMessagesRow(messages=[USER], target_assistant="hello")
        assert row.target_assistant == "hello"

    @pytest.mark.parametrize(
        ("obj", "attr"),
        [
            (ChatMessagesRow([USER]), "messages"),
            (InProcessVerifier("f"), "fn_name"),
            (E2BVerifier(), "dockerfile"),
            (LLMJudgeVerifier(), "rubric"),
            (HarborTask("t", "i"), "instruction"),
            (PromptExample({}, None), "expected"),
        ],
    )
    def test_frozen(self, obj: Any, attr: str) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, "changed")


class TestBlocks:
    def test_text_block(self) -> None:
        assert text_block("hello") == {"type": "text", "text": "hello"}

    def test_image_url_block(self) -> None:
        assert image_url_block("https://x/a.png") == {"type": "image_url", "image_url": {"url": "https://x/a.png"}}
        assert image_url_block("https://x/a.png", detail="high") == {
            "type": "image_url",
            "image_url": {"url": "https://x/a.png", "detail": "high"},
        }

    def test_image_base64_block(self) -> None:
        assert image_base64_block("image/png", "AAA") == {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "AAA"},
        }

    @pytest.mark.parametrize(
        ("block", "src"),
        [
            (image_url_block("https://x/a.png", detail="low"), "https://x/a.png"),
            ({"type": "image", "source": {"type": "url", "url": "https://y/b.jpg"}}, "https://y/b.jpg"),
            (image_base64_block("image/jpeg", "QUJD"), "data:image/jpeg;base64,QUJD"),
        ],
    )
    def test_block_to_image_src(self, block: dict[str, Any], src: str) -> None:
        assert block_to_image_src(block) == src

    @pytest.mark.parametrize(
        "block",
        [
            None,
            42,
            "https://x/a.png",
            [],
            text_block("hi"),
            {"type": "image_url"},
            {"type": "image_url", "image_url": "https://x/a.png"},
            {"type": "image_url", "image_url": {"url": 3}},
            {"type": "image"},
            {"type": "image", "source": {}},
            {"type": "image", "source": {"type": "url"}},
            {"type": "image", "source": {"type": "base64", "data": "AAA"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png"}},
            {"type": "text", "source": {"type": "url", "url": "https://x"}},
        ],
    )
    def test_block_to_image_src_none(self, block: Any) -> None:
        assert block_to_image_src(block) is None

    def test_has_images(self) -> None:
        assert has_images(ChatMessagesRow([USER])) is False
        text_only = ChatMessagesRow([{"role": "user", "content": [text_block("a"), {"type": "image"}]}])
        assert has_images(text_only) is False
        with_image = ChatMessagesRow(
            [USER, {"role": "user", "content": [text_block("look"), image_base64_block("image/png", "AAA")]}]
        )
        assert has_images(with_image) is True

    def test_has_images_on_raw_rows(self) -> None:
        assert has_images({"messages": [{"role": "user", "content": [image_url_block("https://x")]}]}) is True
        assert has_images({"messages": ["not a message"]}) is False
        assert has_images({"prompt": "no messages"}) is False


class TestDetectFormat:
    @pytest.mark.parametrize(
        ("row", "fmt"),
        [
            (HARBOR, "harbor_task"),
            ({"task_id": "t", "verifier": None}, "harbor_task"),
            ({"inputs": {}, "expected": None}, "prompt_dataset"),
            ({"messages": []}, "chat_messages"),
            ({"messages": [], "target_assistant": "x"}, "chat_messages"),
            # docs order: harbor beats prompt beats chat when a row carries several signatures
            ({**HARBOR, "inputs": {}, "expected": 1, "messages": []}, "harbor_task"),
            ({"inputs": {}, "expected": 1, "messages": []}, "prompt_dataset"),
            ({"task_id": "t", "instruction": "no verifier"}, "unknown"),
            ({"inputs": {}}, "unknown"),
            ({"foo": 1}, "unknown"),
            ({}, "unknown"),
            (None, "unknown"),
            ("messages", "unknown"),
            ([("messages", [])], "unknown"),
        ],
    )
    def test_detect_format(self, row: Any, fmt: str) -> None:
        assert detect_format(row) == fmt


class TestHarborTaskFromDict:
    def test_in_process(self) -> None:
        task = harbor_task_from_dict(
            {
                "task_id": "t",
                "instruction": "i",
                "verifier": {"kind": "in_process", "fn_name": "contains", "expected": "x", "params": {"a": 1}},
                "metadata": {"split": "test"},
            }
        )
        assert task == HarborTask("t", "i", InProcessVerifier("contains", "x", {"a": 1}), {"split": "test"})

    def test_in_process_minimal_defaults(self) -> None:
        task = harbor_task_from_dict(HARBOR)
        assert isinstance(task.verifier, InProcessVerifier)
        assert task.verifier.expected is None and task.verifier.params == {}
        assert task.metadata == {}

    def test_null_params_and_metadata_become_empty(self) -> None:
        task = harbor_task_from_dict(
            {**HARBOR, "verifier": {"kind": "in_process", "fn_name": "f", "params": None}, "metadata": None}
        )
        assert isinstance(task.verifier, InProcessVerifier)
        assert task.verifier.params == {} and task.metadata == {}

    def test_e2b_and_llm_judge_defaults(self) -> None:
        e2b = harbor_task_from_dict({**HARBOR, "verifier": {"kind": "e2b"}}).verifier
        assert e2b == E2BVerifier()
        judge = harbor_task_from_dict({**HARBOR, "verifier": {"kind": "llm_judge", "rubric": "be kind"}}).verifier
        assert judge == LLMJudgeVerifier(judge_model="", rubric="be kind")

    @pytest.mark.parametrize("field", ["task_id", "instruction", "verifier"])
    def test_missing_required_field(self, field: str) -> None:
        row = {k: v for k, v in HARBOR.items() if k != field}
        with pytest.raises(KeyError, match=field):
            harbor_task_from_dict(row)

    def test_in_process_needs_fn_name(self) -> None:
        with pytest.raises(KeyError, match="fn_name"):
            harbor_task_from_dict({**HARBOR, "verifier": {"kind": "in_process"}})

    @pytest.mark.parametrize(("verifier", "shown"), [({"kind": "nope"}, "'nope'"), ({}, "None")])
    def test_unknown_verifier_kind(self, verifier: dict[str, Any], shown: str) -> None:
        with pytest.raises(ValueError, match=f"^unknown verifier kind: {shown}$"):
            harbor_task_from_dict({**HARBOR, "verifier": verifier})

    def test_verifier_must_be_an_object(self) -> None:
        with pytest.raises(ValueError, match="task 't1': verifier must be an object with a 'kind', got str"):
            harbor_task_from_dict({**HARBOR, "verifier": "exact_match"})

    def test_null_verifier_is_a_generation_only_task(self) -> None:
        assert harbor_task_from_dict({**HARBOR, "verifier": None}).verifier is None


class TestChatAndPromptFromDict:
    def test_chat_row(self) -> None:
        row = chat_messages_row_from_dict({"messages": [USER], "metadata": {"id": 3}, "extra": "ignored"})
        assert row == ChatMessagesRow([USER], {"id": 3})

    def test_messages_list_is_copied(self) -> None:
        messages = [USER]
        row = chat_messages_row_from_dict({"messages": messages})
        messages.append(USER)
        assert len(row.messages) == 1

    @pytest.mark.parametrize("raw", [{"messages": []}, {"messages": "hi"}, {"messages": None}, {}])
    def test_chat_row_needs_non_empty_messages(self, raw: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match="chat_messages row requires a non-empty `messages` list"):
            chat_messages_row_from_dict(raw)

    def test_older_vintage_allows_empty_messages_with_target(self) -> None:
        row = chat_messages_row_from_dict({"messages": [], "target_assistant": "ok"})
        assert row == ChatMessagesRow([], target_assistant="ok")

    def test_target_assistant_must_be_a_string(self) -> None:
        with pytest.raises(ValueError, match="target_assistant must be a string, got int"):
            chat_messages_row_from_dict({"messages": [USER], "target_assistant": 3})

    def test_prompt_example(self) -> None:
        assert prompt_example_from_dict({"inputs": {"q": "a"}, "expected": "b", "metadata": {"m": 1}}) == (
            PromptExample({"q": "a"}, "b", {"m": 1})
        )
        assert prompt_example_from_dict({}) == PromptExample({}, None, {})


class TestFromDictAndToDict:
    def test_from_dict_dispatch(self) -> None:
        assert isinstance(from_dict(HARBOR), HarborTask)
        assert isinstance(from_dict({"inputs": {"q": 1}, "expected": 2}), PromptExample)
        assert isinstance(from_dict({"messages": [USER]}), ChatMessagesRow)
        assert isinstance(from_dict({"messages": [], "target_assistant": "x"}), ChatMessagesRow)

    def test_from_dict_unknown(self) -> None:
        with pytest.raises(ValueError, match=r"^can't dispatch row — unknown format: keys=\['a', 'b'\]$"):
            from_dict({"b": 1, "a": 2})

    @pytest.mark.parametrize(
        "obj",
        [
            ChatMessagesRow(
                [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": [text_block("x"), image_url_block("u")]},
                ],
                {"split": "train"},
            ),
            ChatMessagesRow([USER], target_assistant="hello", metadata={"row": 1}),
            ChatMessagesRow([], target_assistant="older rows may have no prefix"),
            HarborTask("a", "i", InProcessVerifier("tool_calls_match", {"tool": "x"}, {"coordinate_tolerance": 5})),
            HarborTask("b", "i", E2BVerifier("FROM python:3.11", "pytest", "def test(): pass"), {"d": "hard"}),
            HarborTask("c", "i", LLMJudgeVerifier("judge", "Score 1-5.")),
            HarborTask("d", "generation only"),
            PromptExample({"q": "1+1"}, "2", {"src": "tiny"}),
            PromptExample({}, {"nested": [1, 2]}),
        ],
    )
    def test_json_round_trip(self, obj: Row) -> None:
        assert from_dict(json.loads(json.dumps(to_dict(obj)))) == obj

    def test_to_dict_shapes(self) -> None:
        assert to_dict(ChatMessagesRow([USER])) == {"messages": [USER], "metadata": {}}
        assert to_dict(ChatMessagesRow([USER], target_assistant="t"))["target_assistant"] == "t"
        assert to_dict(HarborTask("t", "i", InProcessVerifier("f"))) == {
            "task_id": "t",
            "instruction": "i",
            "verifier": {"fn_name": "f", "expected": None, "params": {}, "kind": "in_process"},
            "metadata": {},
        }
        assert to_dict(E2BVerifier()) == {"dockerfile": "", "test_sh": "", "test_state_py": "", "kind": "e2b"}

    def test_to_dict_copies(self) -> None:
        row = ChatMessagesRow([{"role": "user", "content": "x"}])
        to_dict(row)["messages"][0]["content"] = "mutated"
        assert row.messages[0]["content"] == "x"


class TestIterJsonl:
    def test_mixed_file_skips_blank_lines(self, tmp_path: Path) -> None:
        path = tmp_path / "rows.jsonl"
        rows = [{"messages": [USER]}, HARBOR, {"inputs": {"q": 1}, "expected": 2}]
        path.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n\n   \n" + json.dumps(rows[2]) + "\n")
        parsed = list(iter_jsonl(path))
        assert [type(r) for r in parsed] == [ChatMessagesRow, HarborTask, PromptExample]
        assert list(iter_jsonl(str(path))) == parsed

    def test_is_lazy(self, tmp_path: Path) -> None:
        path = tmp_path / "rows.jsonl"
        path.write_text(json.dumps(HARBOR) + "\n{broken\n")
        it = iter_jsonl(path)
        assert isinstance(next(it), HarborTask)
        with pytest.raises(ValueError, match=r"rows.jsonl:2: invalid JSON: "):
            next(it)

    def test_parse_errors_name_the_line(self, tmp_path: Path) -> None:
        path = tmp_path / "rows.jsonl"
        path.write_text(json.dumps(HARBOR) + "\n" + json.dumps({**HARBOR, "verifier": {"kind": "x"}}) + "\n")
        with pytest.raises(ValueError, match=r"rows.jsonl:2: unknown verifier kind: 'x'$"):
            list(iter_jsonl(path))
        path.write_text(json.dumps({"task_id": "t", "verifier": None}) + "\n")
        with pytest.raises(ValueError, match=r"rows.jsonl:1: harbor_task 't' is missing required field 'instruction'"):
            list(iter_jsonl(path))
        path.write_text('{"nothing": 1}\n')
        with pytest.raises(ValueError, match=r"rows.jsonl:1: can't dispatch row — unknown format"):
            list(iter_jsonl(path))


class TestParseRows:
    def test_parses_every_row(self) -> None:
        rows = [HARBOR, {**HARBOR, "task_id": "t2"}]
        assert [t.task_id for t in parse_rows(rows, TargetFormat.HARBOR_TASK)] == ["t1", "t2"]  # type: ignore[union-attr]
        assert parse_rows(rows, "harbor_task") == parse_rows(rows, TargetFormat.HARBOR_TASK)
        assert parse_rows([{"messages": [USER]}], "chat_messages") == [ChatMessagesRow([USER])]
        assert parse_rows([{"inputs": {}, "expected": 1}], "prompt_dataset") == [PromptExample({}, 1)]
        assert parse_rows([], "chat_messages") == []

    def test_unsupported_format(self) -> None:
        with pytest.raises(ValueError, match=r"^unsupported target format 'sft' \(expected one of \["):
            parse_rows([], "sft")

    def test_mismatched_row(self) -> None:
        rows: list[dict[str, Any]] = [HARBOR, {"messages": [USER], "id": 1}]
        with pytest.raises(
            ValueError,
            match=r"^row 1 has format 'chat_messages', expected 'harbor_task' \(keys=\['id', 'messages'\]\)$",
        ):
            parse_rows(rows, TargetFormat.HARBOR_TASK)

    def test_non_dict_row(self) -> None:
        with pytest.raises(ValueError, match=r"^row 0 has format 'unknown', expected 'chat_messages' \(keys=str\)$"):
            parse_rows(["hello"], "chat_messages")  # type: ignore[list-item]

    def test_row_errors_propagate(self) -> None:
        with pytest.raises(ValueError, match="non-empty `messages` list"):
            parse_rows([{"messages": []}], "chat_messages")
