"""The incident stage against the real broker, with a real (tiny) ONNX embedder: group, publish, restart."""

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream.errors import SystemicError
from stream.schemas import Alert, ModelRef, SourceRef
from stream.scoring.embedder import Embedder
from stream.subscribers.incidents import STATE_HEADER
from stream.subscribers.stage import IncidentOptions, IncidentStage
from tests.integration.service_harness import ROOT, SESSION_TIMEOUT, consume, ids_of, produce, until

TIMEOUT = 90.0


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedder export path on the tiny random BERT: validated against PyTorch, loaded by stream."""
    from training.ship.embedder import export_embedder

    out = tmp_path_factory.mktemp("embedders") / "tiny-embedder"
    export_embedder(out, base_model=str(tiny_model), max_length=64)
    return out


def make_alert(id: str, title: str, publisher: str, score: float = 0.9, offset: int = 0) -> bytes:
    return (
        Alert(
            id=id,
            score=score,
            is_alert=True,
            threshold=0.5,
            model=ModelRef(name="tiny", version="1"),
            scored_at=datetime.now(UTC),
            source=SourceRef(topic="articles", partition=0, offset=offset),
            title=title,
            snippet=f"{title.lower()} according to officials",
            publisher=publisher,
            url=f"https://news.example/{id}",
            published_at=None,
        )
        .model_dump_json()
        .encode()
    )


class Running:
    """The stage in a thread, stopped and joined at the end; its failure, if any, is kept."""

    def __init__(self, stage: IncidentStage) -> None:
        self.stage = stage
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.stage.run()
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> "Running":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stage.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the incident stage did not stop"


@pytest.fixture
def stage_factory(
    kafka_bootstrap: str, new_topic: Callable[[int], str], tiny_embedder: Path
) -> Callable[[], tuple[IncidentStage, IncidentOptions]]:
    options = IncidentOptions(
        bootstrap_servers=kafka_bootstrap,
        alerts_topic=new_topic(3),
        incidents_topic=new_topic(2),
        incident_alerts_topic=new_topic(2),
        dlq_topic=new_topic(1),
        group_id=f"incidents-{uuid.uuid4().hex}",
        # The tiny random BERT finds most texts alike: only near-identical ones may group.
        threshold=0.999,
        batch_size=8,
        kafka=dict(SESSION_TIMEOUT),
    )
    embedder = Embedder(tiny_embedder)
    return lambda: (IncidentStage(options, embedder), options)


def latest_by_key(messages: list) -> dict[str, dict]:  # type: ignore[type-arg]
    return {m.key().decode(): json.loads(m.value()) for m in messages}


def test_alerts_are_grouped_published_with_their_incident_and_rebuilt_after_a_restart(
    kafka_bootstrap: str, stage_factory: Callable[[], tuple[IncidentStage, IncidentOptions]]
) -> None:
    stage, o = stage_factory()
    storm = [
        make_alert(f"s{i}", "Car bomb kills twelve at Kabul police station", p)
        for i, p in enumerate(["AP", "Reuters", "BBC"])
    ]
    produce(
        kafka_bootstrap,
        o.alerts_topic,
        [(b"s0", storm[0], None), (b"x", make_alert("x", "Floods close schools in the north", "AFP"), None)],
    )
    produce(
        kafka_bootstrap,
        o.alerts_topic,
        [(b"s1", storm[1], None), (b"s2", storm[2], None), (b"bad", b"{not an alert", None)],
    )
    with Running(stage):
        grouped = consume(kafka_bootstrap, o.incident_alerts_topic, lambda ms: len(ms) >= 4, TIMEOUT)
        dead = consume(kafka_bootstrap, o.dlq_topic, lambda ms: len(ms) >= 1, TIMEOUT)
    by_id = {json.loads(m.value())["id"]: json.loads(m.value()) for m in grouped}
    assert set(by_id) == {"s0", "s1", "s2", "x"}
    storm_ids = {by_id[i]["incident_id"] for i in ("s0", "s1", "s2")}
    assert len(storm_ids) == 1, "three reports of one event are one incident"
    (storm_id,) = storm_ids
    assert by_id["x"]["incident_id"] != storm_id
    assert all(m.key().decode() == json.loads(m.value())["incident_id"] for m in grouped)
    assert dict(dead[0].headers())["wirewatch-error"] == b"schema_violation"

    incidents = consume(
        kafka_bootstrap,
        o.incidents_topic,
        lambda ms: latest_by_key(ms).get(storm_id, {}).get("reports") == 3,
        TIMEOUT,
    )
    record = latest_by_key(incidents)[storm_id]
    assert record["status"] == "open"
    assert record["outlets"] == ["AP", "BBC", "Reuters"]
    assert record["title"] == "Car bomb kills twelve at Kabul police station"
    assert all(STATE_HEADER in dict(m.headers() or []) for m in incidents)

    # A new instance (the old one is gone) reads the incidents back and goes on where it stopped.
    restarted, _ = stage_factory()
    produce(
        kafka_bootstrap,
        o.alerts_topic,
        [(b"s3", make_alert("s3", "Car bomb kills twelve at Kabul police station", "CNN"), None)],
    )
    with Running(restarted) as running:
        grouped = consume(kafka_bootstrap, o.incident_alerts_topic, lambda ms: len(ms) >= 5, TIMEOUT)
        incidents = consume(
            kafka_bootstrap,
            o.incidents_topic,
            lambda ms: latest_by_key(ms).get(storm_id, {}).get("reports") == 4,
            TIMEOUT,
        )
    assert running.error is None
    assert len(restarted.grouper.groups) == 2
    assert [json.loads(m.value())["incident_id"] for m in grouped if json.loads(m.value())["id"] == "s3"] == [
        storm_id
    ]
    assert len(grouped) == 5, "nothing was grouped twice: offsets moved with the incident records"
    assert latest_by_key(incidents)[storm_id]["outlets"] == ["AP", "BBC", "CNN", "Reuters"]


def test_a_second_instance_fences_the_first_so_one_writer_holds_the_incidents(
    kafka_bootstrap: str, stage_factory: Callable[[], tuple[IncidentStage, IncidentOptions]]
) -> None:
    first, o = stage_factory()
    second, _ = stage_factory()
    with Running(first) as old:
        produce(
            kafka_bootstrap,
            o.alerts_topic,
            [(b"a", make_alert("a", "Hostages taken at Kabul embassy", "AP"), None)],
        )
        consume(kafka_bootstrap, o.incident_alerts_topic, lambda ms: len(ms) >= 1, TIMEOUT)
        second.claim()  # init_transactions with the same transactional id: the first is fenced
        try:
            produce(
                kafka_bootstrap,
                o.alerts_topic,
                [
                    (key, make_alert(key.decode(), "Hostages taken at Kabul embassy", "BBC"), None)
                    for key in (b"b", b"c", b"d")
                ],
            )
            old.thread.join(timeout=TIMEOUT)
            assert not old.thread.is_alive(), "the fenced instance went on"
            assert isinstance(old.error, SystemicError)
        finally:
            second.close()
    # The one expected, then 3 s more: a read for a fixed time could end before the group join.
    grouped = consume(kafka_bootstrap, o.incident_alerts_topic, lambda ms: len(ms) >= 1, TIMEOUT, settle=3)
    assert [json.loads(m.value())["id"] for m in grouped] == ["a"], (
        "the fenced instance committed nothing more"
    )


def test_a_standby_takes_over_when_the_lease_holder_is_killed_and_groups_on_from_its_state(
    kafka_bootstrap: str,
    stage_factory: Callable[[], tuple[IncidentStage, IncidentOptions]],
    tiny_embedder: Path,
    tmp_path: Path,
) -> None:
    standby, o = stage_factory()
    log = tmp_path / "holder.log"
    args = [
        sys.executable, "-m", "wirewatch", "incidents",
        "--bootstrap-servers", o.bootstrap_servers,
        "--embedder", str(tiny_embedder),
        "--alerts-topic", o.alerts_topic,
        "--incidents-topic", o.incidents_topic,
        "--incident-alerts-topic", o.incident_alerts_topic,
        "--dlq-topic", o.dlq_topic,
        "--group-id", o.group_id,
        "--threshold", str(o.threshold),
        "--log-format", "json",
        *(a for k, v in o.kafka.items() for a in ("--kafka", f"{k}={v}")),
    ]  # fmt: skip

    def alerts(*ids: str) -> list[tuple[bytes, bytes, None]]:
        return [(i.encode(), make_alert(i, "Hostages taken at Kabul embassy", f"P{i}"), None) for i in ids]

    with log.open("wb") as handle:
        holder = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        produce(kafka_bootstrap, o.alerts_topic, alerts("a"))
        consume(kafka_bootstrap, o.incident_alerts_topic, lambda ms: len(ms) >= 1, TIMEOUT)
        with Running(standby) as running:
            assert until(lambda: standby.standing_by, 60, every=0.2), (
                "the second instance joined as a standby"
            )
            produce(kafka_bootstrap, o.alerts_topic, alerts("b"))
            consume(kafka_bootstrap, o.incident_alerts_topic, lambda ms: len(ms) >= 2, TIMEOUT)
            assert not standby.grouping, f"the holder kept the lease when a standby joined: {log.read_text()}"

            holder.kill()  # no goodbye: the lease moves when its session times out
            holder.wait(timeout=30)
            produce(kafka_bootstrap, o.alerts_topic, alerts("c", "d"))
            grouped = consume(
                kafka_bootstrap, o.incident_alerts_topic, lambda ms: len(ms) >= 4, TIMEOUT, settle=3
            )
            assert standby.grouping, "the standby took over"
            assert running.error is None
    finally:
        if holder.poll() is None:
            holder.kill()
    assert sorted(ids_of(grouped)) == ["a", "b", "c", "d"], (
        "each alert grouped once, none lost in the handover"
    )
    incident_ids = {json.loads(m.value())["incident_id"] for m in grouped}
    assert len(incident_ids) == 1, "the standby rebuilt the incident and the later reports joined it"
    incidents = consume(
        kafka_bootstrap,
        o.incidents_topic,
        lambda ms: latest_by_key(ms).get(next(iter(incident_ids)), {}).get("reports") == 4,
        TIMEOUT,
    )
    assert latest_by_key(incidents)[next(iter(incident_ids))]["outlets"] == ["Pa", "Pb", "Pc", "Pd"]
