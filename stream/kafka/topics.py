"""Topic helpers: check and create topics, read a compacted topic to its end, a consumed message."""

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.cimpl import NewTopic

from stream.errors import BrokerError
from stream.kafka.connection import Connection
from stream.kafka.records import Headers, Incoming


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 3
    compacted: bool = False


def ensure_topics(
    connection: Connection, specs: Iterable[TopicSpec], create: bool, timeout: float
) -> list[str]:
    """Fail fast with a clear message when Kafka is down or a topic is missing (created with create).

    Returns the names of the topics it created.
    """
    specs = list(specs)
    bootstrap = connection.bootstrap_servers
    admin = connection.admin()
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(
            f"cannot reach Kafka at {bootstrap} within {timeout:g}s ({exc.args[0].str()}); start a broker "
            "(`wirewatch broker` or docker compose up) or set --bootstrap-servers / WIREWATCH_BOOTSTRAP_SERVERS"
        ) from None
    missing = [s for s in specs if s.name not in metadata.topics]
    if not missing:
        return []
    if not create:
        names = ", ".join(s.name for s in missing)
        raise BrokerError(
            f"topic(s) {names} do not exist on {bootstrap}; create them (docker-compose.yml does) "
            "or pass --create-topics"
        )
    new = [
        NewTopic(
            s.name, num_partitions=s.partitions, config={"cleanup.policy": "compact"} if s.compacted else {}
        )
        for s in missing
    ]
    for topic, future in admin.create_topics(new).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"cannot create topic {topic}: {exc.args[0].str()}") from None
    return [s.name for s in missing]


def headers_of(message: Any) -> Headers:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else v or b"") for k, v in pairs]


def incoming(message: Any) -> Incoming:
    """A consumed confluent-kafka message as the stages see it."""
    kind, timestamp = message.timestamp()
    return Incoming(
        topic=str(message.topic()),
        partition=int(message.partition() or 0),
        offset=int(message.offset() or 0),
        key=message.key(),
        value=message.value(),
        headers=headers_of(message),
        timestamp_ms=None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
    )


def read_table(connection: Connection, topic: str, timeout: float) -> dict[bytes, tuple[bytes, Headers]]:
    """The latest committed value per key of a (compacted) topic, read from its start to its end.

    The end is each partition's high watermark when the read starts; a key whose latest record is
    a tombstone is left out. Raises BrokerError when the end is not reached within timeout.
    """
    consumer = connection.reader("read", {"enable.partition.eof": True})
    table: dict[bytes, tuple[bytes, Headers]] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise BrokerError(f"cannot read topic {topic}: {metadata.error if metadata else 'missing'}")
        ends: dict[int, int] = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            if high > low:
                ends[partition] = high
        if not ends:
            return table
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        pending = set(ends)
        while pending:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"could not read {topic} to its end within {timeout:g}s (partitions {sorted(pending)} left)"
                )
            message = consumer.poll(0.2)
            if message is not None:
                error = message.error()
                if error is None:
                    if message.value() is None:
                        table.pop(message.key() or b"", None)
                    else:
                        table[message.key() or b""] = (message.value() or b"", headers_of(message))
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise BrokerError(f"reading {topic} failed: {error.str()}")
            # The end is reached when the position passes the high watermark seen at the start
            # (commit markers of transactions are not delivered, so offsets alone decide).
            positions = consumer.position([TopicPartition(topic, p) for p in pending])
            pending -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
    finally:
        consumer.close()
    return table
