"""`wirewatch tail`: follow the alerts (or any output topic) and print them readably."""

import json
import textwrap
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError

from stream.errors import BrokerError


def format_alert(record: dict[str, object]) -> str:
    score = record.get("score")
    title = record.get("title") or record.get("id")
    head = f"{score:.3f}  {title}" if isinstance(score, float) else f"{title}"
    lines = [head]
    meta = [str(record[k]) for k in ("publisher", "published_at", "url") if record.get(k)]
    if meta:
        lines.append("       " + " | ".join(meta))
    if record.get("snippet"):
        lines += textwrap.wrap(
            str(record["snippet"]), width=100, initial_indent="       ", subsequent_indent="       "
        )
    explanation = record.get("explanation")
    if isinstance(explanation, list) and explanation:
        lines.append("       why (score drop without the sentence / its score alone):")
        for part in explanation:
            if isinstance(part, dict):
                sentence = textwrap.shorten(str(part.get("sentence", "")), width=110, placeholder="…")
                contribution, alone = float(part.get("contribution", 0.0)), float(part.get("alone", 0.0))
                lines.append(f"        {contribution:+.3f} / {alone:.3f}  {sentence}")
    return "\n".join(lines)


def tail(
    bootstrap: str,
    topic: str,
    *,
    as_json: bool = False,
    from_beginning: bool = False,
    limit: int | None = None,
    idle_timeout: float | None = None,
    kafka: dict[str, str] | None = None,
    emit: Callable[[str], None] = print,
) -> int:
    """Print messages until interrupted, `limit` messages, or `idle_timeout` seconds without one."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # A throwaway group: tail never commits and never steals partitions from scorers.
            "group.id": f"wirewatch-tail-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "isolation.level": "read_committed",
            "session.timeout.ms": 6000,
            **(kafka or {}),
        }
    )
    consumer.subscribe([topic])
    shown = 0
    last = time.monotonic()
    try:
        while limit is None or shown < limit:
            message = consumer.poll(0.5)
            if message is None:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    break
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise BrokerError(f"topic {topic} does not exist on {bootstrap}")
                if error.fatal():
                    raise BrokerError(f"tail failed: {error.str()}")
                continue
            last = time.monotonic()
            value = message.value() or b""
            if as_json:
                emit(value.decode("utf-8", errors="replace"))
            else:
                try:
                    record = json.loads(value)
                except ValueError:
                    record = {
                        "id": (message.key() or b"").decode(errors="replace"),
                        "snippet": value[:200].decode(errors="replace"),
                    }
                emit(format_alert(record) if isinstance(record, dict) else str(record))
            shown += 1
    finally:
        consumer.close()
    return shown
