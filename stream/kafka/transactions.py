"""Kafka transactions: consume-transform-produce, a batch's outputs and input offsets committed as one.

Both exactly-once loops, the scorer's (``serve --exactly-once``) and the incident stage's, publish
each batch through a Transaction: begin, produce the outputs, send the batch's input positions to
the transaction, commit. The offsets commit with the outputs or not at all: commit_transaction
delivers every output first, and a failure at any step leaves nothing committed. What follows a
failure is the caller's: the scorer aborts and publishes the batch again, the incident stage
(whose in-memory state already holds the batch) aborts and stops.

Errors follow the Kafka transaction protocol: a retriable one retries the same call; an abortable
one (txn_requires_abort) needs abort_transaction; a fatal one (fenced: a newer producer claimed the
transactional id) ends the producer, which cannot even abort: the broker aborted its transaction
when the newer one's init_transactions fenced it, or aborts it at the transaction timeout.
"""

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream.kafka.offsets import Partition

TXN_RETRIES = 5
RETRY_BACKOFF_S = 0.5


def retrying_transaction(call: Callable[[], None], attempts: int = TXN_RETRIES) -> None:
    """A transactional call, retried while the error is retriable; abortable and fatal ones raise."""
    for attempt in range(attempts):
        try:
            call()
            return
        except KafkaException as exc:
            error = exc.args[0]
            if (
                error.fatal()
                or error.txn_requires_abort()
                or not error.retriable()
                or attempt == attempts - 1
            ):
                raise
            time.sleep(RETRY_BACKOFF_S * (attempt + 1))


def positions_after(offsets: Iterable[tuple[Partition, int]]) -> dict[Partition, int]:
    """Per partition, the position after the last of these offsets: what a commit covering them stores."""
    positions: dict[Partition, int] = {}
    for tp, offset in offsets:
        positions[tp] = max(positions.get(tp, 0), offset + 1)
    return positions


class TransactionalProducer(Protocol):
    """The transaction calls of a transactional producer; errors raise confluent-kafka's KafkaException."""

    def init_transactions(self, timeout: float) -> None: ...
    def begin(self) -> None: ...
    def send_offsets(self, positions: dict[Partition, int], group_metadata: Any, timeout: float) -> None: ...
    def commit(self, timeout: float) -> None: ...
    def abort(self, timeout: float) -> None: ...


class ProducerTransactions:
    """A confluent-kafka Producer's transaction calls, named as TransactionalProducer names them."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer

    @property
    def producer(self) -> Any:
        return self._producer

    def init_transactions(self, timeout: float) -> None:
        self.producer.init_transactions(timeout)

    def begin(self) -> None:
        self.producer.begin_transaction()

    def send_offsets(self, positions: dict[Partition, int], group_metadata: Any, timeout: float) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        self.producer.send_offsets_to_transaction(offsets, group_metadata, timeout)

    def commit(self, timeout: float) -> None:
        self.producer.commit_transaction(timeout)

    def abort(self, timeout: float) -> None:
        self.producer.abort_transaction(timeout)


class TransactionError(Exception):
    """A batch's transaction failed at step (begin_transaction, produce, send_offsets_to_transaction,
    commit_transaction) with Kafka's error; nothing of it is committed."""

    def __init__(self, step: str, error: KafkaError) -> None:
        super().__init__(f"{step} failed: {error.str()}")
        self.step = step
        self.error = error

    @property
    def abortable(self) -> bool:
        """abort_transaction can end it and the batch go out again; else the producer is done (fenced)."""
        error = self.error
        return not error.fatal() and bool(error.txn_requires_abort() or error.retriable())


class Transaction:
    """A transactional producer publishing one batch per transaction."""

    def __init__(self, producer: TransactionalProducer, timeout: float) -> None:
        self.producer = producer
        self.timeout = timeout
        self.open = False  # begun, and neither committed nor aborted (nor given up to the broker)

    def init(self, timeout: float) -> None:
        """init_transactions, retried while retriable for timeout seconds; raises KafkaException.

        It fences any earlier producer with the same transactional id: the broker aborts that
        producer's open transaction, and its next call fails as fenced.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.producer.init_transactions(timeout)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.fatal() or not error.retriable() or time.monotonic() > deadline:
                    raise
                time.sleep(RETRY_BACKOFF_S)

    def publish(
        self,
        produce: Callable[[], None],
        positions: dict[Partition, int],
        group_metadata: Callable[[], Any],
    ) -> None:
        """One batch: begin, produce() its outputs, send its input positions, commit.

        Raises TransactionError. When it is abortable the transaction is still open (abort());
        when it is not, the producer cannot abort it and it is left to the broker.
        """
        step = "begin_transaction"
        try:
            self.producer.begin()
            self.open = True
            step = "produce"
            produce()
            step = "send_offsets_to_transaction"
            retrying_transaction(
                lambda: self.producer.send_offsets(positions, group_metadata(), self.timeout)
            )
            step = "commit_transaction"
            retrying_transaction(lambda: self.producer.commit(self.timeout))
            self.open = False
        except KafkaException as exc:
            failed = TransactionError(step, exc.args[0])
            if not failed.abortable:
                self.open = False
            raise failed from None

    def abort(self, attempts: int = TXN_RETRIES) -> None:
        """abort_transaction, tried again while retriable; raises KafkaException when it cannot."""
        retrying_transaction(lambda: self.producer.abort(self.timeout), attempts)
        self.open = False
