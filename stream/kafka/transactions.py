"""Kafka transactions: a transactional call retried while librdkafka calls its error retriable."""

import time
from collections.abc import Callable

from confluent_kafka import KafkaException

TXN_RETRIES = 5
RETRY_BACKOFF_S = 0.5


def retrying_transaction(call: Callable[[], None]) -> None:
    """A transactional call, retried while the error is retriable; abortable and fatal ones raise."""
    for attempt in range(TXN_RETRIES):
        try:
            call()
            return
        except KafkaException as exc:
            error = exc.args[0]
            if (
                error.fatal()
                or error.txn_requires_abort()
                or not error.retriable()
                or attempt == TXN_RETRIES - 1
            ):
                raise
            time.sleep(RETRY_BACKOFF_S * (attempt + 1))
