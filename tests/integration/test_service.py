"""The scorer service end to end: a real broker, a real bundle, `wirewatch serve` as a real process."""

import json
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from stream.schemas import ERROR_HEADER, OFFSET_HEADER, TOPIC_HEADER
from stream.scoring.bundle import load_bundle
from tests.cli_run import run_cli
from tests.integration.broker_fixtures import TopicFactory
from tests.integration.service_harness import (
    ServiceProcess,
    Topics,
    articles_as_messages,
    committed,
    consume,
    covers,
    exactly_once_duplicates,
    ids_cover,
    ids_of,
    produce,
)

MALFORMED: dict[str, bytes] = {
    "invalid_json": b'{"id": "broken", "text": ',
    "invalid_utf8": b'{"id": "latin", "text": "caf\xe9"}',
    "schema_violation": json.dumps({"title": "no id", "text": "x"}).encode(),
    "empty_text": json.dumps({"id": "empty", "text": "  "}).encode(),
    "too_large": json.dumps({"id": "huge", "text": "word " * 40_000}).encode(),
}
WRONG_TYPES = json.dumps({"id": 42, "text": ["not", "a", "string"]}).encode()


@pytest.fixture
def topics(new_topic: object) -> Topics:
    return Topics.create(new_topic)  # type: ignore[arg-type]


@pytest.fixture
def service(tiny_bundle: Path, kafka_bootstrap: str, topics: Topics, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A factory of service processes sharing one group; all are killed after the test."""
    group = f"group-{uuid.uuid4().hex}"
    started: list[ServiceProcess] = []

    def start(*extra: str) -> ServiceProcess:
        process = ServiceProcess(tiny_bundle, kafka_bootstrap, topics, group, tmp_path, *extra).start()
        started.append(process)
        return process

    start.group = group  # type: ignore[attr-defined]
    yield start
    for process in started:
        process.stop()


def _valid(sample_data: Path, copies: int = 1) -> list[tuple[str, bytes]]:
    return articles_as_messages(sample_data.parent / "stream.jsonl", copies)


def test_every_valid_article_scored_once_alerts_match_malformed_go_to_dlq(
    service, topics: Topics, kafka_bootstrap: str, sample_data: Path, tiny_bundle: Path
) -> None:  # type: ignore[no-untyped-def]
    valid = _valid(sample_data)
    trace = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    messages = [(i.encode(), v, trace) for i, v in valid[:20]]
    messages += [(f"bad-{r}".encode(), v, None) for r, v in MALFORMED.items()]
    messages += [(b"bad-types", WRONG_TYPES, None)]
    messages += [(i.encode(), v, trace) for i, v in valid[20:]]  # scoring goes on after the bad ones
    produce(kafka_bootstrap, topics.input, messages)

    proc = service("--max-message-bytes", "100000")
    proc.wait_ready()
    scores = consume(kafka_bootstrap, topics.scores, lambda ms: len(ms) >= len(valid))
    dlq = consume(kafka_bootstrap, topics.dlq, lambda ms: len(ms) >= len(MALFORMED) + 1)

    assert sorted(ids_of(scores)) == sorted(i for i, _ in valid)
    records = [json.loads(m.value()) for m in scores]
    threshold = load_bundle(tiny_bundle).manifest.threshold
    assert all(r["threshold"] == threshold and r["is_alert"] == (r["score"] >= threshold) for r in records)
    assert all(m.key().decode() == json.loads(m.value())["id"] for m in scores)
    assert all(dict(m.headers() or [])["traceparent"] == trace[0][1] for m in scores)

    expected_alerts = {r["id"] for r in records if r["is_alert"]}
    alerts = consume(kafka_bootstrap, topics.alerts, lambda ms: len(ms) >= len(expected_alerts), timeout=30)
    assert set(ids_of(alerts)) == expected_alerts
    assert len(alerts) == len(expected_alerts)
    texts = {json.loads(v)["id"]: json.loads(v) for _, v in valid}
    for message in alerts:
        alert = json.loads(message.value())
        assert alert["snippet"]
        assert alert["score"] >= threshold
        article = texts[alert["id"]]
        source = " ".join(f"{article.get('title') or ''} {article['text']}".split())
        assert alert["explanation"], alert["id"]
        assert all(part["sentence"] in source for part in alert["explanation"])
        assert alert["source"]["topic"] == topics.input
        assert dict(message.headers() or [])["traceparent"] == trace[0][1]

    reasons = {m.key().decode(): dict(m.headers())[ERROR_HEADER].decode() for m in dlq}
    assert reasons == {**{f"bad-{r}": r for r in MALFORMED}, "bad-types": "schema_violation"}
    sent = {k: v for k, v, _ in messages}
    for message in dlq:
        headers = dict(message.headers())
        assert message.value() == sent[message.key()]  # the original bytes, unchanged
        assert headers[TOPIC_HEADER].decode() == topics.input
        assert int(headers[OFFSET_HEADER]) >= 0
        assert headers["wirewatch-error-detail"]

    status, metrics = proc.get("/metrics")
    assert status == 200
    assert f"wirewatch_articles_scored_total {float(len(valid))}" in metrics
    assert 'wirewatch_dead_letters_total{reason="too_large"} 1.0' in metrics
    assert proc.get("/healthz")[0] == 200
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def _feed(bootstrap: str, topic: str, messages: list[tuple[str, bytes]], rate: float) -> threading.Thread:
    """Produce in the background at a steady rate, so that a kill lands mid-stream."""

    def run() -> None:
        chunk = max(1, int(rate / 10))
        for start in range(0, len(messages), chunk):
            produce(bootstrap, topic, [(i.encode(), v, None) for i, v in messages[start : start + chunk]])
            time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_for_scores(bootstrap: str, topic: str, n: int) -> None:
    got = consume(bootstrap, topic, lambda ms: len(ms) >= n, timeout=90)
    assert len(got) >= n, f"only {len(got)} scores before the kill"


def test_sigkill_mid_stream_twice_then_restart_leaves_nothing_unscored(
    service, topics: Topics, kafka_bootstrap: str, sample_data: Path
) -> None:  # type: ignore[no-untyped-def]
    valid = _valid(sample_data, copies=12)
    feeder = _feed(kafka_bootstrap, topics.input, valid, rate=150)
    for kills in (1, 2):
        proc = service()
        proc.wait_ready()
        _wait_for_scores(kafka_bootstrap, topics.scores, kills * len(valid) // 4)
        proc.signal(signal.SIGKILL)
        proc.wait()
    feeder.join(timeout=60)
    service().wait_ready()
    scores = consume(kafka_bootstrap, topics.scores, lambda ms: set(ids_of(ms)) >= {i for i, _ in valid})
    assert set(ids_of(scores)) >= {i for i, _ in valid}  # duplicates are allowed, gaps are not


def test_sigterm_mid_stream_commits_only_what_was_delivered(
    service, topics: Topics, kafka_bootstrap: str, sample_data: Path
) -> None:  # type: ignore[no-untyped-def]
    valid = _valid(sample_data, copies=8)
    feeder = _feed(kafka_bootstrap, topics.input, valid, rate=150)
    proc = service()
    proc.wait_ready()
    _wait_for_scores(kafka_bootstrap, topics.scores, len(valid) // 4)
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert '"event": "stopped"' in proc.log()

    positions = committed(kafka_bootstrap, service.group, topics.input, 3)
    below = {(p, o) for p, position in positions.items() for o in range(max(position, 0))}
    # Read until the scores cover every committed offset (or 60 s), then 3 s more.
    scores = consume(kafka_bootstrap, topics.scores, covers(below, _source), 60, settle=3)
    scored_offsets = _sources(scores)
    for partition, position in positions.items():
        # Every message below the committed position has its score on the scores topic.
        missing = [o for o in range(max(position, 0)) if (partition, o) not in scored_offsets]
        assert not missing, (
            f"partition {partition}: committed {position} but offsets {missing[:5]} have no score"
        )
    assert sum(max(p, 0) for p in positions.values()) > 0

    feeder.join(timeout=60)
    service().wait_ready()
    scores = consume(kafka_bootstrap, topics.scores, lambda ms: set(ids_of(ms)) >= {i for i, _ in valid})
    assert set(ids_of(scores)) >= {i for i, _ in valid}


def _source(record: dict[str, Any]) -> tuple[int, int]:
    return record["source"]["partition"], record["source"]["offset"]


def _sources(messages: list[Message]) -> set[tuple[int, int]]:
    return {_source(json.loads(m.value())) for m in messages}


def test_exactly_once_across_sigkill_and_restart(
    service, topics: Topics, kafka_bootstrap: str, sample_data: Path, new_topic: TopicFactory
) -> None:  # type: ignore[no-untyped-def]
    valid = _valid(sample_data, copies=8)
    feeder = _feed(kafka_bootstrap, topics.input, valid, rate=150)
    proc = service("--exactly-once", "--transactional-id", f"txn-{uuid.uuid4().hex}")
    proc.wait_ready()
    _wait_for_scores(kafka_bootstrap, topics.scores, len(valid) // 4)
    proc.signal(signal.SIGKILL)
    proc.wait()
    feeder.join(timeout=60)
    transactional_id = proc.args[proc.args.index("--transactional-id") + 1]
    service("--exactly-once", "--transactional-id", transactional_id).wait_ready()
    # Every id, then 3 s more: anything written late would be a duplicate.
    scores = consume(kafka_bootstrap, topics.scores, ids_cover({i for i, _ in valid}), settle=3)
    counts = Counter(ids_of(scores))
    assert set(counts) == {i for i, _ in valid}
    # Zero on Kafka; the embedded broker leaves a killed producer's open transaction visible.
    duplicated, allowed = exactly_once_duplicates(kafka_bootstrap, new_topic(1), scores, kills=1)
    assert duplicated <= allowed, [i for i, n in counts.items() if n > 1][:5]


def test_missing_topic_and_unreachable_broker_fail_fast(tiny_bundle: Path, kafka_bootstrap: str) -> None:
    result = run_cli(
        "serve", "--bundle", str(tiny_bundle), "--bootstrap-servers", kafka_bootstrap,
        "--input-topic", f"missing-{uuid.uuid4().hex}", "--metrics-port", "0",
    )  # fmt: skip
    assert result.returncode == 2
    assert "do not exist" in result.stderr
    assert "--create-topics" in result.stderr
    result = run_cli(
        "serve", "--bundle", str(tiny_bundle), "--bootstrap-servers", "127.0.0.1:1", "--metrics-port", "0",
        env={"WIREWATCH_STARTUP_TIMEOUT_S": "3"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "cannot reach Kafka at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_settings_and_broken_bundle_fail_fast(tmp_path: Path, kafka_bootstrap: str) -> None:
    result = run_cli("serve", "--bundle", str(tmp_path), "--bootstrap-servers", kafka_bootstrap)
    assert result.returncode == 2
    assert "not a model bundle" in result.stderr
    result = run_cli("serve", "--bundle", str(tmp_path), env={"WIREWATCH_BATCH_SIZE": "zero"})
    assert result.returncode == 2
    assert "invalid setting batch_size" in result.stderr
    assert "WIREWATCH_BATCH_SIZE" in result.stderr


def test_create_topics_then_replay_and_tail(
    tiny_bundle: Path, kafka_bootstrap: str, sample_data: Path, tmp_path: Path
) -> None:
    prefix = uuid.uuid4().hex[:8]
    topics = Topics(f"{prefix}-in", f"{prefix}-scores", f"{prefix}-alerts", f"{prefix}-dlq")
    proc = ServiceProcess(
        tiny_bundle, kafka_bootstrap, topics, f"g-{prefix}", tmp_path, "--create-topics"
    ).start()
    try:
        proc.wait_ready()
        stream_file = sample_data.parent / "stream.jsonl"
        n = sum(1 for line in stream_file.read_text().splitlines() if line.strip())
        result = run_cli(
            "replay",
            str(stream_file),
            "--topic",
            topics.input,
            "--bootstrap-servers",
            kafka_bootstrap,
            "--rate",
            "500",
        )
        assert result.returncode == 0, result.stderr
        assert f"sent {n} messages" in result.stdout
        scores = consume(kafka_bootstrap, topics.scores, lambda ms: len(ms) >= n)
        assert len(scores) == n
        alerts = sum(json.loads(m.value())["is_alert"] for m in scores)
        tail = run_cli(
            "tail", "--topic", topics.scores, "--bootstrap-servers", kafka_bootstrap,
            "--from-beginning", "--json", "--limit", "3",
        )  # fmt: skip
        assert tail.returncode == 0, tail.stderr
        assert len(tail.stdout.strip().splitlines()) == 3
        if alerts:
            readable = run_cli(
                "tail", "--bootstrap-servers", kafka_bootstrap, "--topic", topics.alerts,
                "--from-beginning", "--limit", "1",
            )  # fmt: skip
            assert readable.returncode == 0, readable.stderr
            assert readable.stdout.strip()
    finally:
        proc.stop()
