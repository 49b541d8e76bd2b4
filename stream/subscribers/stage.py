"""`wirewatch incidents`: group the alerts topic into incidents, exactly once.

Read-process-write in Kafka transactions: for each batch of alerts it embeds them (the embedder,
ONNX Runtime), assigns each to an incident (stream.subscribers.incidents), and in one transaction publishes
every alert with its ``incident_id`` to the incident-alerts topic (keyed by incident id, so an
incident's reports stay in order in one partition), the new state of every incident that
changed to the compacted incidents topic (keyed by incident id), and the batch's input offsets.
State and offsets therefore move together: after a crash or restart the stage reads the
incidents topic back to its end, which gives exactly the open incidents as of the last committed
offsets, and resumes from there.

Where an incident lives: grouping compares an alert with every open incident, whatever
partition either came from, so one stage at a time holds the open incidents of an alerts topic.
Several instances may run; they elect that one through Kafka: each is a member of one consumer
group on a one-partition lease topic, and the member assigned its partition groups (sticky, so a
joining standby does not take it over). A standby takes over when the holder leaves the group or
its session times out: it claims the transactional id, which is fixed per alerts topic
(``<group>-<alerts topic>``), so the broker aborts whatever the old holder had open and fences
it, then rebuilds the state from the incidents topic. Any number of scorer instances may feed the
alerts topic; alerts are about 1% of articles, so one grouping stage keeps up with many scorers.
"""

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import structlog
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from pydantic import ValidationError

from stream.errors import BrokerError, SystemicError
from stream.kafka.config import redact_kafka
from stream.kafka.connection import Connection
from stream.kafka.deadletter import dead_letter
from stream.kafka.topics import TopicSpec, ensure_topics, incoming, read_table
from stream.kafka.transactions import ProducerTransactions, Transaction, TransactionError, positions_after
from stream.schemas import ALERTS_TOPIC, DLQ_TOPIC, INCIDENT_ALERTS_TOPIC, INCIDENTS_TOPIC, Alert
from stream.subscribers.incidents import (
    DEFAULT_EMBEDDING_WEIGHT,
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW_HOURS,
    STATE_HEADER,
    Group,
    Grouper,
    incident_text,
)
from stream.subscribers.lexical import combine, name_vectors

TXN_TIMEOUT_S = 30.0
# An alerts partition that gave no alert for this long is caught up (or idle): it no longer
# holds back the event time that closes incidents (Grouper.watermark).
READING_S = 30.0
# How long a holder that stopped answering keeps the lease before a standby takes over.
LEASE_SESSION_TIMEOUT_MS = "10000"


class Embeds(Protocol):
    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]: ...


@dataclass
class IncidentOptions:
    bootstrap_servers: str
    alerts_topic: str = ALERTS_TOPIC
    incidents_topic: str = INCIDENTS_TOPIC
    incident_alerts_topic: str = INCIDENT_ALERTS_TOPIC
    dlq_topic: str = DLQ_TOPIC
    group_id: str = "wirewatch-incidents"
    transactional_id: str | None = None
    lease_topic: str | None = None
    threshold: float = DEFAULT_THRESHOLD
    window_hours: float = DEFAULT_WINDOW_HOURS
    embedding_weight: float = DEFAULT_EMBEDDING_WEIGHT
    batch_size: int = 64
    create_topics: bool = False
    topic_partitions: int = 3
    startup_timeout_s: float = 30.0
    kafka: dict[str, str] = field(default_factory=dict)

    @property
    def txn_id(self) -> str:
        return self.transactional_id or f"{self.group_id}-{self.alerts_topic}"

    @property
    def lease(self) -> str:
        return self.lease_topic or f"{self.alerts_topic}-incidents-lease"


@dataclass
class BatchOutcome:
    alerts: int = 0
    opened: int = 0
    joined: int = 0
    closed: int = 0
    dead_letters: int = 0


class IncidentStage:
    def __init__(self, options: IncidentOptions, embedder: Embeds, log: Any = None) -> None:
        self.options = options
        self.connection = Connection(options.bootstrap_servers, options.kafka)
        self.embedder = embedder
        self.log = log or structlog.get_logger("wirewatch.incidents")
        self.grouper = Grouper(options.threshold, timedelta(hours=options.window_hours))
        self._stop = threading.Event()
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._lease: Consumer | None = None
        self._leased = False  # this instance is assigned the lease topic's partition
        self.grouping = False  # it claimed the writer's id, rebuilt the state and reads alerts
        self.standing_by = False  # it joined the lease's group, and another member holds the lease
        self._heard: dict[int, float] = {}  # alerts partition -> when it last gave an alert (monotonic)

    def stop(self) -> None:
        self._stop.set()

    # Startup ------------------------------------------------------------------------------

    def start(self) -> None:
        """Topics, and membership of the lease's group: grouping starts once the lease is ours."""
        o = self.options
        ensure_topics(
            self.connection,
            [
                TopicSpec(o.alerts_topic, o.topic_partitions),
                TopicSpec(o.incidents_topic, o.topic_partitions, compacted=True),
                TopicSpec(o.incident_alerts_topic, o.topic_partitions),
                TopicSpec(o.dlq_topic, o.topic_partitions),
            ],
            o.create_topics,
            o.startup_timeout_s,
        )
        # The stage's own internal topic, never written to: created when missing, as Kafka Streams
        # creates its internal topics, so that adding the lease needs no step from the operator.
        ensure_topics(self.connection, [TopicSpec(o.lease, 1)], True, o.startup_timeout_s)
        self._lease = self.connection.consumer(
            f"{o.txn_id}-lease",
            {"session.timeout.ms": LEASE_SESSION_TIMEOUT_MS},
            # The holder keeps the lease when a standby joins: no needless handover.
            {"partition.assignment.strategy": "cooperative-sticky"},
        )
        self._lease.subscribe(
            [o.lease], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if partitions:
            self._leased = True
        elif not self._leased and not self.standing_by:
            self.standing_by = True
            self.log.info("standby: another instance holds the lease", lease_topic=self.options.lease)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if partitions:
            self._leased = False

    def begin_grouping(self) -> None:
        """Take over as the one writer: fence any earlier one, rebuild its incidents, read on."""
        o = self.options
        self.grouper = Grouper(o.threshold, timedelta(hours=o.window_hours))
        self.claim()
        self.rebuild()
        self._consumer = self.connection.consumer(o.group_id)
        self._heard = {}
        self._consumer.subscribe(
            [o.alerts_topic], on_assign=self._on_alerts_assign, on_revoke=self._on_alerts_revoke
        )
        self.grouping, self.standing_by = True, False
        self.log.info("grouping", alerts_topic=o.alerts_topic, transactional_id=o.txn_id)

    def end_grouping(self) -> None:
        """The lease moved on (between batches): let go of the alerts and the state."""
        self._close_clients()
        self.grouper = Grouper(self.options.threshold, timedelta(hours=self.options.window_hours))
        self.grouping, self.standing_by = False, True
        self.log.info("standby: the lease went to another instance")

    def claim(self) -> None:
        """Become the one writer of this alerts topic's incidents (fences any earlier one)."""
        o = self.options
        self._producer = self.connection.producer(transactional_id=o.txn_id)
        try:
            # Fences any earlier writer of this id: its open transaction is aborted, its next fails.
            self._transaction().init(o.startup_timeout_s)
        except KafkaException as exc:
            raise SystemicError(f"init_transactions failed: {exc.args[0].str()}") from None

    def _transaction(self) -> Transaction:
        """The claimed producer's transactions (a batch each, see stream.kafka.transactions)."""
        return Transaction(ProducerTransactions(self._producer), TXN_TIMEOUT_S)

    def rebuild(self) -> int:
        """Open incidents from the compacted topic; returns how many."""
        o = self.options
        table = read_table(self.connection, o.incidents_topic, o.startup_timeout_s * 4)
        restored = 0
        for key, (value, headers) in table.items():
            state = next((v for k, v in headers if k == STATE_HEADER), None)
            if state is None:
                self.log.warning("incident record without state, skipped", key=key.decode(errors="replace"))
                continue
            group = Group.from_record(value, state)
            if group.record.status == "open":
                self.grouper.restore(group)
                restored += 1
        self.log.info("incidents rebuilt", open=restored, records=len(table), topic=o.incidents_topic)
        return restored

    # The loop -----------------------------------------------------------------------------

    def run(self, stop_after: Callable[[], bool] = lambda: False) -> None:
        self.start()
        assert self._lease is not None
        self.log.info(
            "started; waiting for the lease",
            lease_topic=self.options.lease,
            kafka=redact_kafka(self.options.kafka),
        )
        try:
            while not self._stop.is_set() and not stop_after():
                # Rebalance callbacks run inside this poll, so the lease changes hands between batches.
                self._lease.poll(0 if self.grouping else 0.5)
                if self._leased and not self.grouping:
                    self.begin_grouping()
                elif self.grouping and not self._leased:
                    self.end_grouping()
                if not self.grouping:
                    continue
                assert self._consumer is not None
                messages = self._consumer.consume(num_messages=self.options.batch_size, timeout=0.5)
                ready = []
                for message in messages:
                    error = message.error()
                    if error is None:
                        ready.append(message)
                    elif error.fatal():
                        raise SystemicError(f"the consumer failed: {error.str()}")
                    else:
                        self.log.warning("kafka error", client="consumer", reason=error.str())
                if ready:
                    self.process(ready)
        finally:
            self.close()

    def process(self, messages: list[Message]) -> BatchOutcome:
        outcome = BatchOutcome()
        alerts: list[tuple[Message, Alert]] = []
        dead: list[tuple[Message, str]] = []
        for message in messages:
            try:
                alerts.append((message, Alert.model_validate_json(message.value() or b"")))
            except ValidationError as exc:
                dead.append((message, str(exc).splitlines()[0][:500]))
        started = time.perf_counter()
        texts = [incident_text(a) for _, a in alerts]
        vectors = (
            combine(self.embedder.embed(texts), name_vectors(texts), self.options.embedding_weight)
            if alerts
            else None
        )
        embed_s = time.perf_counter() - started
        grouped = []
        openings: list[tuple[Group, bytes, bytes]] = []  # each new incident as it opened
        for message in messages:
            self._heard[int(message.partition() or 0)] = time.monotonic()
        for k, (message, alert) in enumerate(alerts):
            assert vectors is not None
            assignment = self.grouper.assign(alert, vectors[k], partition=int(message.partition() or 0))
            grouped.append((message, assignment.alert))
            outcome.opened += int(assignment.opened)
            outcome.joined += int(not assignment.opened)
            if assignment.opened:
                g = assignment.group
                openings.append((g, g.record.model_dump_json().encode(), g.state_header()))
        closed = self.grouper.expire(reading=self._reading())
        changed = self.grouper.changed() + closed
        outcome.alerts, outcome.closed, outcome.dead_letters = len(alerts), len(closed), len(dead)
        # An incident that opened and grew (or closed) within this batch is published as it
        # opened too, first: its one-report record is what tells `wirewatch notify` it is new,
        # so a storm that arrives in one batch is still announced.
        first = [
            (g, value, state) for g, value, state in openings if g.record.model_dump_json().encode() != value
        ]
        self._publish(messages, grouped, changed, dead, first)
        self.grouper.settle(changed)
        self.log.info(
            "batch",
            size=len(messages),
            opened=outcome.opened,
            joined=outcome.joined,
            closed=outcome.closed,
            dead_letters=outcome.dead_letters,
            open_incidents=len(self.grouper.groups),
            embed_ms=round(embed_s * 1000, 1),
        )
        return outcome

    def _reading(self) -> set[int]:
        """Assigned alerts partitions that gave an alert, or were assigned, within READING_S."""
        now = time.monotonic()
        return {p for p, heard in self._heard.items() if now - heard < READING_S}

    def _on_alerts_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._heard.update((tp.partition, time.monotonic()) for tp in partitions)

    def _on_alerts_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._heard.pop(tp.partition, None)

    def _publish(
        self,
        messages: list[Message],
        grouped: list[tuple[Message, Any]],
        changed: list[Group],
        dead: list[tuple[Message, str]],
        first: list[tuple[Group, bytes, bytes]],
    ) -> None:
        o, producer, consumer = self.options, self._producer, self._consumer
        assert producer is not None
        assert consumer is not None
        failures: list[str] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(error.str())

        def produce() -> None:
            for _, alert in grouped:
                producer.produce(
                    o.incident_alerts_topic, key=alert.incident_id.encode(), value=alert.model_dump_json().encode(),
                    on_delivery=delivered,
                )  # fmt: skip
            for group, value, state in first:  # before the incident's later state: same key, same partition
                producer.produce(
                    o.incidents_topic,
                    key=group.record.id.encode(),
                    value=value,
                    headers=[(STATE_HEADER, state)],
                    on_delivery=delivered,
                )
            for group in changed:
                producer.produce(
                    o.incidents_topic,
                    key=group.record.id.encode(),
                    value=group.record.model_dump_json().encode(),
                    headers=[(STATE_HEADER, group.state_header())],
                    on_delivery=delivered,
                )
            for message, reason in dead:
                letter = dead_letter(
                    incoming(message), "schema_violation", f"not an alert: {reason}", o.dlq_topic
                )
                headers: list[tuple[str, str | bytes | None]] = list(letter.headers)
                producer.produce(
                    letter.topic, key=letter.key, value=letter.value, headers=headers, on_delivery=delivered
                )

        positions = positions_after((m.tp, m.offset) for m in map(incoming, messages))
        transaction = self._transaction()
        try:
            transaction.publish(produce, positions, consumer.consumer_group_metadata)
        except TransactionError as failed:
            if not failed.error.fatal():
                # Once: the stage stops either way, and each attempt may wait the whole timeout.
                with contextlib.suppress(KafkaException):
                    transaction.abort(attempts=1)
            cause = f" (first delivery error: {failures[0]})" if failures else ""
            # The in-memory state already holds this batch: stop, and let a restart rebuild it.
            raise SystemicError(
                f"the incidents transaction failed: {failed.error.str()}{cause}; stopped without committing the batch"
            ) from None
        if failures:
            raise SystemicError(f"delivery failed inside a committed transaction: {failures[0]}")

    def close(self) -> None:
        self._close_clients()
        if self._lease is not None:
            lease, self._lease = self._lease, None
            lease.close()  # leaves the group: a standby gets the lease at once

    def _close_clients(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                producer.flush(5)
            except KafkaException as exc:
                # A fenced (or otherwise failed) transactional producer raises here; what it
                # produced was committed or aborted already, and the error that stopped the
                # stage must not be replaced by this one.
                self.log.warning("producer closed in error", reason=exc.args[0].str())


def run_incidents(options: IncidentOptions, embedder_path: Path) -> None:
    from stream.scoring.embedder import Embedder

    embedder = Embedder(embedder_path)
    stage = IncidentStage(options, embedder)

    def stop(signum: int, _frame: Any) -> None:
        stage.log.info("signal received, finishing the batch", signal=signal.Signals(signum).name)
        stage.stop()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stage.run()
    except BrokerError:
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
