"""Built-in transforms (BEHAVIOR 1.11): identity and jsonl_to_chat."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.builtins import transforms
from evsys_sdk.builtins.transforms import (
    TRANSFORM_CLASSES,
    IdentityTransform,
    JsonlToChat,
    MissingFieldError,
    OnPolicyPairs,
)
from evsys_sdk.spec.protocols import Transform

ROWS = [{"query": "2+2?", "answer": "4"}, {"query": "capital of France?", "answer": "Paris"}]


def test_classes() -> None:
    assert (IdentityTransform, JsonlToChat, OnPolicyPairs) == TRANSFORM_CLASSES
    assert [c.name for c in TRANSFORM_CLASSES] == ["identity", "jsonl_to_chat", "on_policy_pairs"]
    for cls in (IdentityTransform, JsonlToChat):  # on_policy_pairs needs an inference client: test_preference
        assert isinstance(cls(), Transform)
        with pytest.raises(ValidationError):
            cls(bogus=1)
    for name in transforms.__all__:
        assert hasattr(transforms, name), name


class TestIdentity:
    def test_returns_the_rows_unchanged_as_an_iterator(self) -> None:
        out = IdentityTransform()(ROWS)
        assert isinstance(out, Iterator)
        result = list(out)
        assert result == ROWS
        assert all(a is b for a, b in zip(result, ROWS, strict=True))

    def test_accepts_any_iterable(self) -> None:
        assert list(IdentityTransform()(r for r in ROWS)) == ROWS


class TestJsonlToChat:
    def test_defaults_user_message_only(self) -> None:
        out = list(JsonlToChat()(ROWS))
        assert out == [
            {**ROWS[0], "messages": [{"role": "user", "content": "2+2?"}]},
            {**ROWS[1], "messages": [{"role": "user", "content": "capital of France?"}]},
        ]
        assert "messages" not in ROWS[0]  # input rows are not mutated

    def test_system_user_assistant(self) -> None:
        transform = JsonlToChat(
            system_prompt="Answer briefly.", user_template="Q: {query}", assistant_template="A: {answer}"
        )
        assert next(iter(transform(ROWS)))["messages"] == [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Q: 2+2?"},
            {"role": "assistant", "content": "A: 4"},
        ]

    def test_empty_assistant_template_still_adds_a_message(self) -> None:
        messages = next(iter(JsonlToChat(assistant_template="")(ROWS)))["messages"]
        assert messages[-1] == {"role": "assistant", "content": ""}

    def test_existing_messages_are_replaced_and_other_fields_kept(self) -> None:
        row = {"query": "q", "messages": ["old"], "id": 7}
        assert list(JsonlToChat()([row])) == [{"query": "q", "id": 7, "messages": [{"role": "user", "content": "q"}]}]

    def test_format_features(self) -> None:
        row: dict[str, Any] = {"n": 3.14159, "meta": {"lang": "fr"}, "query": "{not a field}"}
        transform = JsonlToChat(user_template="{n:.2f} in {meta[lang]}; {{literal}} {query}")
        assert next(iter(transform([row])))["messages"][0]["content"] == "3.14 in fr; {literal} {not a field}"

    def test_is_lazy(self) -> None:
        out = JsonlToChat()([{"query": "ok"}, {"nope": 1}])
        assert next(iter(out))["messages"][0]["content"] == "ok"

    def test_missing_field_names_field_template_and_row(self) -> None:
        rows = [{"query": "a"}, {"question": "b"}]
        with pytest.raises(KeyError) as info:
            list(JsonlToChat(user_template="Q: {query}")(rows))
        err = info.value
        assert isinstance(err, MissingFieldError) and isinstance(err, EvsysError)
        assert (err.field, err.template, err.row_index) == ("query", "Q: {query}", 1)
        assert (
            str(err)
            == "jsonl_to_chat: row 1 has no field 'query' used by template 'Q: {query}' (row keys: ['question'])"
        )

    def test_missing_field_in_assistant_template(self) -> None:
        with pytest.raises(KeyError, match=r"row 0 has no field 'answer' used by template '\{answer\}'"):
            list(JsonlToChat(assistant_template="{answer}")([{"query": "q"}]))

    @pytest.mark.parametrize("template", ["{}", "Q: {0}", "{query} {}"])
    def test_positional_fields_are_rejected_at_config_time(self, template: str) -> None:
        with pytest.raises(ValidationError, match="has a positional field; name a row field"):
            JsonlToChat(user_template=template)
        with pytest.raises(ValidationError, match="positional field"):
            JsonlToChat(assistant_template=template)

    def test_malformed_template_is_rejected_at_config_time(self) -> None:
        with pytest.raises(ValidationError):
            JsonlToChat(user_template="{query")

    def test_config_defaults(self) -> None:
        assert JsonlToChat().config.model_dump() == {
            "system_prompt": "",
            "user_template": "{query}",
            "assistant_template": None,
        }
