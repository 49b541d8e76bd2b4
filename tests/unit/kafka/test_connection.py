"""Every Kafka client is built by stream.kafka.connection, with the guarantees set after the user's settings."""

import ast
from pathlib import Path

from stream.kafka.config import PROTECTED_KAFKA_KEYS
from stream.kafka.connection import Connection

ROOT = Path(__file__).resolve().parents[3]
# Everything the service's guarantees rest on, passed through as a user would (parse-time refusal aside).
HOSTILE = {
    "bootstrap.servers": "elsewhere:9092",
    "group.id": "someone-else",
    "transactional.id": "someone-else",
    "enable.auto.commit": "true",
    "enable.auto.offset.store": "true",
    "isolation.level": "read_uncommitted",
    "enable.idempotence": "false",
    "acks": "1",
}


def test_user_settings_never_override_what_the_guarantees_rest_on() -> None:
    connection = Connection("broker:9092", {**HOSTILE, "fetch.wait.max.ms": "10"})
    consumer = connection.consumer_config("wirewatch", {"fetch.wait.max.ms": 50})
    assert consumer["bootstrap.servers"] == "broker:9092"
    assert consumer["group.id"] == "wirewatch"
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["isolation.level"] == "read_committed"
    assert consumer["fetch.wait.max.ms"] == "10", "tuning is the user's to change"
    producer = connection.producer_config(transactional_id="wirewatch-host-0")
    assert producer["bootstrap.servers"] == "broker:9092"
    assert producer["enable.idempotence"] is True
    assert producer["acks"] == "all"
    assert producer["transactional.id"] == "wirewatch-host-0"
    assert "transactional.id" not in Connection("broker:9092").producer_config()
    # Between them the builders set every key the settings refuse.
    assert set(PROTECTED_KAFKA_KEYS) <= set(consumer) | set(producer)


def test_callbacks_and_fixed_keys_come_after_the_user_settings_and_producers_drop_consumer_keys() -> None:
    connection = Connection("broker:9092", {"session.timeout.ms": "6000", "linger.ms": "20"})
    lease = connection.consumer_config(
        "lease", {"session.timeout.ms": "10000"}, {"partition.assignment.strategy": "cooperative-sticky"}
    )
    assert lease["session.timeout.ms"] == "6000"
    assert lease["partition.assignment.strategy"] == "cooperative-sticky"
    producer = connection.producer_config(fixed={"error_cb": print})
    assert "session.timeout.ms" not in producer
    assert producer["linger.ms"] == "20"
    assert producer["error_cb"] is print
    assert Connection("broker:9092").producer_config()["linger.ms"] == 5


def _client_calls(path: Path) -> list[str]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in ("Consumer", "Producer", "AdminClient"):
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return calls


def test_no_module_but_the_connection_builds_a_kafka_client() -> None:
    own = ROOT / "stream" / "kafka" / "connection.py"
    paths = [p for package in ("stream", "training", "wirewatch") for p in (ROOT / package).rglob("*.py")]
    assert [call for p in paths if p != own for call in _client_calls(p)] == []
