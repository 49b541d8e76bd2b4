"""The input stage: a Kafka consumer with manual offsets, created on first use."""

from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from stream.errors import BrokerError
from stream.offsets import Partition
from stream.records import Headers, Incoming
from stream.settings import ServeSettings

PartitionsCallback = Callable[[list[Partition]], None]


def consumer_config(settings: ServeSettings, stats_cb: Callable[[str], None] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": settings.group_id,
        # Offsets move only when the service says so: after the outputs are delivered.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": settings.session_timeout_ms,
        # A fetch waits at most this long for data; librdkafka's 500 ms default shows up as
        # latency with brokers (Tansu among them) that answer a waiting fetch only at its deadline.
        "fetch.wait.max.ms": 50,
        "statistics.interval.ms": 5000 if stats_cb else 0,
    }
    if stats_cb:
        config["stats_cb"] = stats_cb
    config.update(settings.kafka)
    return config


def _headers(message: Message) -> Headers:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else v or b"") for k, v in pairs]


def _incoming(message: Message) -> Incoming:
    kind, timestamp = message.timestamp()
    return Incoming(
        topic=str(message.topic()),
        partition=int(message.partition() or 0),
        offset=int(message.offset() or 0),
        key=message.key(),
        value=message.value(),
        headers=_headers(message),
        timestamp_ms=None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
    )


class Source:
    def __init__(
        self,
        settings: ServeSettings,
        on_assign: PartitionsCallback,
        on_revoke: PartitionsCallback,
        on_lost: PartitionsCallback,
        stats_cb: Callable[[str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._callbacks = (on_assign, on_revoke, on_lost)
        self._stats_cb = stats_cb
        self._consumer: Consumer | None = None
        self.assignment: set[Partition] = set()
        self.paused = False

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(consumer_config(self._settings, self._stats_cb))
        return self._consumer

    def subscribe(self) -> None:
        on_assign, on_revoke, on_lost = self._callbacks

        def assigned(_: Consumer, partitions: list[TopicPartition]) -> None:
            tps = [(p.topic, p.partition) for p in partitions]
            self.assignment |= set(tps)
            on_assign(tps)

        def revoked(_: Consumer, partitions: list[TopicPartition]) -> None:
            tps = [(p.topic, p.partition) for p in partitions]
            on_revoke(tps)
            self.assignment -= set(tps)

        def lost(_: Consumer, partitions: list[TopicPartition]) -> None:
            tps = [(p.topic, p.partition) for p in partitions]
            on_lost(tps)
            self.assignment -= set(tps)

        self.consumer.subscribe(
            [self._settings.input_topic], on_assign=assigned, on_revoke=revoked, on_lost=lost
        )

    def poll(self, max_messages: int, timeout: float) -> list[Incoming]:
        """Messages, without the end-of-partition and other informational events."""
        messages = self.consumer.consume(num_messages=max_messages, timeout=timeout)
        out = []
        for message in messages:
            error = message.error()
            if error is None:
                out.append(_incoming(message))
            elif error.code() != KafkaError._PARTITION_EOF and error.fatal():
                raise BrokerError(f"consumer failed: {error.str()}")
        return out

    def pause(self) -> None:
        if not self.paused and self.assignment:
            self.consumer.pause([TopicPartition(t, p) for t, p in self.assignment])
            self.paused = True

    def resume(self) -> None:
        if self.paused:
            self.consumer.resume([TopicPartition(t, p) for t, p in self.assignment])
            self.paused = False

    def commit(self, positions: dict[Partition, int]) -> None:
        if not positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise BrokerError(f"offset commit failed: {exc.args[0].str()}") from None

    def group_metadata(self) -> Any:
        return self.consumer.consumer_group_metadata()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
