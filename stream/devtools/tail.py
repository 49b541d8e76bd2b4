"""`wirewatch tail`: follow the alerts (or any output topic) and print them readably."""

import json
import textwrap
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import OFFSET_END, KafkaError, TopicPartition

from stream.errors import BrokerError
from stream.kafka.connection import Connection
from stream.scoring.bundle import read_manifest
from stream.scoring.drift import MIN_SCORES, PSI_THRESHOLD, DriftSnapshot, DriftWindow


def format_alert(record: dict[str, object]) -> str:
    score = record.get("score")
    title = record.get("title") or record.get("id")
    head = f"{score:.3f}  {title}" if isinstance(score, float) else f"{title}"
    lines = [head]
    meta = [str(record[k]) for k in ("publisher", "published_at", "url") if record.get(k)]
    if record.get("incident_id"):
        similarity = record.get("similarity")
        joined = f"joined at {similarity:.2f}" if isinstance(similarity, float) else "new"
        meta.insert(0, f"incident {record['incident_id']} ({joined})")
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
    # A throwaway group: tail never commits and never steals partitions from scorers.
    consumer = Connection(bootstrap, kafka or {}).consumer(
        f"wirewatch-tail-{uuid.uuid4().hex[:8]}",
        {"auto.offset.reset": "earliest" if from_beginning else "latest", "session.timeout.ms": 6000},
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


def format_stats(snapshot: DriftSnapshot, throughput: float) -> str:
    """A text report of the last hour: histogram bars, alert rate and the drift verdict."""
    s = snapshot
    lines = [
        f"last hour: {s.scores} scores, {s.alerts} alerts ({s.alerts_per_hour:.1f}/hour), {throughput:.1f} scored/s (1 min)"
    ]
    if s.psi is None:
        lines.append("drift: no reference (pass --bundle)" if s.reference is None else "drift: no scores yet")
    else:
        verdict = (
            "DRIFT"
            if s.drifted
            else ("ok" if s.scores >= MIN_SCORES else f"ok (fewer than {MIN_SCORES} scores)")
        )
        lines.append(
            f"drift: PSI {s.psi:.3f} against the bundle's validation scores (flag at >= {PSI_THRESHOLD}): {verdict}"
        )
    reference = s.reference.histogram if s.reference else None
    width = 40
    for i, share in enumerate(s.histogram):
        low = i / len(s.histogram)
        bar = "#" * round(share * width)
        ref = f"  ref {reference[i]:6.1%}" if reference else ""
        lines.append(f"  {low:4.2f}-{low + 1 / len(s.histogram):4.2f} {share:6.1%} {bar:<{width}}{ref}")
    return "\n".join(lines)


def stats(
    bootstrap: str,
    topic: str,
    *,
    bundle: Path | None = None,
    interval: float = 10.0,
    limit: int | None = None,
    idle_timeout: float | None = None,
    kafka: dict[str, str] | None = None,
    emit: Callable[[str], None] = print,
    clock: Callable[[], float] = time.time,
) -> DriftSnapshot:
    """Follow the scores topic from an hour ago; print a report every interval seconds and at the end."""
    reference = read_manifest(bundle).score_distribution if bundle else None
    if bundle is not None and reference is None:
        emit(
            f"{bundle}: this bundle records no validation score distribution (exported before drift existed)"
        )
    window = DriftWindow(reference, clock=clock)
    consumer = Connection(bootstrap, kafka or {}).reader("tail")
    seen: deque[float] = deque()
    count = 0
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise BrokerError(f"topic {topic} does not exist on {bootstrap}")
        since = int((clock() - window.window_s) * 1000)
        asked = [TopicPartition(topic, p, since) for p in metadata.partitions]
        consumer.assign(
            [
                TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
                for tp in consumer.offsets_for_times(asked, timeout=10)
            ]
        )
        last_message = last_report = time.monotonic()
        while limit is None or count < limit:
            message = consumer.poll(0.5)
            now = time.monotonic()
            if message is not None and message.error() is None:
                last_message = now
                try:
                    record = json.loads(message.value() or b"")
                    value, alert = float(record["score"]), bool(record["is_alert"])
                except (ValueError, KeyError, TypeError):
                    continue
                _kind, ts = message.timestamp()
                at = ts / 1000.0 if ts and ts > 0 else clock()
                window.observe(value, alert, at)
                if at >= clock() - 60:  # the hour read back at the start is not throughput
                    seen.append(clock())
                count += 1
            if now - last_report >= interval:
                emit(_report(window, seen, clock()))
                last_report = now
            if idle_timeout is not None and now - last_message > idle_timeout:
                break
    finally:
        consumer.close()
    emit(_report(window, seen, clock()))
    return window.snapshot()


def _report(window: DriftWindow, seen: deque[float], now: float) -> str:
    while seen and seen[0] < now - 60:
        seen.popleft()
    return format_stats(window.snapshot(), len(seen) / 60.0)
