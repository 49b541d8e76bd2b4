"""The service loop: consume, micro-batch, score in a worker thread, publish, commit.

The loop is given its source, sink and scoring stage (``Service``), so the unit tests drive it
with fakes; ``serve`` builds the real ones from the settings. The delivery mode (stream.serve.delivery)
decides how outputs are published and offsets committed; docs/operating.md's "Delivery semantics"
states the guarantees and the failure policy.

The main thread never blocks on the model: batches are scored in a worker thread while it keeps
polling (so the group never evicts a slow instance), publishing finished batches in order and
committing. Above ``max_in_flight`` unfinished messages it pauses every assigned partition and
resumes below half, reconciled per partition after every rebalance. When partitions are revoked
it finishes the batches in flight, publishes them and commits before letting go; messages of
those partitions still waiting in the batcher are abandoned uncommitted, for the next owner. A
lost partition (the group moved on without us) gets nothing more: no output, no commit.
Between two batches it swaps in a bundle the reloader has validated. SIGTERM or SIGINT stops
consuming, finishes the batch, flushes, commits and closes; a second Ctrl-C exits at once; SIGHUP
asks for a bundle reload. A SystemicError (systemic: the model, Kafka) stops it without
committing, with one log line.
"""

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType

import structlog

from stream.errors import SystemicError
from stream.kafka.offsets import Partition
from stream.kafka.records import Incoming
from stream.kafka.topics import TopicSpec, ensure_topics
from stream.scoring.canary import GateResult
from stream.scoring.drift import DriftWindow
from stream.serve.batcher import Batcher
from stream.serve.delivery import Delivery, Publication, TransactionalId, delivery_for
from stream.serve.observability import HealthServer, KafkaEvents, Metrics
from stream.serve.process import BatchProcessor, BatchResult, load_processor
from stream.serve.reload import Reloader, fingerprint
from stream.serve.settings import ServeSettings
from stream.serve.sink import KafkaSink, Sink
from stream.serve.source import KafkaSource, Source

MAX_BATCHES_IN_FLIGHT = 2
MAX_PUBLISH_ATTEMPTS = 5
LAG_INTERVAL_S = 1.0  # how often to look at the partitions' ends for a stalled consumer


@dataclass
class Scoring:
    """The models the loop scores with: the bundle in service (swapped on reload) and the shadow."""

    primary: BatchProcessor
    shadow: BatchProcessor | None = None


@dataclass
class _Batch:
    seq: int
    messages: list[Incoming]
    future: "Future[BatchResult]"
    dispatched: float
    epochs: dict[Partition, int]  # of its partitions at dispatch: a revoke or loss since voids them
    publication: Publication | None = None
    attempts: int = 0


@dataclass
class _Watch:
    """What liveness looks at: the loop's heartbeat and whether consumption stalled."""

    beat: float
    stalled_since: float | None = None
    looked: float | None = None


def _offset_ranges(messages: list[Incoming]) -> str:
    ranges: dict[Partition, tuple[int, int]] = {}
    for m in messages:
        low, high = ranges.get(m.tp, (m.offset, m.offset))
        ranges[m.tp] = (min(low, m.offset), max(high, m.offset))
    return " ".join(f"{t}[{p}]:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))


class Service:
    def __init__(
        self,
        settings: ServeSettings,
        source: Source,
        sink: Sink,
        scoring: Scoring,
        *,
        metrics: Metrics | None = None,
        delivery: Delivery | None = None,
        reloader: "Reloader[tuple[BatchProcessor, GateResult]] | None" = None,
        events: list[KafkaEvents] | None = None,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.log = structlog.get_logger("wirewatch.serve")
        self.metrics = metrics or Metrics()
        self.source = source
        self.sink = sink
        self.scoring = scoring
        self.delivery = delivery or delivery_for(settings, source, sink, self.metrics, self.log, clock)
        self.reloader = reloader
        self.events = events or []
        self.batcher: Batcher[Incoming] = Batcher(settings.batch_size, settings.max_wait_ms / 1000.0, clock)
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        self._clock = clock
        self._inflight: deque[_Batch] = deque()
        self._stopping = threading.Event()
        self._paused = False
        self._failed = False
        self._epoch: dict[Partition, int] = {}
        self._seq = 0
        self._watch = _Watch(beat=clock())
        self.drift = DriftWindow()  # the last hour's scores, against the bundle's validation scores
        self._show_models()

    # Health ------------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if self._stopping.is_set():
            return False, "stopping"
        if not self.source.assignment:
            return False, "no partitions assigned"
        return True, f"{len(self.source.assignment)} partitions, model {self.scoring.primary.label}"

    def live(self) -> tuple[bool, str]:
        """Alive means making progress: the loop runs, no batch hangs, no lagging partition is idle."""
        now, limit = self._clock(), self.settings.liveness_timeout_s
        if now - self._watch.beat > limit:
            return False, f"the service loop has not run for {now - self._watch.beat:.0f} s"
        head = self._inflight[0] if self._inflight else None
        if head is not None and not head.future.done() and now - head.dispatched > limit:
            return False, f"batch {head.seq} has been scoring for {now - head.dispatched:.0f} s"
        stalled = self._watch.stalled_since
        if stalled is not None and now - stalled > limit:
            return False, f"partitions with lag have delivered nothing for {now - stalled:.0f} s"
        return True, "ok"

    # The loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Run until stop(), a signal or a SystemicError (raised after the failure shutdown)."""
        restore = self._install_signals()
        failure: BaseException | None = None
        try:
            self.delivery.start()
            self.source.subscribe(self)
            if self.reloader is not None:
                self.reloader.start()
            self.log.info(
                "started",
                model=self.scoring.primary.label,
                digest=self.scoring.primary.model.digest,
                shadow=self.scoring.shadow.label if self.scoring.shadow else None,
                input_topic=self.settings.input_topic,
                group_id=self.settings.group_id,
                mode=self.delivery.name,
            )
            while not self._stopping.is_set():
                self.step()
        except BaseException as exc:
            failure = exc
            raise
        finally:
            try:
                self._shutdown(failure)
            finally:
                restore()

    def step(self) -> None:
        s = self.settings
        now = self._clock()
        self._watch.beat = now
        self.metrics.heartbeat.set_to_current_time()
        for event in self.events:
            if event.fatal:
                raise SystemicError(f"Kafka client failed: {event.fatal}")
        self._swap_model()
        wait = self.batcher.time_left()
        # A due batch that cannot be dispatched (the worker is busy) must not make this loop spin:
        # it would take a core from the model. Poll with the full timeout then.
        if wait is None or len(self._inflight) >= MAX_BATCHES_IN_FLIGHT:
            wait = 0.1
        polled = self.source.poll(s.batch_size, min(0.1, wait))
        owned = self.source.assignment
        for message in polled:
            if message.tp not in owned:  # fetched before a rebalance took the partition away
                continue
            self.metrics.consumed.inc()
            self.delivery.consumed(message)
            self.batcher.add(message)
        self._watch_progress(now, bool(polled))
        self._dispatch()
        self._complete(block=False)
        self.delivery.poll()
        self.delivery.commit()
        self._backpressure()

    def stop(self) -> None:
        self._stopping.set()

    def _watch_progress(self, now: float, consumed: bool) -> None:
        """Stalled: partitions with messages left, not paused by us, yet nothing read for a while."""
        if consumed or self._paused:
            self._watch.stalled_since = None
        if self._watch.looked is not None and now - self._watch.looked < LAG_INTERVAL_S:
            return
        self._watch.looked = now
        lagging = any(lag > 0 for lag in self.source.lag().values())  # also updates the lag gauges
        if consumed or self._paused or not lagging:
            self._watch.stalled_since = None
        elif self._watch.stalled_since is None:
            self._watch.stalled_since = now

    def _dispatch(self, everything: bool = False) -> None:
        while (
            len(self.batcher)
            and (self.batcher.ready() or everything)
            and len(self._inflight) < MAX_BATCHES_IN_FLIGHT
        ):
            messages = self.batcher.take()
            self._seq += 1
            # The bundle is chosen here: a swap never changes a batch already dispatched.
            primary, shadow = self.scoring.primary, self.scoring.shadow
            future = self._executor.submit(primary.process, messages, shadow)
            epochs = {m.tp: self._epoch.get(m.tp, 0) for m in messages}
            self._inflight.append(_Batch(self._seq, messages, future, self._clock(), epochs))

    def _complete(self, block: bool, revoking: set[Partition] | None = None) -> None:
        """Publish finished batches in order; with block, wait for all of them."""
        while self._inflight:
            batch = self._inflight[0]
            if not block and not batch.future.done():
                return
            if batch.publication is None:
                try:
                    result = batch.future.result()
                except SystemicError:
                    raise
                except Exception as exc:  # the processor is total; anything else is a bug
                    raise SystemicError(
                        f"scoring batch {batch.seq} raised {type(exc).__name__}: {exc}"
                    ) from exc
                batch.publication = Publication(list(batch.messages), list(result.outputs))
                self._log_batch(batch, result)
            # Partitions let go since dispatch belong to someone else now, even if they came back.
            batch.publication.keep({tp for tp, e in batch.epochs.items() if self._epoch.get(tp, 0) == e})
            if not self.delivery.publish(batch.publication):
                batch.attempts += 1
                if batch.attempts >= MAX_PUBLISH_ATTEMPTS:
                    raise SystemicError(
                        f"batch {batch.seq} could not be published in {batch.attempts} attempts"
                    )
                if revoking:
                    # Their transaction failed: leave those partitions' messages to the next owner.
                    batch.publication.keep(self.source.assignment - revoking)
                elif not block:
                    return  # again on the next pass, after a poll has served any rebalance
                continue
            self._inflight.popleft()
            if block and self._stopping.is_set():
                self._dispatch(everything=True)

    def _backpressure(self) -> None:
        in_flight = self.delivery.in_flight()
        self.metrics.in_flight.set(in_flight)
        if in_flight >= self.settings.max_in_flight:
            paused = True
        elif in_flight <= self.settings.max_in_flight // 2:
            paused = False
        else:
            paused = self._paused
        if paused != self._paused:
            self.log.info("pausing" if paused else "resuming", in_flight=in_flight)
        self._paused = paused
        # Every pass: partitions assigned since the last one get the state we want, whatever
        # librdkafka kept from an earlier assignment.
        self.metrics.paused.set(len(self.source.set_paused(paused)))

    def _log_batch(self, batch: _Batch, result: BatchResult) -> None:
        m = self.metrics
        m.scored.inc(result.scored)
        m.alerts.inc(result.alerts)
        for reason, n in result.dead_letters.items():
            m.dead_letters.labels(reason).inc(n)
        for lang, n in result.unsupported_langs.items():
            m.unsupported_language.labels(lang).inc(n)
        m.batch_size.observe(len(batch.messages))
        self.drift.set_reference(self.scoring.primary.reference)
        for value in result.scores:
            m.score.observe(value)
            self.drift.observe(value, value >= self.scoring.primary.threshold)
        m.show_drift(self.drift.snapshot())
        m.inference.observe(result.inference_s)
        if result.shadow_agree or result.shadow_disagree:
            m.shadow_agreement.labels("true").inc(result.shadow_agree)
            m.shadow_agreement.labels("false").inc(result.shadow_disagree)
            for diff in result.shadow_diffs:
                m.shadow_diff.observe(diff)
        if result.shadow_failed:
            m.shadow_failures.inc(result.shadow_failed)
        self.log.bind(batch=batch.seq, offsets=_offset_ranges(batch.messages)).info(
            "batch",
            size=len(batch.messages),
            model=result.model.version if result.model else None,
            scored=result.scored,
            alerts=result.alerts,
            dead_letters=dict(result.dead_letters),
            windows=result.windows,
            tokens=result.tokens,
            inference_ms=round(result.inference_s * 1000, 1),
            explain_ms=round(result.explain_s * 1000, 1),
        )

    # Models ------------------------------------------------------------------------------

    def _swap_model(self) -> None:
        loaded = self.reloader.take() if self.reloader is not None else None
        if loaded is None:
            return
        processor, gate = loaded
        old = self.scoring.primary
        self.scoring.primary = processor
        self.metrics.reloads.labels("swapped").inc()
        self._show_models()
        self.log.info(
            "bundle swapped in",
            old=old.label,
            old_digest=old.model.digest,
            new=processor.label,
            new_digest=processor.model.digest,
            gate=gate.kind,
            canary_max_diff=gate.max_diff,
        )

    def _show_models(self) -> None:
        for role, processor in (("primary", self.scoring.primary), ("shadow", self.scoring.shadow)):
            if processor is not None:
                m = processor.model
                self.metrics.show_model(role, m.name, m.version, m.digest)

    # Rebalancing (source Listener) ------------------------------------------------------------

    def assigned(self, partitions: list[Partition]) -> None:
        self.metrics.rebalances.labels("assigned").inc(len(partitions))
        self.log.info("partitions assigned", partitions=sorted(partitions))

    def revoked(self, partitions: list[Partition]) -> None:
        """Finish, publish and commit what is in flight before the partitions go to another instance."""
        self.metrics.rebalances.labels("revoked").inc(len(partitions))
        if self._failed:
            # Closing the consumer after a failure revokes too: nothing may be published or committed.
            self._let_go(partitions)
            return
        self._complete(block=True, revoking=set(partitions))
        self.delivery.on_revoke(partitions)
        self._let_go(partitions)
        self.log.info("partitions revoked", partitions=sorted(partitions))

    def lost(self, partitions: list[Partition]) -> None:
        """Lost, not revoked: another instance may own them already, so nothing more is committed."""
        self.metrics.rebalances.labels("lost").inc(len(partitions))
        self.delivery.on_lost(partitions)
        self._let_go(partitions)
        self.log.warning("partitions lost", partitions=sorted(partitions))

    def _let_go(self, partitions: list[Partition]) -> None:
        gone = set(partitions)
        for tp in gone:
            self._epoch[tp] = self._epoch.get(tp, 0) + 1
        abandoned = self.batcher.drop(lambda m: m.tp in gone)
        if abandoned:
            self.log.info("abandoned uncommitted messages", count=len(abandoned))

    # Shutdown ----------------------------------------------------------------------------

    def _shutdown(self, failure: BaseException | None) -> None:
        clean = failure is None
        try:
            if clean:
                self.log.info("stopping", in_flight=self.delivery.in_flight())
                self._dispatch(everything=True)
                self._complete(block=True)
                self.delivery.finish()
        except BaseException as exc:
            clean, failure = False, exc
            raise
        finally:
            if not clean:
                self._failed = True
                self.delivery.abandon()
                self.log.error(
                    "stopped without committing",
                    reason=str(failure) or type(failure).__name__,
                    kind=type(failure).__name__,
                )
            if self.reloader is not None:
                self.reloader.stop()
            self.source.close()
            self._executor.shutdown(wait=clean, cancel_futures=True)
            if clean:
                self.log.info("stopped", committed=True)

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.getsignal(sig) for sig in wanted}

        def handle(signum: int, _frame: FrameType | None) -> None:
            if signum == signal.SIGHUP:
                if self.reloader is None:
                    self.log.warning("SIGHUP ignored: reload is off (--no-reload)")
                else:
                    self.reloader.request()
                return
            if self._stopping.is_set() and signum == signal.SIGINT:
                os._exit(130)  # a second Ctrl-C: the user wants out now
            self.log.info(
                "signal received, finishing the batch in flight", signal=signal.Signals(signum).name
            )
            self._stopping.set()

        for sig in wanted:
            signal.signal(sig, handle)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore


def check_topics(settings: ServeSettings) -> None:
    s = settings
    wanted = [TopicSpec(t, s.topic_partitions) for t in [s.input_topic, *s.output_topics]]
    created = ensure_topics(s.connection, wanted, s.create_topics, s.startup_timeout_s)
    if created:
        structlog.get_logger("wirewatch.serve").info(
            "created topics", topics=created, partitions=s.topic_partitions
        )


def serve(settings: ServeSettings) -> None:
    """`wirewatch serve`: everything that can fail fast first (port, bundles, Kafka), then the loop."""
    s = settings
    log = structlog.get_logger("wirewatch.serve")
    metrics = Metrics()
    health = HealthServer(s.metrics_host, s.metrics_port, metrics) if s.metrics_port else None
    txn_id = TransactionalId(s.group_id)
    try:
        if health is not None:
            health.start()
        watched = fingerprint(s.bundle)
        primary, gate = load_processor(s, s.bundle)
        if gate.kind == "smoke":
            log.warning(
                "bundle has no canary set (exported before it existed); it passed the smoke test only",
                bundle=str(s.bundle),
            )
        shadow = load_processor(s, s.shadow_bundle, explain=False)[0] if s.shadow_bundle else None
        check_topics(s)
        consumer_events = KafkaEvents("consumer", log, metrics)
        producer_events = KafkaEvents("producer", log, metrics)
        transactional_id = (s.transactional_id or txn_id.claim()) if s.exactly_once else None
        reloader: Reloader[tuple[BatchProcessor, GateResult]] | None = None
        if s.reload:
            reloader = Reloader(
                s.bundle, lambda path: load_processor(s, path), s.reload_interval_s, log, metrics, watched
            )
        service = Service(
            s,
            KafkaSource(s, consumer_events, metrics),
            KafkaSink(s, producer_events, transactional_id),
            Scoring(primary, shadow),
            metrics=metrics,
            reloader=reloader,
            events=[consumer_events, producer_events],
        )
        if health is not None:
            health.live, health.ready = service.live, service.ready
        log.info(
            "starting",
            threshold=primary.threshold,
            providers=getattr(primary.scorer, "providers", None),
            gate=gate.kind,
            canary_max_diff=gate.max_diff,
            bootstrap_servers=s.bootstrap_servers,
            transactional_id=transactional_id,
            metrics_port=health.port if health else None,
            kafka=s.redacted_kafka(),
        )
        service.run()
    finally:
        txn_id.release()
        if health is not None:
            health.stop()
