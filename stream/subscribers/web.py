"""`wirewatch web`: a live page of incidents and alerts, in one process, with no build step.

One thread follows Kafka (the incidents topic from its start, the incident-alerts and scores
topics from an hour ago) and keeps the page's state; an HTTP server (the standard library's)
serves the page, a JSON snapshot at /api/state, and the changes as server-sent events at
/events. Each alert's article is read back from the input topic at the position the alert
names, so the page shows the whole text with the sentences that drove the score highlighted.
Throughput and drift come from the scores topic, lag from the scorer group's committed offsets.

Alerts and articles are data written by whoever controls a feed. The page builds its DOM from
text nodes and links only http(s) URLs; the text is read from the configured input topic only
(an alert naming another topic gets none), cut to MAX_ARTICLE_CHARS, and the state keeps at most
MAX_STORED_TEXT_CHARS of it. The server answers only requests whose Host header names it
(DNS rebinding), asks for a token when one is set (required on a non-loopback address), serves
at most ``max_clients`` event streams and ends the stream of a page that falls behind, which
then reconnects and says so.
"""

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import queue
import re
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from stream.errors import BrokerError, ConfigError
from stream.kafka.config import redact_kafka
from stream.kafka.connection import Connection
from stream.schemas import (
    ARTICLES_TOPIC,
    INCIDENT_ALERTS_TOPIC,
    INCIDENTS_TOPIC,
    SCORER_GROUP_ID,
    SCORES_TOPIC,
    Incident,
    IncidentAlert,
    Score,
    SourceRef,
)
from stream.scoring.bundle import read_manifest
from stream.scoring.drift import DriftWindow, ScoreDistribution

MAX_INCIDENTS = 200
MAX_ALERTS = 500
# A feed can send articles of any length: each alert keeps this much of its text, and all the
# alerts together this much (older alerts fall back to their snippet).
MAX_ARTICLE_CHARS = 20_000
MAX_STORED_TEXT_CHARS = 2_000_000
CUT = " [...]"
CLIENT_QUEUE = 1000
KEEPALIVE_S = 15.0
RECONNECT_MS = 2000
# A connection idle (or not reading) this long is closed: one thread each, and the threads are few.
SOCKET_TIMEOUT_S = 30.0
MIN_TOKEN_CHARS = 16
HOUR_S = 3600.0
STATS_INTERVAL_S = 2.0
LAG_INTERVAL_S = 5.0


@dataclass
class WebOptions:
    bootstrap_servers: str
    host: str = "127.0.0.1"
    port: int = 8080
    input_topic: str = ARTICLES_TOPIC
    scores_topic: str = SCORES_TOPIC
    incidents_topic: str = INCIDENTS_TOPIC
    incident_alerts_topic: str = INCIDENT_ALERTS_TOPIC
    group_id: str = SCORER_GROUP_ID  # the scorers' group, for lag
    bundle: Path | None = None  # for the validation score distribution
    kafka: dict[str, str] = field(default_factory=dict)
    token: str | None = None  # asked of every request but /healthz (Bearer, or Basic's password)
    allowed_hosts: tuple[str, ...] = ()  # Host header names besides localhost and the bind address
    allow_anonymous: bool = (
        False  # no token on a non-loopback address: the port is published on loopback only
    )
    max_clients: int = 16  # open event streams

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"the page's token is shorter than {MIN_TOKEN_CHARS} characters; "
                "make a long random one, e.g. `openssl rand -hex 24`"
            )
        if not is_loopback(self.host) and self.token is None and not self.allow_anonymous:
            raise ConfigError(
                f"--host {self.host or '(every address)'} serves the page beyond this machine without a token: "
                "set WIREWATCH_WEB_TOKEN or --token-file, or pass --allow-anonymous when only this machine "
                "reaches the port (docker's 127.0.0.1:8080:8080) or a proxy authenticates"
            )
        if self.max_clients < 1:
            raise ConfigError(f"--max-clients {self.max_clients}: pass 1 or more")

    @property
    def hosts(self) -> frozenset[str]:
        """Names the Host header may carry: a page on another name (DNS rebinding) is refused."""
        own = {"localhost", "127.0.0.1", "::1", *(h.lower().rstrip(".") for h in self.allowed_hosts)}
        if self.host not in ("", "0.0.0.0", "::"):
            own.add(self.host.lower().strip("[]"))
        return frozenset(own)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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


def page_record(alert: IncidentAlert, text: str | None) -> dict[str, Any]:
    """What the page renders of an alert: its fields and its article's text, cut and highlighted.

    ``text`` is None when the article could not be read (or was not looked for): the page
    shows the snippet instead.
    """
    record: dict[str, Any] = json.loads(alert.model_dump_json())
    if text is not None and len(text) > MAX_ARTICLE_CHARS:
        text = text[: MAX_ARTICLE_CHARS - len(CUT)] + CUT
    sentences = [c.sentence for c in alert.explanation or []]
    record["segments"] = highlight(text, sentences) if text else None
    return record


def _text_chars(record: dict[str, Any]) -> int:
    return sum(len(s["text"]) for s in record.get("segments") or [])


def event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


@dataclass(frozen=True)
class Snapshot:
    """The state a new page starts from: lists copied under the lock, serialized by the page's thread."""

    incidents: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    stats: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"incidents": self.incidents, "alerts": self.alerts, "stats": self.stats}


class Client:
    """One open page: its events, and whether the hub dropped it for falling behind."""

    def __init__(self, first: Snapshot, size: int) -> None:
        self.queue: queue.Queue[str | Snapshot | None] = queue.Queue(maxsize=size)
        self.queue.put_nowait(first)
        self.dropped = threading.Event()


class Hub:
    """The page's state and its subscribers (one queue per open page).

    Records are never changed once stored (a change stores a new dict), so a snapshot may hold
    them and be serialized outside the lock.
    """

    def __init__(
        self, reference: ScoreDistribution | None, max_clients: int = 16, queue_size: int = CLIENT_QUEUE
    ) -> None:
        self.lock = threading.Lock()
        self.incidents: dict[str, dict[str, Any]] = {}
        self.alerts: deque[dict[str, Any]] = deque()
        self.drift = DriftWindow(reference)
        self.stats: dict[str, Any] = {}
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.text_chars = 0  # article text held by the alerts
        self._score_times: deque[float] = deque()
        self._clients: list[Client] = []

    def _send(self, kind: str, data: Any) -> None:
        line = event(kind, data)
        for client in list(self._clients):
            try:
                client.queue.put_nowait(line)
            except queue.Full:
                self._drop(client)

    def _drop(self, client: Client) -> None:
        """A page that stopped reading: its stream is ended, so that it reconnects to a fresh snapshot."""
        self._clients.remove(client)
        client.dropped.set()
        # Wakes its thread when the queue has room; when it is full, the thread is not waiting.
        with contextlib.suppress(queue.Full):
            client.queue.put_nowait(None)

    def incident(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.incidents[record["id"]] = record
            if len(self.incidents) > MAX_INCIDENTS:
                oldest = min(self.incidents.values(), key=lambda r: str(r["updated_at"]))
                del self.incidents[oldest["id"]]
            self._send("incident", record)

    def alert(self, record: dict[str, Any]) -> None:
        with self.lock:
            if len(self.alerts) >= MAX_ALERTS:
                self.text_chars -= _text_chars(self.alerts.popleft())
            self.alerts.append(record)
            self.text_chars += _text_chars(record)
            # Oldest first, alerts give up their text (the page shows their snippet).
            for i in range(len(self.alerts) - 1):
                if self.text_chars <= MAX_STORED_TEXT_CHARS:
                    break
                old = self.alerts[i]
                if old.get("segments"):
                    self.text_chars -= _text_chars(old)
                    self.alerts[i] = {**old, "segments": None}
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

    def _snapshot(self) -> Snapshot:
        return Snapshot(list(self.incidents.values()), list(self.alerts), self.stats)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            snapshot = self._snapshot()
        return snapshot.as_dict()

    def subscribe(self) -> Client | None:
        """A new page's queue, starting with the state; None when max_clients pages are open."""
        with self.lock:
            if len(self._clients) >= self.max_clients:
                return None
            client = Client(self._snapshot(), self.queue_size)
            self._clients.append(client)
        return client

    def unsubscribe(self, client: Client) -> None:
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
        connection = Connection(options.bootstrap_servers, options.kafka)
        self.consumer = connection.reader("web")
        self.articles = connection.reader("web")
        # Reads the scorers' committed offsets; it never joins their group nor commits.
        self.committed = connection.reader("web", group_id=options.group_id)
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
                self.hub.alert(page_record(alert, self.article_text(alert.source)))
        except (ValidationError, ValueError) as exc:
            self.log.warning("not shown: unexpected record", topic=topic, error=str(exc).splitlines()[0])

    def article_text(self, source: SourceRef, timeout: float = 3.0) -> str | None:
        """The input article at the alert's position: title and text, or None when it is gone.

        Only the configured input topic is read: the position is alert data, and any other topic
        (another tenant's, an internal one) would be shown on the page.
        """
        if source.topic != self.options.input_topic:
            self.log.warning("article not read: the alert names another topic", topic=source.topic)
            return None
        offset = source.offset
        self.articles.assign([TopicPartition(source.topic, source.partition, offset)])
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
    return resources.files("stream.subscribers").joinpath("static/web.html").read_bytes()


def content_policy(html: bytes) -> str:
    """The page's Content-Security-Policy: its own inline script (by hash) and nothing else runs.

    A javascript: link, an injected script or handler would need 'unsafe-inline'.
    """
    script = re.search(rb"<script>(.*?)</script>", html, re.DOTALL)
    if script is None:
        raise RuntimeError("stream/subscribers/static/web.html lost its inline <script>")
    digest = base64.b64encode(hashlib.sha256(script.group(1)).digest()).decode()
    return (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def host_allowed(header: str | None, hosts: frozenset[str]) -> bool:
    """Whether a Host header (name, name:port, [v6]:port) names one of the hosts."""
    if not header:
        return False
    value = header.strip().lower()
    if value.startswith("["):
        name = value[1 : value.find("]")] if "]" in value else ""
    else:
        name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return name.rstrip(".") in hosts


def token_given(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries the token: ``Bearer <token>``, or Basic with it as password."""
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except ValueError:  # not base64, or not UTF-8
            return False
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


class PageServer(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` of them; the rest are closed at once."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a page closed: not worth a traceback
            super().handle_error(request, client_address)


def make_server(options: WebOptions, hub: Hub) -> PageServer:
    body = page()
    policy = content_policy(body)
    hosts = options.hosts
    token = options.token

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = SOCKET_TIMEOUT_S

        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if not host_allowed(self.headers.get("Host"), hosts):
                self._send(
                    403,
                    b"unknown Host: start wirewatch web with --allowed-host NAME for this name\n",
                    "text/plain",
                )
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            elif token is not None and not token_given(self.headers.get("Authorization"), token):
                self._send(401, b"the page asks for its token\n", "text/plain", unauthorized=True)
            elif path in ("/", "/index.html"):
                self._send(200, body, "text/html; charset=utf-8")
            elif path == "/api/state":
                self._send(200, json.dumps(hub.snapshot(), default=str).encode(), "application/json")
            elif path == "/events":
                self._events()
            else:
                self._send(404, b"not found\n", "text/plain")

        def _headers(self) -> None:
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", policy)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")

        def _send(self, code: int, data: bytes, content_type: str, unauthorized: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if unauthorized:
                self.send_header("WWW-Authenticate", 'Basic realm="wirewatch", charset="UTF-8"')
            self._headers()
            self.end_headers()
            self.wfile.write(data)

        def _events(self) -> None:
            client = hub.subscribe()
            if client is None:
                self._send(503, b"too many pages open; try again later\n", "text/plain")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self._headers()
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                self.wfile.write(f"retry: {RECONNECT_MS}\n\n".encode())
                self.wfile.flush()
                quiet_since = time.monotonic()
                while not client.dropped.is_set():
                    try:
                        item = client.queue.get(timeout=1.0)
                    except queue.Empty:
                        if self._gone():
                            return  # a closed page gives its place up now, not at the next write
                        if time.monotonic() - quiet_since < KEEPALIVE_S:
                            continue
                        item = ": keep-alive\n\n"
                    if item is None or client.dropped.is_set():
                        break
                    quiet_since = time.monotonic()
                    line = event("snapshot", item.as_dict()) if isinstance(item, Snapshot) else item
                    self.wfile.write(line.encode())
                    self.wfile.flush()
                # Fell behind: say so and end the stream; the browser's EventSource reconnects.
                self.wfile.write(event("dropped", {"reason": "the page fell behind"}).encode())
                self.wfile.flush()
            except OSError:  # gone, or not reading for SOCKET_TIMEOUT_S
                pass
            finally:
                hub.unsubscribe(client)

        def _gone(self) -> bool:
            """Whether the page closed its end (the stream is one-way: anything readable is the end)."""
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            try:
                peeked: bytes = self.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                return True
            return peeked == b""

        def log_message(self, format: str, *args: Any) -> None:
            return

    try:
        return PageServer((options.host, options.port), Handler, options.max_clients + 32)
    except OSError as exc:
        raise ConfigError(f"cannot serve the page on {options.host}:{options.port}: {exc.strerror}") from None


def run_web(options: WebOptions, stop: threading.Event) -> None:
    log = structlog.get_logger("wirewatch.web")
    reference = read_manifest(options.bundle).score_distribution if options.bundle else None
    hub = Hub(reference, options.max_clients)
    follower = Follower(options, hub)
    follower.assign()  # fails fast on a missing topic, before the page is up
    server = make_server(options, hub)
    follower.stop = stop
    thread = threading.Thread(target=follower.run, name="kafka", daemon=True)
    thread.start()
    serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    serving.start()
    log.info(
        "serving",
        url=f"http://{options.host}:{server.server_address[1]}/",
        reference=reference is not None,
        token=options.token is not None,
        hosts=sorted(options.hosts),
        kafka=redact_kafka(options.kafka),
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
