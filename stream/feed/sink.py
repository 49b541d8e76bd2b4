"""The articles topic's producer: idempotent, acks=all, keyed by article id.

send() hands each article a Delivery; an item becomes seen only when the broker acknowledged it.
"""

import json
import threading
from collections.abc import Callable
from typing import Any

from stream.feed.seen import ITEM_HEADER
from stream.kafka.connection import Connection


class Delivery:
    """The acknowledgements of one poll's articles: wait() until all are in, or the time is up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self.pending = 0
        self.failed = 0

    def add(self) -> None:
        with self._lock:
            self.pending += 1

    def finish(self, ok: bool) -> None:
        with self._done:
            self.pending -= 1
            self.failed += int(not ok)
            self._done.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._done:
            return self._done.wait_for(lambda: self.pending == 0, timeout=timeout)


class ArticleSink:
    def __init__(
        self, bootstrap: str, topic: str, kafka: dict[str, str], on_error: Callable[[Any], None]
    ) -> None:
        self.topic = topic
        self._connection = Connection(bootstrap, kafka)
        self._on_error = on_error
        self._producer: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def _ensure(self) -> Any:
        with self._lock:
            if self._producer is None:
                self._producer = self._connection.producer(
                    {"linger.ms": 20, "compression.type": "lz4"}, {"error_cb": self._on_error}
                )
                # Delivery callbacks run in poll(); one thread serves them for every feed worker.
                self._poller = threading.Thread(target=self._serve, name="feed-delivery", daemon=True)
                self._poller.start()
            return self._producer

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def send(
        self, article: dict[str, Any], item_id: str, feed: str, done: Callable[[str | None], None]
    ) -> None:
        """Produce one article; done(None) once acknowledged, done(error text) when refused."""
        from confluent_kafka import KafkaException

        producer = self._ensure()

        def delivered(err: Any, _msg: Any) -> None:
            done(None if err is None else str(err))

        body = json.dumps(article, ensure_ascii=False).encode("utf-8")
        headers = [("wirewatch-feed", feed.encode()), (ITEM_HEADER, item_id.encode())]
        while True:
            try:
                producer.produce(
                    self.topic, body, article["id"].encode(), headers=headers, on_delivery=delivered
                )
                return
            except BufferError:
                producer.flush(1.0)  # the local queue is full: let it drain, then try again
            except KafkaException as exc:
                done(str(exc))
                return

    def flush(self, timeout: float) -> int:
        producer = self._producer
        return 0 if producer is None else int(producer.flush(timeout))

    def close(self, timeout: float = 10.0) -> int:
        left = self.flush(timeout)
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=2)
        return left
