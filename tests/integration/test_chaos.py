"""Chaos against the real embedded broker: kills, a frozen broker, poison pills, live bundle changes.

Each scenario runs `wirewatch serve` processes with a real tiny bundle, is bounded in time, and
ends by checking the outputs: every valid id scored, every malformed message in the dead-letter
topic with its reason, alerts exactly the scores at or above the threshold, and with
--exactly-once one committed score per input. Each prints its counts (scored, missing,
duplicated) so a CI log shows what happened.
"""

import json
import os
import shutil
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer

from stream.devtools.broker import EmbeddedBroker
from stream.schemas import ERROR_HEADER, ORIGINAL_SIZE_HEADER
from stream.scoring.bundle import load_bundle
from tests.integration.broker_fixtures import TopicFactory
from tests.integration.service_harness import (
    ServiceProcess,
    Topics,
    articles_as_messages,
    consume,
    exactly_once_duplicates,
    ids_cover,
    until,
)

FEED_RATE = 150.0  # messages per second, so that kills and freezes land mid-stream


def _feed(
    bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]], rate: float
) -> threading.Thread:
    def run() -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": 8_000_000})
        chunk = max(1, int(rate / 10))
        for start in range(0, len(messages), chunk):
            for key, value in messages[start : start + chunk]:
                producer.produce(topic, value=value, key=key)
            producer.poll(0)
            time.sleep(0.1)
        assert producer.flush(60) == 0

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _scored_at_least(bootstrap: str, topic: str, n: int, timeout: float = 90) -> bool:
    return len(consume(bootstrap, topic, lambda ms: len(ms) >= n, timeout)) >= n


def _records(messages: list[Message]) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(m.value()) for m in messages]


def _wait_scored(bootstrap: str, topic: str, expected: set[str], timeout: float) -> list[dict]:  # type: ignore[type-arg]
    return _records(consume(bootstrap, topic, ids_cover(expected), timeout))


def _report(name: str, expected: set[str], records: list[dict]) -> tuple[set[str], int]:  # type: ignore[type-arg]
    counts = Counter(r["id"] for r in records)
    missing = expected - set(counts)
    duplicated = sum(n - 1 for n in counts.values())
    print(
        f"\n[{name}] inputs {len(expected)}, scored {len(set(counts) & expected)}, missing {len(missing)}, duplicated {duplicated}"
    )
    return missing, duplicated


def _check_alerts(bootstrap: str, topics: Topics, scores: list[dict], threshold: float) -> None:  # type: ignore[type-arg]
    expected = {r["id"] for r in scores if r["score"] >= threshold}
    alerts = _records(
        consume(
            bootstrap, topics.alerts, lambda ms: {json.loads(m.value())["id"] for m in ms} >= expected, 60
        )
    )
    assert {a["id"] for a in alerts} == expected
    assert all(a["score"] >= threshold for a in alerts)


class Fleet:
    """Service processes of one group; all killed at the end."""

    def __init__(self, bundle: Path, bootstrap: str, topics: Topics, log_dir: Path, *extra: str) -> None:
        self.args = (bundle, bootstrap, topics, f"group-{uuid.uuid4().hex}", log_dir, *extra)
        self.started: list[ServiceProcess] = []

    def start(self, *more: str) -> ServiceProcess:
        process = ServiceProcess(*self.args, *more).start()  # type: ignore[arg-type]
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in self.started:
            process.stop()

    def story(self, batches: int = 8) -> str:
        """What each process logged, all but its last few batch lines left out: the CI log of a failure."""
        parts = []
        for process in self.started:
            lines = process.log().splitlines()
            batch_lines = [n for n, line in enumerate(lines) if '"event": "batch"' in line]
            skipped = set(batch_lines[:-batches])
            kept = [line[:400] for n, line in enumerate(lines) if n not in skipped]
            parts.append(f"--- {process.log_path.name} ({len(skipped)} earlier batches left out)")
            parts.extend(kept)
        return "\n".join(parts)


@pytest.fixture
def fleet(
    tiny_bundle: Path, kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Fleet]]:
    made: list[Fleet] = []

    def make(
        topics: Topics, *extra: str, bundle: Path = tiny_bundle, bootstrap: str = kafka_bootstrap
    ) -> Fleet:
        made.append(Fleet(bundle, bootstrap, topics, tmp_path, *extra))
        return made[-1]

    yield make
    for f in made:
        f.stop()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for f in made:
            print(f.story())


def _valid(sample_data: Path, copies: int) -> list[tuple[str, bytes]]:
    return articles_as_messages(sample_data.parent / "stream.jsonl", copies)


POISON: dict[str, bytes] = {
    "invalid_json": b'{"id": "broken", "text": ',
    "invalid_utf8": b'{"id": "latin", "text": "caf\xe9"}',
    "schema_violation": json.dumps({"id": 42, "text": ["not", "text"]}).encode(),
    "empty_text": json.dumps({"id": "empty", "text": "  "}).encode(),
    "too_large": json.dumps({"id": "big", "text": "word " * 204_000}).encode(),  # 1,020,000+ bytes
    "too_large_5mb": json.dumps({"id": "huge", "text": "word " * 1_000_000}).encode(),
}


def test_instances_killed_repeatedly_with_poison_pills_lose_nothing(
    fleet, new_topic, kafka_bootstrap: str, sample_data: Path, tiny_bundle: Path
) -> None:  # type: ignore[no-untyped-def]
    """Three scorers on four partitions, one SIGKILLed three times mid-stream, poison among the articles."""
    topics = Topics(new_topic(4), new_topic(1), new_topic(1), new_topic(1))
    valid = _valid(sample_data, copies=16)
    messages: list[tuple[bytes | None, bytes]] = [(i.encode(), v) for i, v in valid]
    for n, (reason, value) in enumerate(POISON.items()):
        messages.insert(100 + n * 97, (f"poison-{reason}".encode(), value))
    group = fleet(topics)
    steady = [group.start(), group.start()]
    victim = group.start()
    for process in [*steady, victim]:
        process.wait_ready()
    feeder = _feed(kafka_bootstrap, topics.input, messages, FEED_RATE)
    expected = {i for i, _ in valid}
    for kill in range(3):
        assert _scored_at_least(kafka_bootstrap, topics.scores, (kill + 1) * len(valid) // 5)
        victim.signal(signal.SIGKILL)
        victim.wait()
        victim = group.start()
        victim.wait_ready()
    feeder.join(timeout=120)
    scores = _wait_scored(kafka_bootstrap, topics.scores, expected, 150)
    missing, _ = _report("kills+poison", expected, scores)
    assert not missing, sorted(missing)[:5]
    assert all(p.process and p.process.poll() is None for p in [*steady, victim])

    dlq = consume(
        kafka_bootstrap,
        topics.dlq,
        lambda ms: {m.key() for m in ms} >= {k for k, _ in messages if k and k.startswith(b"poison")},
        60,
    )
    reasons = {m.key().decode(): dict(m.headers())[ERROR_HEADER].decode() for m in dlq}
    assert reasons == {f"poison-{r}": r.removesuffix("_5mb") for r in POISON}
    for message in dlq:
        headers = dict(message.headers())
        original = POISON[message.key().decode().removeprefix("poison-")]
        if ORIGINAL_SIZE_HEADER in headers:  # capped: the start of the value and its size
            assert int(headers[ORIGINAL_SIZE_HEADER]) == len(original)
            assert original.startswith(message.value())
        else:
            assert message.value() == original
    assert ORIGINAL_SIZE_HEADER in dict(next(m for m in dlq if m.key() == b"poison-too_large_5mb").headers())
    _check_alerts(kafka_bootstrap, topics, scores, load_bundle(tiny_bundle).manifest.threshold)


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker of this test's own: it gets frozen, which the session's broker must not be."""
    broker = EmbeddedBroker().start()
    try:
        yield broker
    finally:
        if broker.pid:
            os.kill(broker.pid, signal.SIGCONT)
        broker.stop()


ROUNDS = 4  # rebalances while partitions are paused, per run; the freeze adds more


def test_rebalances_while_paused_and_a_frozen_broker_leave_no_partition_stalled(
    fleet, own_broker: EmbeddedBroker, sample_data: Path
) -> None:  # type: ignore[no-untyped-def]
    """The stall of issue 8: two scorers, three partitions, kills and a 20 s SIGSTOP of the broker.

    --max-in-flight 8 keeps partitions paused most of the time, so every rebalance lands on paused
    partitions: the race that left partitions paused for good is given a chance every round.
    """
    bootstrap = own_broker.bootstrap_servers
    factory = TopicFactory(bootstrap)
    topics = Topics(factory(3), factory(1), factory(1), factory(1))
    valid = _valid(sample_data, copies=10)
    group = fleet(topics, "--max-in-flight", "8", "--batch-size", "4", bootstrap=bootstrap)
    steady, victim = group.start(), group.start()
    steady.wait_ready()
    victim.wait_ready()
    feeder = _feed(bootstrap, topics.input, [(i.encode(), v) for i, v in valid], 100.0)
    started = time.monotonic()
    for round_ in range(ROUNDS):
        target = (round_ + 1) * len(valid) // (ROUNDS + 2)
        assert _scored_at_least(bootstrap, topics.scores, target), f"round {round_ + 1}: scoring stalled"
        victim.signal(signal.SIGKILL)
        victim.wait()
        victim = group.start()
        victim.wait_ready()
        if round_ == ROUNDS // 2:
            assert own_broker.pid is not None
            os.kill(own_broker.pid, signal.SIGSTOP)
            time.sleep(20)
            os.kill(own_broker.pid, signal.SIGCONT)
        print(f"round {round_ + 1}/{ROUNDS} done at {time.monotonic() - started:.0f} s")
    feeder.join(timeout=120)
    expected = {i for i, _ in valid}
    scores = _wait_scored(bootstrap, topics.scores, expected, 150)
    missing, _ = _report("rebalance+freeze", expected, scores)
    assert not missing, f"{len(missing)} never scored: a stalled partition; e.g. {sorted(missing)[:5]}"
    for process in (steady, victim):
        assert process.process is not None
        assert process.process.poll() is None, process.log()[-2000:]
        assert process.get("/healthz")[0] == 200
    assert '"event": "librdkafka"' in steady.log() or '"event": "kafka error"' in steady.log()


def test_exactly_once_two_instances_on_one_host_with_kills_commit_each_score_once(
    fleet, new_topic, kafka_bootstrap: str, sample_data: Path
) -> None:  # type: ignore[no-untyped-def]
    """Default transactional ids: two instances on one host must not fence each other."""
    topics = Topics.create(new_topic)
    valid = _valid(sample_data, copies=10)
    group = fleet(topics, "--exactly-once", "--liveness-timeout-s", "5")
    steady, victim = group.start(), group.start()
    steady.wait_ready()
    victim.wait_ready()
    feeder = _feed(kafka_bootstrap, topics.input, [(i.encode(), v) for i, v in valid], FEED_RATE)
    for kill in range(2):
        assert _scored_at_least(kafka_bootstrap, topics.scores, (kill + 1) * len(valid) // 4)
        victim.signal(signal.SIGKILL)
        victim.wait()
        victim = group.start()
        victim.wait_ready()
    feeder.join(timeout=120)
    expected = {i for i, _ in valid}
    # Every id, then 3 s more: anything written late would be a duplicate.
    messages = consume(kafka_bootstrap, topics.scores, ids_cover(expected), 150, settle=3)
    missing, _ = _report("exactly-once kills", expected, _records(messages))
    assert not missing
    duplicated, allowed = exactly_once_duplicates(kafka_bootstrap, new_topic(1), messages, kills=2)
    print(f"[exactly-once kills] duplicates {duplicated}, allowed by this broker {allowed}")
    assert duplicated <= allowed
    ids = [
        json.loads(line)["transactional_id"]
        for p in (steady, victim)
        for line in p.log().splitlines()
        if '"event": "starting"' in line
    ]
    assert len(set(ids)) == 2, ids  # distinct slots on one host
    assert "fenced" not in steady.log().lower()
    time.sleep(6)  # idle past the liveness timeout: an idle stream is not a stalled one
    assert steady.get("/healthz") == (200, "ok\n")


def _copy_bundle(source: Path, target: Path, version: str | None = None, corrupt: bool = False) -> Path:
    shutil.copytree(source, target)
    if version is not None:
        manifest = json.loads((target / "manifest.json").read_text())
        manifest["version"] = version
        (target / "manifest.json").write_text(json.dumps(manifest))
    if corrupt:
        model = bytearray((target / "model.onnx").read_bytes())
        model[len(model) // 2] ^= 0xFF
        (target / "model.onnx").write_bytes(bytes(model))
    return target


def _flip(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.symlink_to(target)
    os.replace(tmp, link)


def test_hot_reload_mid_stream_swaps_a_good_bundle_refuses_a_corrupt_one_and_shadows(
    fleet, new_topic, kafka_bootstrap: str, sample_data: Path, tiny_bundle: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    topics = Topics.create(new_topic)
    shadow_topic = new_topic(1)
    v1 = _copy_bundle(tiny_bundle, tmp_path / "v1")
    v2 = _copy_bundle(tiny_bundle, tmp_path / "v2", version="2.0.0")
    broken = _copy_bundle(tiny_bundle, tmp_path / "broken", version="3.0.0", corrupt=True)
    shadow = _copy_bundle(tiny_bundle, tmp_path / "shadow", version="shadow-1")
    current = tmp_path / "current"
    current.symlink_to(v1)
    assert load_bundle(v1).manifest.canary is not None  # the exporter wrote the canary set
    group = fleet(
        topics, "--reload-interval-s", "0.3", "--shadow-bundle", str(shadow), "--shadow-topic", shadow_topic,
        bundle=current,
    )  # fmt: skip
    process = group.start()
    process.wait_ready()
    valid = _valid(sample_data, copies=10)
    feeder = _feed(kafka_bootstrap, topics.input, [(i.encode(), v) for i, v in valid], 60.0)
    third = len(valid) // 3
    assert _scored_at_least(kafka_bootstrap, topics.scores, third)
    _flip(current, v2)
    assert until(lambda: "bundle swapped in" in process.log(), 30), process.log()[-3000:]
    _flip(current, broken)
    assert until(lambda: "bundle refused" in process.log(), 30), process.log()[-3000:]
    process.signal(signal.SIGHUP)  # a forced attempt at the same corrupt bundle: refused again
    assert until(lambda: process.log().count("bundle refused") >= 2, 30)
    feeder.join(timeout=120)
    expected = {i for i, _ in valid}
    scores = _wait_scored(kafka_bootstrap, topics.scores, expected, 120)
    missing, duplicated = _report("hot reload", expected, scores)
    assert not missing
    assert duplicated == 0

    versions = Counter(r["model"]["version"] for r in scores)
    assert set(versions) == {"1.0.0", "2.0.0"}, versions
    per_partition: dict[int, list[tuple[int, str]]] = {}
    for r in scores:
        per_partition.setdefault(r["source"]["partition"], []).append(
            (r["source"]["offset"], r["model"]["version"])
        )
    for seen in per_partition.values():
        in_order = [v for _, v in sorted(seen)]
        assert in_order == sorted(in_order), "a partition went back to the old bundle"
    digests = {r["model"]["version"]: r["model"]["digest"] for r in scores}
    assert digests["1.0.0"] == load_bundle(v1).digest
    assert digests["2.0.0"] == load_bundle(v2).digest
    assert process.process
    assert process.process.poll() is None

    shadows = _records(consume(kafka_bootstrap, shadow_topic, lambda ms: len(ms) >= len(expected), 60))
    assert Counter(r["id"] for r in shadows) == Counter(r["id"] for r in scores)
    assert {r["model"]["version"] for r in shadows} == {"shadow-1"}
    status, metrics = process.get("/metrics")
    assert status == 200
    assert 'wirewatch_bundle_reloads_total{result="swapped"} 1.0' in metrics
    assert 'wirewatch_bundle_reloads_total{result="refused"} 2.0' in metrics
    agreed = sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("wirewatch_shadow_agreement_total{")
    )
    assert agreed == len(expected)
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
