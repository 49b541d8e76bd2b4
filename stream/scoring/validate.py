"""Turning raw message bytes into an article, or into the reason it goes to the dead-letter topic.

Pure and Kafka-free: the checks run in the order a message can fail them, so each bad message
gets the most specific reason.
"""

import json
from dataclasses import dataclass

from pydantic import ValidationError

from stream.schemas import ArticleIn, DeadLetterReason
from stream.scoring.text import clean, compose


@dataclass(frozen=True)
class Valid:
    article: ArticleIn
    text: str  # cleaned title and body: what the model sees
    body: str  # the cleaned body alone


@dataclass(frozen=True)
class Rejected:
    reason: DeadLetterReason
    detail: str


def _schema_detail(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse(value: bytes | None, max_bytes: int) -> Valid | Rejected:
    if value is None:
        return Rejected("schema_violation", "message has no value (a tombstone)")
    if len(value) > max_bytes:
        return Rejected("too_large", f"{len(value)} bytes, the limit is {max_bytes}")
    try:
        decoded = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected("invalid_utf8", f"{exc.reason} at byte {exc.start}")
    try:
        record = json.loads(decoded)
    except json.JSONDecodeError as exc:
        return Rejected("invalid_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(record, dict):
        return Rejected("schema_violation", f"expected a JSON object, got {type(record).__name__}")
    try:
        article = ArticleIn.model_validate(record)
    except ValidationError as exc:
        return Rejected("schema_violation", _schema_detail(exc))
    if not article.text.strip():
        return Rejected("empty_text", "text is empty")
    body = clean(article.text)
    if not body:
        return Rejected("empty_text", "text is empty after cleaning (markup or boilerplate only)")
    return Valid(article, compose(clean(article.title) if article.title else "", body), body)
