"""Fakes for the service loop: librdkafka-like consumer and producer in memory, a scorer, an executor.

They behave as the real clients do where the service depends on it: a paused partition stays
paused when a rebalance gives it back (librdkafka keeps the application's pause flag), offsets
start at the committed position, a record over message.max.bytes raises MSG_SIZE_TOO_LARGE at
produce(), delivery reports are served by poll()/flush(), a transaction commits or aborts its
records as a whole, and errors can be scripted per call.
"""

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream.errors import ScoringError
from stream.schemas import ModelRef
from stream.scoring.scorer import Scores
from stream.serve.delivery import delivery_for
from stream.serve.observability import KafkaEvents, Metrics
from stream.serve.process import BatchProcessor
from stream.serve.service import Scoring, Service
from stream.serve.settings import ServeSettings
from stream.serve.sink import KafkaSink
from stream.serve.source import KafkaSource

Partition = tuple[str, int]
INPUT = "articles"


def error(code: int, *, fatal: bool = False, retriable: bool = False, abort: bool = False) -> KafkaException:
    return KafkaException(
        KafkaError(code, f"scripted {code}", fatal=fatal, retriable=retriable, txn_requires_abort=abort)
    )


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)

    def json(self) -> Any:
        return json.loads(self.value)

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


@dataclass
class FakeMessage:
    record: Record

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self.record.topic

    def partition(self) -> int:
        return self.record.partition

    def offset(self) -> int:
        return self.record.offset

    def key(self) -> bytes | None:
        return self.record.key

    def value(self) -> bytes:
        return self.record.value

    def headers(self) -> list[tuple[str, bytes]]:
        return self.record.headers

    def timestamp(self) -> tuple[int, int]:
        return self.record.timestamp()


@dataclass
class FakeCluster:
    """The topics (what was produced, and committed for read_committed readers) and group offsets."""

    logs: dict[Partition, list[Record]] = field(default_factory=lambda: defaultdict(list))
    committed: dict[Partition, int] = field(default_factory=dict)

    def append(
        self, topic: str, partition: int, key: bytes | None, value: bytes, headers: Any = None
    ) -> Record:
        log = self.logs[(topic, partition)]
        record = Record(topic, partition, len(log), key, value, list(headers or []))
        log.append(record)
        return record

    def feed(self, values: Iterable[bytes], partitions: int = 1, topic: str = INPUT) -> None:
        for i, value in enumerate(values):
            self.append(topic, i % partitions, f"k{i}".encode(), value)

    def topic(self, name: str) -> list[Record]:
        return [r for (t, _), log in sorted(self.logs.items()) if t == name for r in log]


class FakeConsumer:
    """Eager rebalances, queued by the test and served by consume() one per call, as librdkafka does."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.assignment: set[Partition] = set()
        self.paused: set[Partition] = set()  # librdkafka's app pause flag: survives re-assignment
        self.offsets: dict[Partition, int] = {}  # next offset to fetch
        self.events: list[tuple[str, set[Partition]]] = []
        self.callbacks: dict[str, Callable[..., None]] = {}
        self.commit_errors: list[KafkaException] = []
        self.stuck: set[Partition] = set()  # partitions that return nothing, as a wedged fetcher would
        self.closed = False
        self.generation = 0

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any, on_lost: Any) -> None:
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}

    def assign_partitions(self, partitions: Iterable[Partition]) -> None:
        self.events.append(("assign", set(partitions)))

    def add_partitions(self, partitions: Iterable[Partition]) -> None:
        """An incremental (cooperative) assignment: the others stay assigned, and as they were."""
        self.events.append(("add", set(partitions)))

    def revoke_all(self) -> None:
        self.events.append(("revoke", set()))

    def lose_all(self) -> None:
        self.events.append(("lost", set()))

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if self.events:
            kind, partitions = self.events.pop(0)
            tps = [TopicPartition(t, p) for t, p in sorted(partitions or self.assignment)]
            self.callbacks["assign" if kind == "add" else kind](self, tps)
            if kind == "add":
                self.assignment |= partitions
                for tp in partitions:
                    self.offsets[tp] = self.cluster.committed.get(tp, 0)
            elif kind == "assign":
                self.generation += 1
                self.assignment = set(partitions)
                for tp in partitions:
                    self.offsets[tp] = self.cluster.committed.get(tp, 0)
            else:
                self.assignment = set()
            return []
        out = []
        for tp in sorted(self.assignment - self.paused - self.stuck):
            log = self.cluster.logs.get(tp, [])
            while self.offsets[tp] < len(log) and len(out) < num_messages:
                out.append(FakeMessage(log[self.offsets[tp]]))
                self.offsets[tp] += 1
        return out

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(p.topic, p.partition, self.position_of((p.topic, p.partition))) for p in partitions
        ]

    def position_of(self, tp: Partition) -> int:
        return self.offsets.get(tp, -1001)

    def get_watermark_offsets(self, partition: TopicPartition, cached: bool = False) -> tuple[int, int]:
        return 0, len(self.cluster.logs.get((partition.topic, partition.partition), []))

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {(p.topic, p.partition) for p in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {(p.topic, p.partition) for p in partitions}

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = False) -> None:
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        for tp in offsets:
            self.cluster.committed[(tp.topic, tp.partition)] = tp.offset

    def consumer_group_metadata(self) -> tuple[str, int]:
        return ("group", self.generation)

    def close(self) -> None:
        """Like librdkafka: leaving the group revokes the assignment through the callback first."""
        if self.assignment and self.callbacks:
            self.callbacks["revoke"](self, [TopicPartition(t, p) for t, p in sorted(self.assignment)])
            self.assignment = set()
        self.closed = True


class FakeProducer:
    """Delivery reports on poll()/flush(); transactions that commit or abort their records whole."""

    def __init__(self, cluster: FakeCluster, max_bytes: int = 1_000_000) -> None:
        self.cluster = cluster
        self.max_bytes = max_bytes
        self.queue: list[tuple[Record, Any]] = []
        self.delivered: list[Record] = []  # acknowledged (at-least-once: what readers see)
        self.refuse: Callable[[Record], KafkaError | None] = lambda record: None
        self.errors: dict[str, list[KafkaException]] = defaultdict(list)  # scripted, per method
        self.calls: list[str] = []
        self.in_txn = False
        self.txn: list[Record] = []
        self.txn_failed = False
        self.txn_offsets: dict[Partition, int] = {}
        self.committed_records: list[Record] = []  # exactly-once: what read_committed readers see

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.errors[name]:
            raise self.errors[name].pop(0)

    def produce(self, topic: str, value: bytes, key: bytes | None, headers: Any, on_delivery: Any) -> None:
        size = len(value) + len(key or b"") + sum(len(k) + len(v or b"") for k, v in headers)
        if size > self.max_bytes:
            raise error(KafkaError.MSG_SIZE_TOO_LARGE)
        self._call("produce")
        record = Record(
            topic,
            0,
            -1,
            key,
            value,
            [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in headers],
        )
        self.queue.append((record, on_delivery))

    def poll(self, timeout: float = 0.0) -> int:
        served, self.queue = self.queue, []
        for record, on_delivery in served:
            refused = self.refuse(record)
            if refused is None:
                self.delivered.append(record)
                if self.in_txn:
                    self.txn.append(record)
            elif self.in_txn:
                self.txn_failed = True
            on_delivery(refused, FakeMessage(record))
        return len(served)

    def flush(self, timeout: float = 0.0) -> int:
        self.poll()
        return 0

    def init_transactions(self, timeout: float) -> None:
        self._call("init_transactions")

    def begin_transaction(self) -> None:
        self._call("begin_transaction")
        self.in_txn, self.txn, self.txn_failed, self.txn_offsets = True, [], False, {}

    def send_offsets_to_transaction(
        self, offsets: list[TopicPartition], metadata: Any, timeout: float
    ) -> None:
        self._call("send_offsets_to_transaction")
        self.txn_offsets = {(tp.topic, tp.partition): tp.offset for tp in offsets}

    def commit_transaction(self, timeout: float) -> None:
        self.poll()
        if self.txn_failed:
            raise error(KafkaError._INCONSISTENT, abort=True)
        self._call("commit_transaction")
        self.committed_records += self.txn
        self.cluster.committed.update(self.txn_offsets)
        self.in_txn = False

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort_transaction")
        self.queue, self.txn, self.in_txn = [], [], False


class FakeScorer:
    """Scores 0.9 for texts with "attack", 0.1 otherwise; scripted failures and values by marker."""

    def __init__(
        self, values: dict[str, float] | None = None, fail_on: Sequence[str] = (), broken: bool = False
    ) -> None:
        self.values = values or {}
        self.fail_on = list(fail_on)
        self.broken = broken
        self.calls = 0

    def value(self, text: str) -> float:
        for marker, value in self.values.items():
            if marker in text:
                return value
        return 0.9 if "attack" in text else 0.1

    def score(self, texts: Sequence[str]) -> Scores:
        self.calls += 1
        if self.broken:
            raise ScoringError("ONNX Runtime failed: the session is broken")
        for text in texts:
            if any(marker in text for marker in self.fail_on):
                raise ScoringError(f"ONNX Runtime failed on {text[:20]!r}")
        values = np.asarray([self.value(t) for t in texts], dtype=np.float32)
        return Scores(values, windows=len(texts), tokens=sum(len(t.split()) for t in texts))


class InlineExecutor(Executor):
    """Runs each batch at submit(): the loop's steps become deterministic."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "Future[Any]":
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class LazyFuture(Future[Any]):
    """Not done until someone waits for it: a batch still scoring when the loop looks."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._fn: Callable[[], Any] | None = fn

    def finish(self) -> None:
        fn, self._fn = self._fn, None
        if fn is not None:
            try:
                self.set_result(fn())
            except BaseException as exc:
                self.set_exception(exc)

    def result(self, timeout: float | None = None) -> Any:
        self.finish()
        return super().result(timeout)


class LazyExecutor(Executor):
    """Batches finish only when the test says (finish_all) or the loop blocks on them."""

    def __init__(self) -> None:
        self.futures: list[LazyFuture] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "Future[Any]":
        future = LazyFuture(lambda: fn(*args, **kwargs))
        self.futures.append(future)
        return future

    def finish_all(self) -> None:
        for future in self.futures:
            future.finish()


class StuckExecutor(Executor):
    """A worker that never finishes (a hung ONNX Runtime call)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "Future[Any]":
        return Future()


def article(i: int, text: str = "a quiet day in the city council") -> bytes:
    return json.dumps({"id": f"a{i}", "title": f"title {i}", "text": text}).encode()


def settings(**overrides: Any) -> ServeSettings:
    fields: dict[str, Any] = {"bundle": Path("unused"), "batch_size": 4, "max_wait_ms": 0, "metrics_port": 0}
    fields.update(overrides)
    return ServeSettings(**fields)


def processor(
    s: ServeSettings, scorer: FakeScorer | None = None, version: str = "1.0.0", **kw: Any
) -> BatchProcessor:
    return BatchProcessor(
        scorer or FakeScorer(), s, ModelRef(name="fake", version=version, digest="d" + version), 0.5, **kw
    )


@dataclass
class Harness:
    service: Service
    consumer: FakeConsumer
    producer: FakeProducer
    cluster: FakeCluster
    clock: list[float]

    def start(self) -> "Harness":
        """What run() does before its loop, for tests that drive step() themselves."""
        self.service.delivery.start()
        self.service.source.subscribe(self.service)
        return self

    def steps(self, until: Callable[[], bool], limit: int = 200) -> int:
        """Run loop passes until the condition holds; every loop in a test is bounded."""
        for n in range(limit):
            if until():
                return n
            self.clock[0] += 0.1
            self.service.step()
        raise AssertionError(f"condition not reached in {limit} steps")

    def run(self, n: int) -> None:
        for _ in range(n):
            self.clock[0] += 0.1
            self.service.step()

    def outputs(self, topic: str) -> list[Record]:
        if self.service.settings.exactly_once:
            return [r for r in self.producer.committed_records if r.topic == topic]
        return [r for r in self.producer.delivered if r.topic == topic]

    def ids(self, topic: str) -> list[str]:
        return [r.json()["id"] for r in self.outputs(topic)]


def harness(
    cluster: FakeCluster,
    s: ServeSettings | None = None,
    scoring: Scoring | None = None,
    partitions: int = 1,
    executor: Executor | None = None,
    max_bytes: int = 1_000_000,
    **service_kw: Any,
) -> Harness:
    s = s or settings()
    log = structlog.get_logger("test")
    metrics = Metrics()
    consumer, producer = FakeConsumer(cluster), FakeProducer(cluster, max_bytes)
    events = KafkaEvents("consumer", log, metrics)
    source = KafkaSource(s, events, metrics, consumer=consumer)
    sink = KafkaSink(s, KafkaEvents("producer", log, metrics), producer=producer)
    sink.limit = max_bytes
    clock = [0.0]
    service = Service(
        s,
        source,
        sink,
        scoring or Scoring(processor(s)),
        metrics=metrics,
        delivery=delivery_for(s, source, sink, metrics, log, lambda: clock[0]),
        executor=executor or InlineExecutor(),
        clock=lambda: clock[0],
        **service_kw,
    )
    consumer.assign_partitions((INPUT, p) for p in range(partitions))
    return Harness(service, consumer, producer, cluster, clock)
