"""The output stage: an idempotent (optionally transactional) producer, created on first use.

Every output is fitted to the producer's ``message.max.bytes`` before it is produced (see
stream.kafka.deadletter), so one oversized article or dead letter can never stop the stream. The
transaction calls raise confluent-kafka's KafkaException as they come: the delivery mode reads
the error (retriable, abortable, fatal) and decides.
"""

from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stream.kafka.deadletter import fit
from stream.kafka.records import Output
from stream.kafka.transactions import ProducerTransactions, TransactionalProducer
from stream.serve.observability import KafkaEvents
from stream.serve.settings import ServeSettings

DeliveryCallback = Callable[[Output, KafkaError | None], None]
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000  # librdkafka's


class Sink(TransactionalProducer, Protocol):
    """What the service needs from its output (KafkaSink here, a fake in the unit tests)."""

    limit: int

    def produce(self, output: Output, on_delivery: DeliveryCallback) -> Output: ...
    def poll(self, timeout: float = 0.0) -> None: ...
    def flush(self, timeout: float) -> int: ...


class KafkaSink(ProducerTransactions):
    """The producer, with its transaction calls (exactly-once mode) from ProducerTransactions."""

    def __init__(
        self,
        settings: ServeSettings,
        events: KafkaEvents,
        transactional_id: str | None = None,
        producer: Any = None,
    ) -> None:
        self._settings = settings
        self._events = events
        self._transactional_id = transactional_id
        self._producer: Producer | None = producer  # given by tests; else created on first use
        self.limit = int(settings.kafka.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = self._settings.connection.producer(
                fixed=self._events.config(), transactional_id=self._transactional_id
            )
        return self._producer

    def produce(self, output: Output, on_delivery: DeliveryCallback) -> Output:
        """Produce the output, or the dead letter that replaces it when it is too large; returns which."""
        dlq = self._settings.dlq_topic
        output = fit(output, self.limit, dlq)
        try:
            self._produce(output, on_delivery)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                raise
            # Our estimate of the framing was short: leave a wide margin and try once more.
            output = fit(output, self.limit // 4, dlq)
            self._produce(output, on_delivery)
        return output

    def _produce(self, output: Output, on_delivery: DeliveryCallback) -> None:
        def delivered(error: KafkaError | None, _message: Message) -> None:
            on_delivery(output, error)

        headers: list[tuple[str, str | bytes | None]] = list(output.headers)
        while True:
            try:
                self.producer.produce(
                    output.topic, value=output.value, key=output.key, headers=headers, on_delivery=delivered
                )
                return
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self.producer.poll(0.1)

    def poll(self, timeout: float = 0.0) -> None:
        self.producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        """Wait for every delivery report; returns how many messages are still undelivered."""
        return int(self.producer.flush(timeout))
