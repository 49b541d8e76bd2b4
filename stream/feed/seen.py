"""What has been published, read back from the articles topic: no local database.

The articles topic is the record: an article in it is seen, one that is not is not, so a crash
between producing and remembering cannot lose or duplicate an item. At start the reader reads
every partition from its beginning (its retention bounds the work), then keeps following it, so
articles produced by other feed processes (or `wirewatch replay`) count as seen too. An item the
process is working on is claimed, so that two feeds listing one story produce it once.
"""

import threading
import time
from typing import Any

from stream.errors import BrokerError
from stream.kafka.connection import Connection

# The entry's own id when the article's id is its page's canonical URL: both are seen after a restart.
ITEM_HEADER = "wirewatch-feed-item"


class SeenIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._claimed: set[str] = set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def __contains__(self, item_id: object) -> bool:
        with self._lock:
            return item_id in self._seen

    def claim(self, item_id: str) -> bool:
        """True when nobody has published or is publishing item_id; it is then this caller's."""
        with self._lock:
            if item_id in self._seen or item_id in self._claimed:
                return False
            self._claimed.add(item_id)
            return True

    def confirm(self, *ids: str) -> None:
        with self._lock:
            self._seen.update(ids)
            self._claimed.difference_update(ids)

    def release(self, *ids: str) -> None:
        with self._lock:
            self._claimed.difference_update(ids)

    def add(self, ids: list[str]) -> None:
        with self._lock:
            self._seen.update(ids)


class SeenReader:
    """Follows the articles topic into a SeenIndex, in a thread of its own."""

    def __init__(self, bootstrap: str, topic: str, kafka: dict[str, str], index: SeenIndex) -> None:
        self.topic = topic
        self.index = index
        self._connection = Connection(bootstrap, kafka)
        self._consumer: Any = None
        self._lock = threading.Lock()
        self._positions: dict[int, int] = {}
        self._assigned: list[Any] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.read = 0

    def start(self, timeout: float) -> dict[int, int]:
        """Assign every partition from the beginning; returns the high watermarks to catch up to."""
        from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

        consumer = self._connection.reader("feed-seen")
        try:
            metadata = consumer.list_topics(self.topic, timeout=timeout)
            topic = metadata.topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                raise BrokerError(
                    f"the articles topic {self.topic!r} does not exist on {self._connection.bootstrap_servers}; "
                    "create it (docker compose does; `wirewatch serve --create-topics` does too)"
                )
            marks = {}
            for partition in topic.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=timeout, cached=False
                )
                self._positions[partition] = low
                marks[partition] = high
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in topic.partitions])
            self._assigned = [TopicPartition(self.topic, p) for p in topic.partitions]
        except KafkaException as exc:
            consumer.close()
            raise BrokerError(f"cannot read the articles topic {self.topic!r}: {exc}") from None
        except BaseException:
            consumer.close()
            raise
        self._consumer = consumer
        self._thread = threading.Thread(target=self._run, name="feed-seen", daemon=True)
        self._thread.start()
        return marks

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(1000, timeout=0.2)
            except Exception as exc:  # a closed consumer at shutdown, or a broken one
                self.error = str(exc)
                return
            ids: list[str] = []
            for message in messages:
                if message.error() is not None:
                    continue
                key = message.key()
                if key:
                    ids.append(key.decode("utf-8", "replace"))
                for name, value in message.headers() or []:
                    if name == ITEM_HEADER and value:
                        ids.append(value.decode("utf-8", "replace"))
            if ids:
                self.index.add(ids)
            # The consumer's position, not the last offset read: it moves past transaction markers too.
            try:
                positions = {tp.partition: tp.offset for tp in self._consumer.position(self._assigned)}
            except Exception as exc:
                self.error = str(exc)
                return
            with self._lock:
                for partition, offset in positions.items():
                    if offset >= 0:
                        self._positions[partition] = max(self._positions.get(partition, 0), offset)
                self.read += len(messages)

    def caught_up(self, marks: dict[int, int]) -> bool:
        with self._lock:
            return all(self._positions.get(p, 0) >= high for p, high in marks.items())

    def wait(self, marks: dict[int, int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.caught_up(marks):
            if time.monotonic() >= deadline or (self._thread is not None and not self._thread.is_alive()):
                return self.caught_up(marks)
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
