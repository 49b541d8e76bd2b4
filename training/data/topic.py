"""A topic's recent history as the normal set: the last N articles of a Kafka topic.

The messages are read as the scorer reads them (stream.scoring.validate.parse): what the service would
dead-letter is skipped and counted here. Partitions are read by assignment, without a consumer
group, so that nothing is committed and no running scorer loses a partition.
"""

import time
from collections import Counter, deque
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition

from stream.errors import BrokerError, DataError
from stream.kafka.connection import Connection
from stream.scoring.articles import Article
from stream.scoring.validate import Valid, parse

MAX_MESSAGE_BYTES = 1_000_000


@dataclass
class TopicHistory:
    articles: list[Article]
    read: int
    skipped: Counter[str] = field(default_factory=Counter)


def read_recent(
    bootstrap: str,
    topic: str,
    limit: int,
    *,
    kafka: dict[str, str] | None = None,
    timeout: float = 120.0,
    idle: float = 5.0,
) -> TopicHistory:
    """The newest `limit` messages of the topic (by timestamp, over all partitions), parsed.

    Each partition is read from `limit` before its high watermark to its end. The end is where
    no message arrives for `idle` seconds, not the watermark: transaction markers take offsets
    that are never delivered, and some Kafka-compatible brokers (the embedded Tansu among them)
    report a watermark below the last offset. Too low a watermark only makes the read longer.
    """
    if limit < 1:
        raise DataError("--limit must be at least 1")
    consumer = Connection(bootstrap, kafka or {}).reader(
        "train", {"socket.connection.setup.timeout.ms": 10000}
    )
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=20.0)
        except KafkaException as exc:
            raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc.args[0].str()}") from None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise DataError(f"topic {topic!r} does not exist on {bootstrap}; nothing to learn normal from")
        starts = []
        for partition in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=20.0)
            starts.append(TopicPartition(topic, partition, max(low, high - limit)))
        consumer.assign(starts)
        newest = _newest(consumer, limit, timeout, idle)
    finally:
        consumer.close()
    if not newest:
        raise DataError(f"topic {topic!r} on {bootstrap} is empty; nothing to learn normal from")
    history = TopicHistory([], len(newest))
    for _timestamp, partition, offset, value in newest:
        outcome = parse(value, MAX_MESSAGE_BYTES)
        if isinstance(outcome, Valid):
            a = outcome.article
            history.articles.append(
                Article(id=a.id, title=a.title, text=a.text, source_offset=f"{topic}/{partition}/{offset}")
            )
        else:
            history.skipped[outcome.reason] += 1
    return history


Record = tuple[int, int, int, bytes | None]  # timestamp, partition, offset, value


def _newest(consumer: Consumer, limit: int, timeout: float, idle: float) -> list[Record]:
    kept: dict[int, deque[Record]] = {}
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() - last < idle:
        if time.monotonic() > deadline:
            raise BrokerError(
                f"the topic kept growing for {timeout:g} s; stop the producers or lower --limit"
            )
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.fatal():
                raise BrokerError(f"reading the topic failed: {error.str()}")
            continue
        partition, offset = message.partition(), message.offset()
        if partition is None or offset is None:
            continue
        last = time.monotonic()
        _kind, timestamp = message.timestamp()
        kept.setdefault(partition, deque(maxlen=limit)).append(
            (timestamp, partition, offset, message.value())
        )
    merged = sorted(record for records in kept.values() for record in records)
    return merged[-limit:]
