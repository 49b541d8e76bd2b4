"""The input stage: a Kafka consumer with manual offsets, created on first use.

Pause state is kept per partition and reconciled with the assignment on every call of
``set_paused``: librdkafka keeps a partition paused across a rebalance that gives it back, and
pauses nothing that is assigned later, so one "paused" flag for the whole consumer can leave a
partition paused for good (the stall of issue 8) or let new partitions run over the limit.
"""

from typing import Any, Protocol

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from stream.errors import SystemicError
from stream.kafka.offsets import Partition
from stream.kafka.records import Incoming
from stream.kafka.topics import incoming
from stream.serve.observability import KafkaEvents, Metrics
from stream.serve.settings import ServeSettings


class Listener(Protocol):
    """What the source tells about the group: called from inside poll()."""

    def assigned(self, partitions: list[Partition]) -> None: ...
    def revoked(self, partitions: list[Partition]) -> None: ...
    def lost(self, partitions: list[Partition]) -> None: ...


class Source(Protocol):
    """What the service needs from its input (KafkaSource here, a fake in the unit tests)."""

    assignment: set[Partition]

    def subscribe(self, listener: Listener) -> None: ...
    def poll(self, max_messages: int, timeout: float) -> list[Incoming]: ...
    def set_paused(self, paused: bool) -> set[Partition]: ...
    def commit(self, positions: dict[Partition, int]) -> bool: ...
    def group_metadata(self) -> Any: ...
    def lag(self) -> dict[Partition, int]: ...
    def close(self) -> None: ...


def consumer_tuning(settings: ServeSettings) -> dict[str, Any]:
    """The scorer's consumer defaults (Connection.consumer sets what its guarantees rest on)."""
    return {
        "session.timeout.ms": settings.session_timeout_ms,
        # A fetch waits at most this long for data; librdkafka's 500 ms default shows up as
        # latency with brokers (Tansu among them) that answer a waiting fetch only at its deadline.
        "fetch.wait.max.ms": 50,
    }


def _tps(partitions: set[Partition]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t, p in sorted(partitions)]


class KafkaSource:
    def __init__(
        self, settings: ServeSettings, events: KafkaEvents, metrics: Metrics, consumer: Any = None
    ) -> None:
        self._settings = settings
        self._events = events
        self._metrics = metrics
        self._consumer: Consumer | None = consumer  # given by tests; else created on first use
        self.assignment: set[Partition] = set()
        self._paused: set[Partition] = set()  # what we told librdkafka, for assigned partitions
        self._unknown: set[Partition] = set()  # assigned since the last reconcile: state not ours

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            s = self._settings
            self._consumer = s.connection.consumer(s.group_id, consumer_tuning(s), self._events.config())
        return self._consumer

    def subscribe(self, listener: Listener) -> None:
        def assigned(_: Consumer, partitions: list[TopicPartition]) -> None:
            tps = [(p.topic, p.partition) for p in partitions]
            self.assignment |= set(tps)
            self._unknown |= set(tps)
            self._paused -= set(tps)
            listener.assigned(tps)

        def revoked(_: Consumer, partitions: list[TopicPartition]) -> None:
            tps = [(p.topic, p.partition) for p in partitions]
            listener.revoked(tps)
            self._let_go(tps)

        def lost(_: Consumer, partitions: list[TopicPartition]) -> None:
            tps = [(p.topic, p.partition) for p in partitions]
            listener.lost(tps)
            self._let_go(tps)

        self.consumer.subscribe(
            [self._settings.input_topic], on_assign=assigned, on_revoke=revoked, on_lost=lost
        )

    def _let_go(self, tps: list[Partition]) -> None:
        self.assignment -= set(tps)
        self._unknown -= set(tps)
        # librdkafka may keep these paused if they come back: _unknown makes us set them then.
        self._paused -= set(tps)
        self._metrics.forget_partitions(tps)

    def poll(self, max_messages: int, timeout: float) -> list[Incoming]:
        """Messages, without the end-of-partition and other informational events."""
        messages = self.consumer.consume(num_messages=max_messages, timeout=timeout)
        out = []
        for message in messages:
            error = message.error()
            if error is None:
                out.append(incoming(message))
            elif error.code() != KafkaError._PARTITION_EOF:
                self._events.error(error)
                if error.fatal():
                    raise SystemicError(f"the consumer failed: {error.str()}")
        return out

    def set_paused(self, paused: bool) -> set[Partition]:
        """Pause every assigned partition, or resume them all; returns the partitions paused now."""
        if paused:
            pause = self.assignment - self._paused
            if pause:
                self.consumer.pause(_tps(pause))
                self._paused |= pause
        else:
            resume = (self._paused | self._unknown) & self.assignment
            if resume:
                self.consumer.resume(_tps(resume))
                self._paused -= resume
        self._unknown.clear()
        return set(self._paused)

    def commit(self, positions: dict[Partition, int]) -> bool:
        """Commit synchronously; False (logged and counted) when the group refused, e.g. mid-rebalance."""
        if not positions:
            return True
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0]
            self._events.error(error)
            if error.fatal():
                raise SystemicError(f"offset commit failed: {error.str()}") from None
            return False
        return True

    def group_metadata(self) -> Any:
        return self.consumer.consumer_group_metadata()

    def lag(self) -> dict[Partition, int]:
        """Messages not read yet per assigned partition: the last fetch's high watermark minus the position.

        Not librdkafka's statistics: their consumer_lag counts from the committed offset, which
        transactions do not update, and would show lag on an idle exactly-once stream for good.
        """
        if not self.assignment:
            return {}
        lags: dict[Partition, int] = {}
        for tp in self.consumer.position(_tps(self.assignment)):
            _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                lags[(tp.topic, tp.partition)] = max(0, high - tp.offset)
        self._metrics.show_lag(lags)
        return lags

    def close(self) -> None:
        # close() leaves the group, which revokes through the callbacks: they still need the consumer.
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
