"""The output stage: an idempotent (optionally transactional) producer, created on first use."""

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from stream.errors import BrokerError
from stream.offsets import Partition
from stream.records import Output
from stream.settings import ServeSettings

DeliveryCallback = Callable[[Output, KafkaError | None], None]


def producer_config(settings: ServeSettings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        # Retries never duplicate or reorder outputs within a partition.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
    }
    if settings.exactly_once:
        config["transactional.id"] = settings.effective_transactional_id
    config.update(settings.kafka)
    return config


class Sink:
    def __init__(self, settings: ServeSettings, on_delivery: DeliveryCallback) -> None:
        self._settings = settings
        self._on_delivery = on_delivery
        self._producer: Producer | None = None

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(producer_config(self._settings))
        return self._producer

    def publish(self, outputs: list[Output]) -> None:
        for output in outputs:
            self._produce(output)

    def _produce(self, output: Output) -> None:
        def delivered(error: KafkaError | None, _message: Message) -> None:
            self._on_delivery(output, error)

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

    # Transactions (exactly-once mode).
    def init_transactions(self, timeout: float) -> None:
        self._txn(lambda: self.producer.init_transactions(timeout), "init_transactions")

    def begin(self) -> None:
        self._txn(self.producer.begin_transaction, "begin_transaction")

    def commit_transaction(
        self, positions: dict[Partition, int], group_metadata: Any, timeout: float
    ) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        self._txn(
            lambda: self.producer.send_offsets_to_transaction(offsets, group_metadata, timeout),
            "send_offsets",
        )
        self._txn(lambda: self.producer.commit_transaction(timeout), "commit_transaction")

    @staticmethod
    def _txn(call: Callable[[], Any], what: str) -> None:
        try:
            call()
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            raise BrokerError(f"{what} failed: {error.str()}") from None
