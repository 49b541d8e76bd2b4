"""The service loop: consume, micro-batch, score in a worker thread, publish, commit.

Delivery semantics (README, "Delivery semantics"):

* At-least-once (default). A message's offset is committed only after every output for it (score
  and alert, or dead letter) has been acknowledged by the broker: OffsetTracker commits the
  contiguous prefix of finished messages per partition. The commit order is: outputs produced,
  delivery reports received, then offsets committed. A crash at any point loses nothing; a
  restart re-scores at most the uncommitted tail.
* Exactly-once (``exactly_once``). Each batch's outputs and its input offsets are committed in one
  Kafka transaction (``send_offsets_to_transaction``), so a ``read_committed`` consumer sees each
  score exactly once, across crashes too. Any transaction error stops the service; the restart
  resumes from the last committed transaction.

The main thread never blocks on the model: batches are scored in a worker thread while it keeps
polling (so the group never evicts a slow instance), publishing finished batches and committing.
Above ``max_in_flight`` unfinished messages it pauses its partitions, and resumes below half.
When partitions are revoked it finishes the batches in flight, waits for their delivery and
commits before letting go; messages of those partitions still waiting in the batcher are
abandoned uncommitted, for the next owner to read. SIGTERM or SIGINT stops consuming, finishes
the batch, flushes, commits and closes; a second Ctrl-C exits at once.
"""

import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from stream.batcher import Batcher
from stream.errors import BrokerError
from stream.observability import HealthServer, Metrics
from stream.offsets import OffsetTracker, Partition
from stream.process import BatchProcessor, BatchResult, processor_for
from stream.records import Incoming, Output
from stream.settings import ServeSettings
from stream.sink import Sink
from stream.source import Source

COMMIT_INTERVAL_S = 0.5
MAX_BATCHES_IN_FLIGHT = 2
FLUSH_TIMEOUT_S = 60.0
TXN_TIMEOUT_S = 60.0


@dataclass
class _Batch:
    seq: int
    messages: list[Incoming]
    future: "Future[BatchResult]"


def _offset_ranges(messages: list[Incoming]) -> str:
    ranges: dict[Partition, tuple[int, int]] = {}
    for m in messages:
        low, high = ranges.get(m.tp, (m.offset, m.offset))
        ranges[m.tp] = (min(low, m.offset), max(high, m.offset))
    return " ".join(f"{t}[{p}]:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))


class Service:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.log = structlog.get_logger("wirewatch.serve")
        self.metrics = Metrics()
        self.tracker = OffsetTracker()
        self.batcher: Batcher[Incoming] = Batcher(settings.batch_size, settings.max_wait_ms / 1000.0)
        self.source = Source(settings, self._assigned, self._revoked, self._lost, self.metrics.update_lag)
        self.sink = Sink(settings, self._delivered)
        self.processor: BatchProcessor | None = None
        self.health: HealthServer | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        self._inflight: deque[_Batch] = deque()
        self._remaining: dict[int, tuple[Incoming, int]] = {}  # outputs still to deliver per input
        self._stopping = threading.Event()
        self._failure: str | None = None
        self._seq = 0
        self._last_commit = 0.0

    # Startup -------------------------------------------------------------------------------

    def start(self) -> None:
        """Everything that can fail fast: the bundle, the model, Kafka, the topics, the port."""
        s = self.settings
        self.processor = processor_for(s)
        scorer, bundle = self.processor.scorer, self.processor.scorer.bundle
        self._check_topics()
        if s.metrics_port:
            self.health = HealthServer(s.metrics_host, s.metrics_port, self.metrics, self.is_ready)
            self.health.start()
        if s.exactly_once:
            self.sink.init_transactions(s.startup_timeout_s)
        self.source.subscribe()
        self.log.info(
            "started",
            model=bundle.label,
            threshold=bundle.manifest.threshold,
            providers=scorer.providers,
            bootstrap_servers=s.bootstrap_servers,
            input_topic=s.input_topic,
            group_id=s.group_id,
            mode="exactly-once" if s.exactly_once else "at-least-once",
            metrics_port=self.health.port if self.health else None,
            kafka=s.redacted_kafka(),
        )

    def _check_topics(self) -> None:
        s = self.settings
        admin = AdminClient({"bootstrap.servers": s.bootstrap_servers, **s.kafka})
        try:
            metadata = admin.list_topics(timeout=s.startup_timeout_s)
        except KafkaException as exc:
            raise BrokerError(
                f"cannot reach Kafka at {s.bootstrap_servers} within {s.startup_timeout_s:g}s "
                f"({exc.args[0].str()}); start a broker (`wirewatch broker` or docker compose up) "
                "or set --bootstrap-servers / WIREWATCH_BOOTSTRAP_SERVERS"
            ) from None
        wanted = [s.input_topic, s.scores_topic, s.alerts_topic, s.dlq_topic]
        missing = [t for t in wanted if t not in metadata.topics]
        if not missing:
            return
        if not s.create_topics:
            raise BrokerError(
                f"topic(s) {', '.join(missing)} do not exist on {s.bootstrap_servers}; create them "
                "(docker-compose.yml does) or pass --create-topics"
            )
        futures = admin.create_topics([NewTopic(t, num_partitions=s.topic_partitions) for t in missing])
        for topic, future in futures.items():
            try:
                future.result(timeout=s.startup_timeout_s)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise BrokerError(f"cannot create topic {topic}: {exc.args[0].str()}") from None
        self.log.info("created topics", topics=missing, partitions=s.topic_partitions)

    def is_ready(self) -> bool:
        return self.processor is not None and bool(self.source.assignment) and not self._stopping.is_set()

    # The loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Run until stop() or a signal; raises BrokerError when outputs cannot be delivered."""
        self.start()
        restore = self._install_signals()
        try:
            while not self._stopping.is_set():
                self.step()
        finally:
            try:
                self._shutdown()
            finally:
                restore()

    def step(self) -> None:
        s = self.settings
        wait = self.batcher.time_left()
        # A due batch that cannot be dispatched (the worker is busy) must not make this loop spin:
        # it would take a core from the model. Poll with the full timeout then.
        if wait is None or len(self._inflight) >= MAX_BATCHES_IN_FLIGHT:
            wait = 0.1
        for message in self.source.poll(s.batch_size, min(0.1, wait)):
            self.metrics.consumed.inc()
            self.tracker.consumed(message.tp, message.offset)
            self.batcher.add(message)
        self._dispatch()
        self._complete(block=False)
        self.sink.poll(0)
        self._raise_on_failure()
        self._commit(force=False)
        self._backpressure()

    def stop(self) -> None:
        self._stopping.set()

    def _dispatch(self, everything: bool = False) -> None:
        while (
            len(self.batcher)
            and (self.batcher.ready() or everything)
            and len(self._inflight) < MAX_BATCHES_IN_FLIGHT
        ):
            messages = self.batcher.take()
            self._seq += 1
            assert self.processor is not None
            future = self._executor.submit(self.processor.process, messages)
            self._inflight.append(_Batch(self._seq, messages, future))

    def _complete(self, block: bool) -> None:
        """Publish finished batches in order; with block, wait for all of them."""
        while self._inflight and (block or self._inflight[0].future.done()):
            batch = self._inflight.popleft()
            result = batch.future.result()
            if self.settings.exactly_once:
                self._publish_transaction(batch, result)
            else:
                self._publish(batch, result)
            self._log_batch(batch, result)
            if block:
                self._dispatch(everything=self._stopping.is_set())

    def _publish(self, batch: _Batch, result: BatchResult) -> None:
        counts: dict[int, int] = {}
        for output in result.outputs:
            counts[id(output.origin)] = counts.get(id(output.origin), 0) + 1
        for message in batch.messages:
            if id(message) in counts:
                self._remaining[id(message)] = (message, counts[id(message)])
            else:  # not expected (every input gets a score or a dead letter), but never stuck
                self.tracker.done(message.tp, message.offset)
        self.sink.publish(result.outputs)

    def _publish_transaction(self, batch: _Batch, result: BatchResult) -> None:
        positions: dict[Partition, int] = {}
        for message in batch.messages:
            positions[message.tp] = max(positions.get(message.tp, 0), message.offset + 1)
        self.sink.begin()
        self.sink.publish(result.outputs)
        self.sink.commit_transaction(positions, self.source.group_metadata(), TXN_TIMEOUT_S)
        for message in batch.messages:
            self.tracker.done(message.tp, message.offset)
        self.tracker.mark_committed(positions)

    def _delivered(self, output: Output, error: KafkaError | None) -> None:
        if error is not None:
            self._failure = f"delivery to {output.topic} failed: {error.str()}"
            return
        origin = output.origin
        if output.topic == self.settings.scores_topic and origin.timestamp_ms:
            self.metrics.latency.observe(max(0.0, time.time() - origin.timestamp_ms / 1000.0))
        if self.settings.exactly_once:
            return
        message, left = self._remaining.get(id(origin), (origin, 1))
        if left <= 1:
            self._remaining.pop(id(origin), None)
            self.tracker.done(message.tp, message.offset)
        else:
            self._remaining[id(origin)] = (message, left - 1)

    def _raise_on_failure(self) -> None:
        if self._failure:
            raise BrokerError(f"{self._failure}; offsets after the last delivered output stay uncommitted")

    def _commit(self, force: bool) -> None:
        if self.settings.exactly_once:
            return
        now = time.monotonic()
        if not force and now - self._last_commit < COMMIT_INTERVAL_S:
            return
        self._last_commit = now
        positions = {tp: o for tp, o in self.tracker.committable().items() if tp in self.source.assignment}
        if positions:
            self.source.commit(positions)
            self.tracker.mark_committed(positions)

    def _backpressure(self) -> None:
        in_flight = self.tracker.in_flight()
        if in_flight >= self.settings.max_in_flight:
            if not self.source.paused:
                self.log.info("pausing", in_flight=in_flight)
            self.source.pause()
        elif self.source.paused and in_flight <= self.settings.max_in_flight // 2:
            self.source.resume()
            self.log.info("resuming", in_flight=in_flight)

    def _log_batch(self, batch: _Batch, result: BatchResult) -> None:
        m = self.metrics
        m.scored.inc(result.scored)
        m.alerts.inc(result.alerts)
        for reason, n in result.dead_letters.items():
            m.dead_letters.labels(reason).inc(n)
        m.batch_size.observe(len(batch.messages))
        m.inference.observe(result.inference_s)
        self.log.bind(batch=batch.seq, offsets=_offset_ranges(batch.messages)).info(
            "batch",
            size=len(batch.messages),
            scored=result.scored,
            alerts=result.alerts,
            dead_letters=dict(result.dead_letters),
            windows=result.windows,
            tokens=result.tokens,
            inference_ms=round(result.inference_s * 1000, 1),
            explain_ms=round(result.explain_s * 1000, 1),
        )

    # Rebalancing ---------------------------------------------------------------------------

    def _assigned(self, partitions: list[Partition]) -> None:
        self.log.info("partitions assigned", partitions=sorted(partitions))

    def _revoked(self, partitions: list[Partition]) -> None:
        """Finish and commit what is in flight before the partitions go to another instance."""
        self._complete(block=True)
        if not self.settings.exactly_once:
            undelivered = self.sink.flush(FLUSH_TIMEOUT_S)
            self._raise_on_failure()
            if undelivered:
                self._failure = f"{undelivered} outputs undelivered at rebalance"
            self._commit(force=True)
        self._let_go(partitions)
        self.log.info("partitions revoked", partitions=sorted(partitions))

    def _lost(self, partitions: list[Partition]) -> None:
        """Lost, not revoked: another instance may own them already, so nothing is committed."""
        self._let_go(partitions)
        self.log.warning("partitions lost", partitions=sorted(partitions))

    def _let_go(self, partitions: list[Partition]) -> None:
        gone = set(partitions)
        abandoned = self.batcher.drop(lambda m: m.tp in gone)
        self.tracker.forget(partitions)
        if abandoned:
            self.log.info("abandoned uncommitted messages", count=len(abandoned))

    # Shutdown ------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        self.log.info("stopping", in_flight=self.tracker.in_flight())
        try:
            if self._failure is None and self.processor is not None:
                self._dispatch(everything=True)
                self._complete(block=True)
                if not self.settings.exactly_once:
                    undelivered = self.sink.flush(FLUSH_TIMEOUT_S)
                    self._raise_on_failure()
                    if undelivered:
                        raise BrokerError(
                            f"{undelivered} outputs undelivered at shutdown; their offsets stay uncommitted"
                        )
                    self._commit(force=True)
        finally:
            self.source.close()
            self._executor.shutdown(wait=True, cancel_futures=True)
            if self.health is not None:
                self.health.stop()
            self.log.info("stopped", committed=self._failure is None)

    def _install_signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def handle(signum: int, _frame: FrameType | None) -> None:
            if self._stopping.is_set() and signum == signal.SIGINT:
                os._exit(130)  # a second Ctrl-C: the user wants out now
            self.log.info(
                "signal received, finishing the batch in flight", signal=signal.Signals(signum).name
            )
            self._stopping.set()

        for sig in previous:
            signal.signal(sig, handle)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore
