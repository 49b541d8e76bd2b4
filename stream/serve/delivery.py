"""The two delivery modes, one object each: how outputs are published and offsets committed.

Both publish a batch's outputs only for partitions still assigned, count a message in flight
from consumption until its offset is committed, and stop the service (SystemicError) without
committing when delivery fails for good.

At-least-once: outputs are produced by the idempotent producer; a message is done when every
output for it is acknowledged, and the contiguous prefix of done messages is committed (every
COMMIT_INTERVAL_S, and before partitions are let go). A record the broker refuses for its own
sake (too large for the topic, invalid) is replaced by a capped dead letter, so it cannot stop
its partition. Any other delivery error stops the service: its offset is never committed.

Exactly-once: each batch is one transaction (begin, produce, send_offsets_to_transaction,
commit), following the Kafka transaction protocol: a retriable error retries the same call; an
abortable one aborts the transaction and the batch is published again on the next pass of the
loop (after a poll, so a rebalance in between is seen and the partitions gone are left out); a
fatal one (fenced by a newer instance) stops the service. Outputs of aborted transactions are
never seen by read_committed consumers. With KIP-447 fencing by group generation, the
transactional id need not be bound to partitions; by default each instance on a host claims
the lowest free slot, ``<group>-<hostname>-<n>``, so two instances on one host never fence each
other, and a restarted one takes its predecessor's slot and fences any zombie at once.
"""

import fcntl
import hashlib
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from confluent_kafka import KafkaError, KafkaException

from stream.errors import ConfigError, SystemicError
from stream.kafka.deadletter import RECORD_OVERHEAD, reject
from stream.kafka.offsets import OffsetTracker, Partition
from stream.kafka.records import Incoming, Output
from stream.kafka.transactions import Transaction, TransactionError, positions_after
from stream.serve.observability import Metrics
from stream.serve.settings import ServeSettings
from stream.serve.sink import Sink
from stream.serve.source import Source

COMMIT_INTERVAL_S = 0.5
FLUSH_TIMEOUT_S = 30.0
TXN_TIMEOUT_S = 60.0
# When the broker refuses a record for its size, its dead letter carries at most this much.
REJECTED_LIMIT = 16 * 1024
# Errors that concern one record, not the broker or the client: dead-letter it and go on.
PER_RECORD_ERRORS = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_MSG,
    KafkaError.INVALID_MSG_SIZE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD,
}


@dataclass
class Publication:
    """A batch's messages and outputs, as published (outputs may be replaced between attempts)."""

    messages: list[Incoming]
    outputs: list[Output]

    def keep(self, partitions: set[Partition]) -> None:
        self.messages = [m for m in self.messages if m.tp in partitions]
        self.outputs = [o for o in self.outputs if o.origin.tp in partitions]


class Delivery:
    """What both modes share: in-flight bookkeeping, owned partitions, latency of scores."""

    name = "delivery"

    def __init__(
        self,
        settings: ServeSettings,
        source: Source,
        sink: Sink,
        metrics: Metrics,
        log: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.source = source
        self.sink = sink
        self.metrics = metrics
        self.log = log
        self.tracker = OffsetTracker()

    def consumed(self, message: Incoming) -> None:
        self.tracker.consumed(message.tp, message.offset)

    def in_flight(self) -> int:
        return self.tracker.in_flight()

    def _observe(self, output: Output) -> None:
        origin = output.origin
        if output.kind == "score" and origin.timestamp_ms:
            self.metrics.latency.observe(max(0.0, time.time() - origin.timestamp_ms / 1000.0))

    def start(self) -> None:
        """Set up before the first poll (exactly-once: init_transactions)."""

    def publish(self, batch: Publication) -> bool:
        """Publish a finished batch; False when it must be published again later."""
        raise NotImplementedError

    def poll(self) -> None:
        """Serve delivery reports; raise SystemicError when delivery failed for good."""
        self.sink.poll(0)

    def commit(self, force: bool = False) -> None:
        """Commit what is done, when due (at-least-once; a transaction commits its own)."""

    def on_revoke(self, partitions: list[Partition]) -> None:
        """After the batches in flight were published: make the partitions' work final."""
        self.tracker.forget(partitions)

    def on_lost(self, partitions: list[Partition]) -> None:
        """Another instance may own them already: commit nothing more for them."""
        self.tracker.forget(partitions)

    def finish(self) -> None:
        """Clean shutdown: deliver and commit everything published."""

    def abandon(self) -> None:
        """Failure shutdown: commit nothing."""


class AtLeastOnce(Delivery):
    name = "at-least-once"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remaining: dict[int, tuple[Incoming, int]] = {}  # outputs still to deliver per input
        self._replacements: list[Output] = []
        self._failure: str | None = None
        self._last_commit: float | None = None

    def publish(self, batch: Publication) -> bool:
        batch.keep(self.source.assignment)
        counts = Counter(id(o.origin) for o in batch.outputs)
        for message in batch.messages:
            if counts[id(message)]:
                self._remaining[id(message)] = (message, counts[id(message)])
            else:  # not expected (every input gets a score or a dead letter), but never stuck
                self.tracker.done(message.tp, message.offset)
        for output in batch.outputs:
            self.sink.produce(output, self._delivered)
        return True

    def _delivered(self, output: Output, error: KafkaError | None) -> None:
        if error is None:
            self._observe(output)
            message, left = self._remaining.get(id(output.origin), (output.origin, 1))
            if left <= 1:
                self._remaining.pop(id(output.origin), None)
                self.tracker.done(message.tp, message.offset)
            else:
                self._remaining[id(output.origin)] = (message, left - 1)
            return
        self.metrics.kafka_errors.labels("producer", str(error.name())).inc()
        small = output.kind == "dead_letter" and output.size + RECORD_OVERHEAD <= REJECTED_LIMIT
        if error.code() in PER_RECORD_ERRORS and not small:
            # Replaced in poll(): producing from inside a delivery report is not allowed.
            self._replacements.append(reject(output, error.str(), REJECTED_LIMIT, self.settings.dlq_topic))
            self.log.warning(
                "output refused by the broker, dead-lettered", topic=output.topic, error=error.str()
            )
        elif self._failure is None:
            self._failure = f"delivery to {output.topic} failed: {error.str()}"

    def poll(self) -> None:
        self.sink.poll(0)
        while self._replacements:
            self.sink.produce(self._replacements.pop(0), self._delivered)
        self._raise_on_failure()

    def _raise_on_failure(self) -> None:
        if self._failure:
            raise SystemicError(f"{self._failure}; offsets after the last delivered output stay uncommitted")

    def _flush(self) -> int:
        undelivered = self.sink.flush(FLUSH_TIMEOUT_S)
        while self._replacements:
            self.poll()
            undelivered = self.sink.flush(FLUSH_TIMEOUT_S)
        self._raise_on_failure()
        return undelivered

    def commit(self, force: bool = False) -> None:
        now = self.clock()
        if not force and self._last_commit is not None and now - self._last_commit < COMMIT_INTERVAL_S:
            return
        self._last_commit = now
        owned = self.source.assignment
        positions = {tp: o for tp, o in self.tracker.committable().items() if tp in owned}
        if positions and self.source.commit(positions):
            self.tracker.mark_committed(positions)

    def on_revoke(self, partitions: list[Partition]) -> None:
        undelivered = self._flush()
        if undelivered:
            self.log.warning(
                "outputs undelivered at rebalance; their offsets stay uncommitted", count=undelivered
            )
        self.commit(force=True)
        super().on_revoke(partitions)

    def finish(self) -> None:
        undelivered = self._flush()
        if undelivered:
            raise SystemicError(
                f"{undelivered} outputs undelivered at shutdown; their offsets stay uncommitted"
            )
        self.commit(force=True)


class ExactlyOnce(Delivery):
    name = "exactly-once"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transaction = Transaction(self.sink, TXN_TIMEOUT_S)
        self._refused: dict[int, tuple[Output, str]] = {}  # outputs the broker refused in this transaction
        self._delivery_error: str | None = None

    def start(self) -> None:
        try:
            self.transaction.init(self.settings.startup_timeout_s)
        except KafkaException as exc:
            raise SystemicError(f"init_transactions failed: {exc.args[0].str()}") from None

    def _delivered(self, output: Output, error: KafkaError | None) -> None:
        if error is None:
            self._observe(output)
            return
        self.metrics.kafka_errors.labels("producer", str(error.name())).inc()
        small = output.kind == "dead_letter" and output.size + RECORD_OVERHEAD <= REJECTED_LIMIT
        if error.code() in PER_RECORD_ERRORS and not small:
            self._refused[id(output)] = (output, error.str())
        self._delivery_error = self._delivery_error or f"delivery to {output.topic} failed: {error.str()}"

    def publish(self, batch: Publication) -> bool:
        batch.keep(self.source.assignment)
        if not batch.messages:
            return True
        positions = positions_after((message.tp, message.offset) for message in batch.messages)
        self._refused, self._delivery_error = {}, None

        def produce() -> None:
            batch.outputs = [self.sink.produce(output, self._delivered) for output in batch.outputs]

        try:
            self.transaction.publish(produce, positions, self.source.group_metadata)
        except TransactionError as failed:
            self._failed(failed, batch)
            return False
        for message in batch.messages:
            self.tracker.done(message.tp, message.offset)
        self.tracker.mark_committed(positions)
        self.metrics.transactions.labels("committed").inc()
        return True

    def _failed(self, failed: TransactionError, batch: Publication) -> None:
        cause = f" (first delivery error: {self._delivery_error})" if self._delivery_error else ""
        self.metrics.kafka_errors.labels("producer", str(failed.error.name())).inc()
        if not failed.abortable:
            raise SystemicError(f"{failed}{cause}; stopped without committing the batch")
        self.log.warning(
            "transaction aborted, the batch will be published again",
            step=failed.step,
            error=failed.error.str() + cause,
        )
        self._abort()
        if self._refused:
            # Records the broker refused for their own sake go out as capped dead letters next time.
            replaced = {
                key: reject(output, reason, REJECTED_LIMIT, self.settings.dlq_topic)
                for key, (output, reason) in self._refused.items()
            }
            batch.outputs = [replaced.get(id(o), o) for o in batch.outputs]

    def _abort(self) -> None:
        try:
            self.transaction.abort()
        except KafkaException as exc:
            raise SystemicError(f"abort_transaction failed: {exc.args[0].str()}") from None
        self.metrics.transactions.labels("aborted").inc()

    def abandon(self) -> None:
        if self.transaction.open:
            try:
                self._abort()
            except SystemicError as exc:
                self.log.warning(
                    "could not abort the open transaction; the broker will time it out", error=str(exc)
                )


def delivery_for(
    settings: ServeSettings,
    source: Source,
    sink: Sink,
    metrics: Metrics,
    log: Any,
    clock: Callable[[], float] = time.monotonic,
) -> Delivery:
    mode = ExactlyOnce if settings.exactly_once else AtLeastOnce
    return mode(settings, source, sink, metrics, log, clock)


class TransactionalId:
    """``<group>-<hostname>-<n>`` with n the lowest slot no other process on this host holds.

    The slot is an exclusive lock on a file in the temp folder, held until the process exits: two
    instances on one host get different ids, and a restarted one gets its predecessor's back.
    """

    def __init__(self, group_id: str, lock_dir: Path | None = None, host: str | None = None) -> None:
        self.group_id = group_id
        self.lock_dir = lock_dir or Path(tempfile.gettempdir())
        self.host = host or socket.gethostname()
        self.value: str | None = None
        self._handle: IO[bytes] | None = None

    def claim(self, slots: int = 1024) -> str:
        tag = hashlib.sha256(f"{self.group_id}\0{self.host}".encode()).hexdigest()[:16]
        for slot in range(slots):
            path = self.lock_dir / f"wirewatch-txn-{tag}-{slot}.lock"
            try:
                handle = path.open("ab")
            except OSError as exc:
                raise ConfigError(
                    f"cannot create {path} to claim a transactional id ({exc.strerror}); "
                    "pass --transactional-id (WIREWATCH_TRANSACTIONAL_ID), stable per instance"
                ) from None
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self._handle = handle
            self.value = f"{self.group_id}-{self.host}-{slot}"
            return self.value
        raise ConfigError(f"no free transactional id slot for group {self.group_id}; pass --transactional-id")

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
