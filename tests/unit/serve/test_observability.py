"""Kafka errors and librdkafka logs reach structlog and metrics; health endpoints; the metrics port."""

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import structlog
from confluent_kafka import KafkaError

from stream.errors import ConfigError
from stream.serve.observability import HealthServer, KafkaEvents, Metrics

ROOT = Path(__file__).resolve().parents[3]


def test_client_errors_and_librdkafka_logs_become_structlog_events_and_metrics() -> None:
    metrics = Metrics()
    events = KafkaEvents("producer", structlog.get_logger("t"), metrics)
    with structlog.testing.capture_logs() as logs:
        events.error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        # As confluent-kafka calls a logger: log(level, "%s [%s] %s", facility, client name, text).
        events.log(40, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect to ipv4#127.0.0.1:1 failed")
        events.log(7, "%s [%s] %s", "FETCH", "rdkafka#consumer-2", "debug chatter")
    assert logs[0]["event"] == "kafka error"
    assert logs[0]["error"] == "_ALL_BROKERS_DOWN"
    assert {k: logs[1][k] for k in ("event", "log_level", "facility", "message")} == {
        "event": "librdkafka",
        "log_level": "error",
        "facility": "FAIL",
        "message": "Connect to ipv4#127.0.0.1:1 failed",
    }
    assert logs[2]["log_level"] == "debug"
    assert metrics.kafka_errors.labels("producer", "_ALL_BROKERS_DOWN")._value.get() == 1
    assert events.fatal is None
    events.error(KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True))
    assert events.fatal
    assert "fenced" in events.fatal


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_endpoints_answer_the_service_checks() -> None:
    server = HealthServer("127.0.0.1", 0, Metrics())
    server.start()
    try:
        assert _get(server.port, "/healthz")[0] == 200
        assert _get(server.port, "/readyz") == (503, "failing: starting\n")
        server.live = lambda: (False, "the service loop has not run for 61 s")
        assert _get(server.port, "/healthz") == (503, "failing: the service loop has not run for 61 s\n")
        assert _get(server.port, "/metrics")[0] == 200
    finally:
        server.stop()


def test_a_metrics_port_in_use_is_a_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"metrics port {port} on 127.0.0.1 is already in use"):
            HealthServer("127.0.0.1", port, Metrics())
        # The CLI: one line, no traceback, before the bundle is even looked at.
        result = subprocess.run(
            [sys.executable, "-m", "wirewatch", "serve", "--bundle", "no-such-bundle",
             "--metrics-host", "127.0.0.1", "--metrics-port", str(port)],
            capture_output=True, text=True, cwd=ROOT, timeout=120,
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"wirewatch: error: metrics port {port} on 127.0.0.1 is already in use (another wirewatch serve on "
        "this host?); give each instance its own --metrics-port (WIREWATCH_METRICS_PORT), or 0 for none"
    ]
