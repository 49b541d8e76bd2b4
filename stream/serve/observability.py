"""Logs, metrics and health: structlog events, Prometheus metrics, /metrics, /healthz, /readyz.

Kafka clients report through KafkaEvents: their error callbacks and librdkafka's own log lines
become structlog events and a counter, so a broker that is down or refuses records shows up in
the log and in `wirewatch_kafka_errors_total`, never only in a client's memory.
"""

import contextlib
import errno
import logging
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from stream.errors import ConfigError
from stream.scoring.drift import DriftSnapshot

Partition = tuple[str, int]


class Metrics:
    """The service's Prometheus metrics, in a registry of their own (one per service)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._model_labels: set[tuple[str, str, str, str]] = set()
        r = self.registry
        self.consumed = Counter("wirewatch_messages_consumed", "Input messages consumed", registry=r)
        self.scored = Counter("wirewatch_articles_scored", "Articles scored", registry=r)
        self.alerts = Counter("wirewatch_alerts", "Alerts published", registry=r)
        self.dead_letters = Counter(
            "wirewatch_dead_letters", "Messages sent to the dead-letter topic", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "wirewatch_batch_size",
            "Articles per micro-batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.latency = Histogram(
            "wirewatch_end_to_end_latency_seconds",
            "From the input message's timestamp to its score's delivery",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.inference = Histogram(
            "wirewatch_inference_seconds",
            "Tokenization and ONNX Runtime time per batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.lag = Gauge(
            "wirewatch_consumer_lag",
            "Messages of the partition not read yet (high watermark of the last fetch minus the position)",
            ["topic", "partition"],
            registry=r,
        )
        self.kafka_errors = Counter(
            "wirewatch_kafka_errors",
            "Errors reported by the Kafka clients (consumer, producer), by librdkafka error name",
            ["client", "error"],
            registry=r,
        )
        self.transactions = Counter(
            "wirewatch_transactions", "Kafka transactions by outcome (exactly-once)", ["outcome"], registry=r
        )
        self.rebalances = Counter(
            "wirewatch_rebalance_events", "Partitions assigned, revoked or lost", ["event"], registry=r
        )
        self.paused = Gauge("wirewatch_paused_partitions", "Partitions paused for backpressure", registry=r)
        self.in_flight = Gauge(
            "wirewatch_in_flight_messages", "Messages consumed, not yet committed", registry=r
        )
        self.heartbeat = Gauge(
            "wirewatch_loop_heartbeat_timestamp_seconds",
            "Unix time of the service loop's last pass",
            registry=r,
        )
        self.model = Gauge(
            "wirewatch_model_info",
            "The bundle scoring now (1) and the shadow (1)",
            ["role", "name", "version", "digest"],
            registry=r,
        )
        self.reloads = Counter(
            "wirewatch_bundle_reloads",
            "Hot reloads of the bundle by result (swapped or refused)",
            ["result"],
            registry=r,
        )
        self.shadow_agreement = Counter(
            "wirewatch_shadow_agreement",
            "Articles scored by the shadow bundle, by whether its alert decision agrees with the primary's",
            ["agree"],
            registry=r,
        )
        self.shadow_diff = Histogram(
            "wirewatch_shadow_score_difference",
            "|shadow score - primary score| per article",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.shadow_failures = Counter(
            "wirewatch_shadow_failures", "Articles the shadow bundle failed to score", registry=r
        )

        self.unsupported_language = Counter(
            "wirewatch_articles_unsupported_language",
            "Articles scored whose lang the bundle was not trained on (their scores are out of distribution)",
            ["lang"],
            registry=r,
        )
        self.score = Histogram(
            "wirewatch_score",
            "Scores of the articles scored (the distribution drift is read from)",
            buckets=tuple(round(0.05 * i, 2) for i in range(1, 21)),
            registry=r,
        )
        self.alerts_last_hour = Gauge(
            "wirewatch_alerts_last_hour", "Alerts of this instance over the last hour", registry=r
        )
        self.score_psi = Gauge(
            "wirewatch_score_psi",
            "PSI of the last hour's scores against the bundle's validation distribution (-1: no reference)",
            registry=r,
        )
        self.score_drift = Gauge(
            "wirewatch_score_drift",
            "1 when the last hour's scores drifted (PSI >= 0.25, >= 200 scores)",
            registry=r,
        )

    def show_drift(self, snapshot: "DriftSnapshot") -> None:
        self.alerts_last_hour.set(snapshot.alerts)
        self.score_psi.set(-1 if snapshot.psi is None else snapshot.psi)
        self.score_drift.set(int(snapshot.drifted))

    def show_lag(self, lags: dict[Partition, int]) -> None:
        for (topic, partition), lag in lags.items():
            self.lag.labels(topic, str(partition)).set(lag)

    def forget_partitions(self, partitions: list[Partition]) -> None:
        """Revoked or lost partitions leave the lag gauge: another instance reports them now."""
        for topic, partition in partitions:
            with contextlib.suppress(KeyError):
                self.lag.remove(topic, str(partition))

    def show_model(self, role: str, name: str, version: str, digest: str | None) -> None:
        for labels in [k for k in self._model_labels if k[0] == role]:
            self.model.remove(*labels)
            self._model_labels.discard(labels)
        labels = (role, name, version, digest or "")
        self.model.labels(*labels).set(1)
        self._model_labels.add(labels)


# librdkafka's syslog levels, as confluent-kafka hands them to a Python logger, to structlog's.
_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error"}


class KafkaEvents:
    """The Kafka clients' error callback and logger, both into structlog and the metrics.

    confluent-kafka calls these from poll()/consume() on the calling thread, never concurrently.
    A fatal error (a fenced producer, say) is kept in ``fatal``; the service stops on it.
    """

    def __init__(self, client: str, log: Any, metrics: Metrics) -> None:
        self.client = client
        self._log = log.bind(client=client)
        self._metrics = metrics
        self.fatal: str | None = None

    def error(self, error: Any) -> None:
        name = str(error.name())
        self._metrics.kafka_errors.labels(self.client, name).inc()
        if error.fatal():
            self.fatal = f"{self.client}: {error.str()}"
            self._log.error("kafka fatal error", error=name, reason=error.str())
        else:
            self._log.warning("kafka error", error=name, reason=error.str())

    def log(self, level: int, fmt: str, *args: Any) -> None:
        """The `logger` of a librdkafka client: called as log(level, "%s [%s] %s", facility, name, text)."""
        facility, _name, text = args if len(args) == 3 else ("", "", fmt % args if args else fmt)
        method = _LEVELS.get(level, "error" if level > logging.ERROR else "debug")
        getattr(self._log, method)("librdkafka", facility=facility, message=text)

    def config(self) -> dict[str, Any]:
        return {"error_cb": self.error, "logger": self}


def wait_ready(port: int, process: "subprocess.Popen[bytes]", timeout: float, interval: float = 0.2) -> bool:
    """Poll a service's /readyz until it answers 200 (True), its process exits or time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(interval)
    return False


Check = Callable[[], tuple[bool, str]]


class HealthServer:
    """/metrics, /healthz (the loop is alive and making progress) and /readyz (ready to score).

    The checks are set by the service once it exists; until then the process is alive and not
    ready. Binding happens in the constructor, so a port in use fails at startup in one line.
    """

    def __init__(self, host: str, port: int, metrics: Metrics) -> None:
        registry = metrics.registry
        self.live: Check = lambda: (True, "starting")
        self.ready: Check = lambda: (False, "starting")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif self.path in ("/healthz", "/readyz"):
                    ok, why = server.live() if self.path == "/healthz" else server.ready()
                    self._send(200 if ok else 503, f"{why if ok else 'failing: ' + why}\n".encode())
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes would flood the log
                return

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"metrics port {port} on {host} is already in use (another wirewatch serve on this "
                    "host?); give each instance its own --metrics-port (WIREWATCH_METRICS_PORT), or 0 for none"
                ) from None
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
