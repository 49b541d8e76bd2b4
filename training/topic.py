"""A topic's recent history as the normal set: the last N articles of a Kafka topic.

The messages are read as the scorer reads them (stream.validate.parse): what the service would
dead-letter is skipped and counted here. Partitions are read by assignment, without a consumer
group, so that nothing is committed and no running scorer loses a partition.
"""

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition

from stream.articles import Article
from stream.errors import BrokerError, DataError
from stream.validate import Valid, parse

MAX_MESSAGE_BYTES = 1_000_000


@dataclass
class TopicHistory:
    articles: list[Article]
    read: int
    skipped: Counter[str] = field(default_factory=Counter)


def _shares(available: dict[int, int], limit: int) -> dict[int, int]:
    """How many of the newest messages to take per partition: limit split in proportion, capped."""
    total = sum(available.values())
    if total <= limit:
        return dict(available)
    shares = {p: available[p] * limit // total for p in available}
    for p in sorted(available, key=lambda p: available[p] - shares[p], reverse=True):
        if sum(shares.values()) >= limit:
            break
        if shares[p] < available[p]:
            shares[p] += 1
    return shares


def read_recent(
    bootstrap: str,
    topic: str,
    limit: int,
    *,
    kafka: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> TopicHistory:
    """The newest `limit` valid-or-not messages of the topic, parsed into articles."""
    if limit < 1:
        raise DataError("--limit must be at least 1")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"wirewatch-train-{uuid.uuid4().hex[:8]}",  # required by librdkafka, never used
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "socket.connection.setup.timeout.ms": 10000,
            **(kafka or {}),
        }
    )
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=min(timeout, 20.0))
        except KafkaException as exc:
            raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc.args[0].str()}") from None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise DataError(f"topic {topic!r} does not exist on {bootstrap}; nothing to learn normal from")
        ends: dict[int, tuple[int, int]] = {}
        for partition in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=min(timeout, 20.0)
            )
            ends[partition] = (low, high)
        shares = _shares({p: high - low for p, (low, high) in ends.items()}, limit)
        wanted = sum(shares.values())
        if wanted == 0:
            raise DataError(f"topic {topic!r} on {bootstrap} is empty; nothing to learn normal from")
        consumer.assign([TopicPartition(topic, p, ends[p][1] - n) for p, n in shares.items() if n > 0])
        return _consume(consumer, topic, ends, shares, timeout)
    finally:
        consumer.close()


def _consume(
    consumer: Consumer,
    topic: str,
    ends: dict[int, tuple[int, int]],
    shares: dict[int, int],
    timeout: float,
) -> TopicHistory:
    history = TopicHistory([], 0)
    pending = {p for p, n in shares.items() if n > 0}
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise BrokerError(
                f"read {history.read} of {sum(shares.values())} messages of {topic!r} in {timeout:g} s; "
                "the broker is too slow or the topic was truncated meanwhile"
            )
        message = consumer.poll(0.5)
        if message is None:
            # Transaction markers take offsets but are never delivered: the position says
            # whether a partition's end was reached anyway.
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                if tp.offset >= ends[tp.partition][1]:
                    pending.discard(tp.partition)
            continue
        error = message.error()
        if error is not None:
            if error.fatal():
                raise BrokerError(f"reading {topic!r} failed: {error.str()}")
            continue
        partition, offset = message.partition(), message.offset()
        if partition is None or offset is None or partition not in pending:
            continue
        history.read += 1
        outcome = parse(message.value(), MAX_MESSAGE_BYTES)
        if isinstance(outcome, Valid):
            a = outcome.article
            history.articles.append(
                Article(id=a.id, title=a.title, text=a.text, source_offset=f"{topic}/{partition}/{offset}")
            )
        else:
            history.skipped[outcome.reason] += 1
        if offset + 1 >= ends[partition][1]:
            pending.discard(partition)
    return history
