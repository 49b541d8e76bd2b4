"""`wirewatch web`: a live page of incidents and alerts, in one process, with no build step.

One thread follows Kafka (the incidents topic from its start, the incident-alerts and scores
topics from an hour ago) and keeps the page's state; an HTTP server (the standard library's)
serves the page, a JSON snapshot at /api/state, and the changes as server-sent events at
/events. Each alert's article is read back from the input topic at the position the alert
names, so the page shows the whole text with the sentences that drove the score highlighted.
Throughput and drift come from the scores topic, lag from the scorer group's committed offsets.
"""

import json
import queue
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from stream.bundle import read_manifest
from stream.drift import DriftWindow, ScoreDistribution
from stream.errors import BrokerError, ConfigError
from stream.schemas import Incident, IncidentAlert, Score

MAX_INCIDENTS = 200
MAX_ALERTS = 500
HOUR_S = 3600.0
STATS_INTERVAL_S = 2.0
LAG_INTERVAL_S = 5.0
_SPACE = re.compile(r"\s+")


@dataclass
class WebOptions:
    bootstrap_servers: str
    host: str = "127.0.0.1"
    port: int = 8080
    input_topic: str = "articles"
    scores_topic: str = "article-scores"
    incidents_topic: str = "article-incidents"
    incident_alerts_topic: str = "article-incident-alerts"
    group_id: str = "wirewatch"  # the scorers' group, for lag
    bundle: Path | None = None  # for the validation score distribution
    kafka: dict[str, str] = field(default_factory=dict)


def highlight(text: str, sentences: list[str]) -> list[dict[str, object]]:
    """The text cut into segments, ``mark`` true on each sentence found (whitespace-insensitive)."""
    spans: list[tuple[int, int, int]] = []
    for rank, sentence in enumerate(sentences):
        words = sentence.split()
        if not words:
            continue
        pattern = r"\s+".join(re.escape(w) for w in words)
        found = re.search(pattern, text)
        if found:
            spans.append((found.start(), found.end(), rank))
    segments: list[dict[str, object]] = []
    cursor = 0
    for start, end, rank in sorted(spans):
        if start < cursor:
            continue  # overlapping sentences: the first one wins
        if start > cursor:
            segments.append({"text": text[cursor:start], "mark": False})
        segments.append({"text": text[start:end], "mark": True, "rank": rank})
        cursor = end
    if cursor < len(text):
        segments.append({"text": text[cursor:], "mark": False})
    return segments


class Hub:
    """The page's state and its subscribers (one queue per open page)."""

    def __init__(self, reference: ScoreDistribution | None) -> None:
        self.lock = threading.Lock()
        self.incidents: dict[str, dict[str, Any]] = {}
        self.alerts: deque[dict[str, Any]] = deque(maxlen=MAX_ALERTS)
        self.drift = DriftWindow(reference)
        self.stats: dict[str, Any] = {}
        self._score_times: deque[float] = deque()
        self._clients: list[queue.Queue[str]] = []

    def _send(self, kind: str, data: Any) -> None:
        line = f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"
        for client in list(self._clients):
            try:
                client.put_nowait(line)
            except queue.Full:  # a page that stopped reading: it reconnects and gets a snapshot
                self._clients.remove(client)

    def incident(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.incidents[record["id"]] = record
            if len(self.incidents) > MAX_INCIDENTS:
                oldest = min(self.incidents.values(), key=lambda r: str(r["updated_at"]))
                del self.incidents[oldest["id"]]
            self._send("incident", record)

    def alert(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.alerts.append(record)
            self._send("alert", record)

    def score(self, score: Score, at: float) -> None:
        with self.lock:
            self.drift.observe(score.score, score.is_alert, at)
            now = time.time()
            if at >= now - 60:  # the hour read back at startup is not throughput
                self._score_times.append(now)

    def refresh(self, lag: int | None) -> None:
        with self.lock:
            now = time.time()
            while self._score_times and self._score_times[0] < now - 60:
                self._score_times.popleft()
            snapshot = self.drift.snapshot().as_dict()
            self.stats = {
                **snapshot,
                "throughput_per_s": round(len(self._score_times) / 60.0, 2),
                "lag": lag,
                "updated": now,
            }
            self._send("stats", self.stats)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "incidents": list(self.incidents.values()),
                "alerts": list(self.alerts),
                "stats": self.stats,
            }

    def subscribe(self) -> "queue.Queue[str]":
        client: queue.Queue[str] = queue.Queue(maxsize=1000)
        with self.lock:
            client.put_nowait(
                f"event: snapshot\ndata: {json.dumps(self.snapshot_unlocked(), default=str)}\n\n"
            )
            self._clients.append(client)
        return client

    def snapshot_unlocked(self) -> dict[str, Any]:
        return {"incidents": list(self.incidents.values()), "alerts": list(self.alerts), "stats": self.stats}

    def unsubscribe(self, client: "queue.Queue[str]") -> None:
        with self.lock:
            if client in self._clients:
                self._clients.remove(client)


class Follower:
    """The Kafka side: reads the topics into the hub; one thread."""

    def __init__(self, options: WebOptions, hub: Hub) -> None:
        self.options = options
        self.hub = hub
        self.log = structlog.get_logger("wirewatch.web")
        self.stop = threading.Event()
        base = {"bootstrap.servers": options.bootstrap_servers, "enable.auto.commit": False, **options.kafka}
        self.consumer = Consumer(
            {**base, "group.id": f"wirewatch-web-{uuid.uuid4().hex[:8]}", "isolation.level": "read_committed"}
        )
        self.articles = Consumer({**base, "group.id": f"wirewatch-web-{uuid.uuid4().hex[:8]}"})
        # Reads the scorers' committed offsets; it never joins their group nor commits.
        self.committed = Consumer({**base, "group.id": options.group_id})
        self._lag: int | None = None
        self._lag_at = 0.0
        self._stats_at = 0.0
        self._assigned = False

    def _partitions(self, topic: str) -> list[int]:
        metadata = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise BrokerError(f"topic {topic} does not exist on {self.options.bootstrap_servers}")
        return sorted(metadata.partitions)

    def assign(self) -> None:
        o = self.options
        since = int((time.time() - HOUR_S) * 1000)
        wanted = [
            TopicPartition(o.incidents_topic, p, OFFSET_BEGINNING)
            for p in self._partitions(o.incidents_topic)
        ]
        for topic in (o.incident_alerts_topic, o.scores_topic):
            asked = [TopicPartition(topic, p, since) for p in self._partitions(topic)]
            for tp in self.consumer.offsets_for_times(asked, timeout=10):
                wanted.append(
                    TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
                )
        self.consumer.assign(wanted)
        self._assigned = True

    def run(self) -> None:
        try:
            if not self._assigned:
                self.assign()
            while not self.stop.is_set():
                for message in self.consumer.consume(num_messages=500, timeout=0.2):
                    error = message.error()
                    if error is None:
                        self.handle(message)
                    elif error.code() != KafkaError._PARTITION_EOF:
                        self.log.warning("kafka error", reason=error.str())
                now = time.monotonic()
                if now - self._lag_at >= LAG_INTERVAL_S:
                    self._lag, self._lag_at = self.lag(), now
                if now - self._stats_at >= STATS_INTERVAL_S:
                    self.hub.refresh(self._lag)
                    self._stats_at = now
        except Exception as exc:  # the page says so rather than silently freezing
            self.log.error("following Kafka failed", error=str(exc))
            raise
        finally:
            for consumer in (self.consumer, self.articles, self.committed):
                consumer.close()

    def handle(self, message: Message) -> None:
        topic, value = message.topic(), message.value() or b""
        o = self.options
        try:
            if topic == o.scores_topic:
                score = Score.model_validate_json(value)
                _kind, ts = message.timestamp()
                self.hub.score(score, ts / 1000.0 if ts and ts > 0 else time.time())
            elif topic == o.incidents_topic:
                self.hub.incident(json.loads(Incident.model_validate_json(value).model_dump_json()))
            elif topic == o.incident_alerts_topic:
                alert = IncidentAlert.model_validate_json(value)
                record = json.loads(alert.model_dump_json())
                text = self.article_text(alert.source.topic, alert.source.partition, alert.source.offset)
                sentences = [c.sentence for c in alert.explanation or []]
                record["segments"] = highlight(text, sentences) if text else None
                self.hub.alert(record)
        except (ValidationError, ValueError) as exc:
            self.log.warning("not shown: unexpected record", topic=topic, error=str(exc).splitlines()[0])

    def article_text(self, topic: str, partition: int, offset: int, timeout: float = 3.0) -> str | None:
        """The input article at the alert's position: title and text, or None when it is gone."""
        self.articles.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.articles.poll(0.2)
            if message is None or message.error() is not None:
                continue
            if message.offset() != offset:
                return None
            try:
                article = json.loads(message.value() or b"")
                title, text = article.get("title"), article.get("text")
            except (ValueError, AttributeError):
                return None
            if not isinstance(text, str):
                return None
            return f"{title}\n\n{text}" if isinstance(title, str) and title else text
        return None

    def lag(self) -> int | None:
        """Messages of the input topic the scorer group has not committed yet (None: unknown)."""
        topic = self.options.input_topic
        try:
            partitions = [TopicPartition(topic, p) for p in self._partitions(topic)]
            positions = []
            for tp in self.committed.committed(partitions, timeout=5):
                low, high = self.committed.get_watermark_offsets(
                    TopicPartition(topic, tp.partition), timeout=5
                )
                positions.append((tp.offset, low, high))
            return input_lag(positions)
        except Exception:  # lag is informative only; the page shows "unknown"
            return None


def input_lag(positions: Iterable[tuple[int, int, int]]) -> int | None:
    """Messages not committed yet, from (committed, low, high) per partition; None when unknown.

    An end before the committed offset is a broker reporting ends wrongly (the embedded broker's
    ListOffsets does, see stream.devtools.broker): unknown is shown rather than a negative lag.
    """
    total = 0
    for committed, low, high in positions:
        start = committed if committed >= 0 else low
        if high < start:
            return None
        total += high - start
    return total


def page() -> bytes:
    return resources.files("stream").joinpath("static/web.html").read_bytes()


def make_server(options: WebOptions, hub: Hub) -> ThreadingHTTPServer:
    body = page()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path in ("/", "/index.html"):
                self._send(200, body, "text/html; charset=utf-8")
            elif self.path == "/api/state":
                self._send(200, json.dumps(hub.snapshot(), default=str).encode(), "application/json")
            elif self.path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            elif self.path == "/events":
                self._events()
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, data: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _events(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            client = hub.subscribe()
            try:
                while True:
                    try:
                        line = client.get(timeout=15)
                    except queue.Empty:
                        line = ": keep-alive\n\n"
                    self.wfile.write(line.encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                hub.unsubscribe(client)

        def log_message(self, format: str, *args: Any) -> None:
            return

    try:
        server = ThreadingHTTPServer((options.host, options.port), Handler)
    except OSError as exc:
        raise ConfigError(f"cannot serve the page on {options.host}:{options.port}: {exc.strerror}") from None
    server.daemon_threads = True
    return server


def run_web(options: WebOptions, stop: threading.Event) -> None:
    log = structlog.get_logger("wirewatch.web")
    reference = read_manifest(options.bundle).score_distribution if options.bundle else None
    hub = Hub(reference)
    follower = Follower(options, hub)
    follower.assign()  # fails fast on a missing topic, before the page is up
    server = make_server(options, hub)
    follower.stop = stop
    thread = threading.Thread(target=follower.run, name="kafka", daemon=True)
    thread.start()
    serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    serving.start()
    log.info(
        "serving", url=f"http://{options.host}:{server.server_address[1]}/", reference=reference is not None
    )
    try:
        while not stop.is_set() and thread.is_alive():
            stop.wait(0.5)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def iter_events(lines: Iterator[bytes]) -> Iterator[tuple[str, Any]]:
    """Parse a server-sent event stream into (event, data) pairs (used by tests and scripts)."""
    kind, data = "message", ""
    for raw in lines:
        line = raw.decode().rstrip("\n")
        if not line:
            if data:
                yield kind, json.loads(data)
            kind, data = "message", ""
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
