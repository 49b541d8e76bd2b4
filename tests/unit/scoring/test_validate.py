"""Dead-letter routing: each kind of malformed input gets its own reason and a useful detail."""

import json

import pytest

from stream.scoring.validate import Rejected, Valid, parse

LIMIT = 10_000


def _value(record: object) -> bytes:
    return json.dumps(record).encode()


def test_a_valid_article_is_cleaned_with_its_title() -> None:
    outcome = parse(
        _value({"id": "a1", "title": "Bomb in Lima", "text": "LIMA, 3 JAN 90 -- [TEXT] A BOMB EXPLODED."}),
        LIMIT,
    )
    assert isinstance(outcome, Valid)
    assert outcome.text == "bomb in lima. a bomb exploded."
    assert outcome.article.id == "a1"


def test_unknown_fields_and_optional_ones_are_accepted() -> None:
    record = {
        "id": "x",
        "text": "t",
        "source": "AP",
        "url": "https://example.org/a",
        "published_at": "2004-09-17T14:03:00Z",
        "lang": "en",
        "label": 1,
        "anything": {"nested": True},
    }
    assert isinstance(parse(_value(record), LIMIT), Valid)


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (b'{"id": "a", "text": "x"', "invalid_json", "line 1"),
        (b"\xff\xfe{not utf8}", "invalid_utf8", "byte 0"),
        (b'{"id": "caf\xe9", "text": "x"}', "invalid_utf8", "invalid continuation"),
        (_value({"text": "no id"}), "schema_violation", "id: Field required"),
        (_value({"id": "", "text": "x"}), "schema_violation", "id: String should have at least 1 character"),
        (_value({"id": "a" * 257, "text": "x"}), "schema_violation", "at most 256"),
        (_value({"id": 7, "text": "x"}), "schema_violation", "id: Input should be a valid string"),
        (_value({"id": "a", "text": ["list"]}), "schema_violation", "text: Input should be a valid string"),
        (_value({"id": "a", "text": "x", "title": 5}), "schema_violation", "title"),
        (_value({"id": "a", "text": "x", "published_at": "yesterday"}), "schema_violation", "ISO 8601"),
        (_value(["not", "an", "object"]), "schema_violation", "expected a JSON object, got list"),
        (_value("just a string"), "schema_violation", "got str"),
        (None, "schema_violation", "tombstone"),
        (_value({"id": "a", "text": ""}), "empty_text", "text is empty"),
        (_value({"id": "a", "text": "   \n\t"}), "empty_text", "text is empty"),
        (
            _value({"id": "a", "title": "T", "text": "[TEXT] [PASSAGE OMITTED]"}),
            "empty_text",
            "after cleaning",
        ),
        (_value({"id": "a", "text": "x" * LIMIT}), "too_large", f"the limit is {LIMIT}"),
    ],
)
def test_malformed_input_is_rejected_with_its_reason(value: bytes | None, reason: str, detail: str) -> None:
    outcome = parse(value, LIMIT)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == reason
    assert detail in outcome.detail
