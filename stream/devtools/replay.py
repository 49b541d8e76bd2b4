"""`wirewatch replay`: produce a JSONL or CSV file to a topic as a live stream, keyed by id."""

import csv
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from tqdm import tqdm

from stream.errors import BrokerError, DataError
from stream.kafka.connection import Connection


@dataclass
class ReplayResult:
    sent: int
    delivered: int
    failed: int
    seconds: float


def records(path: Path) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, value) per article. JSONL lines go out byte for byte, malformed ones too."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                record = {k: v for k, v in row.items() if k and v not in (None, "")}
                yield str(record.get("id", "")).encode() or None, json.dumps(record).encode()
        return
    with path.open("rb") as handle:
        for line in handle:
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield _key_of(line), line


def _key_of(line: bytes) -> bytes | None:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    key = record.get("id") if isinstance(record, dict) else None
    return str(key).encode() if key is not None else None


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


class _Pacer:
    """Spreads sends evenly at `rate` per second (no limit when rate <= 0)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.start = time.monotonic()
        self.count = 0

    def wait(self) -> None:
        self.count += 1
        if self.interval:
            delay = self.start + self.count * self.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def replay(
    path: Path,
    bootstrap: str,
    topic: str,
    *,
    rate: float = 0.0,
    limit: int | None = None,
    kafka: dict[str, str] | None = None,
    progress: bool = True,
    on_sent: Callable[[bytes | None], None] | None = None,
) -> ReplayResult:
    producer = Connection(bootstrap, kafka or {}).producer()
    stats = {"delivered": 0, "failed": 0}
    errors: list[str] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is None:
            stats["delivered"] += 1
        else:
            stats["failed"] += 1
            errors.append(error.str())

    total = count_lines(path) if path.suffix.lower() != ".csv" else None
    if limit is not None and total is not None:
        total = min(total, limit)
    pacer = _Pacer(rate)
    started = time.monotonic()
    sent = 0
    with tqdm(total=total, desc=f"replay → {topic}", unit="msg", disable=not progress) as bar:
        for key, value in records(path):
            if limit is not None and sent >= limit:
                break
            pacer.wait()
            _produce(producer, topic, key, value, delivered)
            if on_sent is not None:
                on_sent(key)
            sent += 1
            bar.update(1)
            producer.poll(0)
    undelivered = producer.flush(30)
    if undelivered or stats["failed"]:
        detail = errors[0] if errors else f"{undelivered} messages not acknowledged within 30 s"
        raise BrokerError(
            f"replay to {topic} at {bootstrap} failed for {stats['failed'] + undelivered} messages: {detail}"
        )
    return ReplayResult(sent, stats["delivered"], stats["failed"], time.monotonic() - started)


def _produce(producer: Producer, topic: str, key: bytes | None, value: bytes, callback: Any) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=callback)
            return
        except BufferError:
            producer.poll(0.1)
