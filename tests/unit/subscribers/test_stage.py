"""The incidents stage's transaction: what one batch publishes, and a failed commit."""

import json
from datetime import timedelta

import numpy as np
import pytest

from tests.unit.subscribers.alerts import T0, alert, unit


class _Embedder:
    """One direction for the texts about Kabul, another for the rest."""

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([unit(1, 0, 0) if "Kabul" in t else unit(0, 1, 0) for t in texts]).astype(np.float32)


class _Producer:
    """Records what one transaction produced; every call succeeds."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []
        self.committed = False

    def begin_transaction(self) -> None:
        self.committed = False

    def produce(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        on_delivery: object,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.produced.append((topic, key, value, headers or []))

    def send_offsets_to_transaction(self, offsets: object, metadata: object, timeout: float) -> None:
        return None

    def commit_transaction(self, timeout: float) -> None:
        self.committed = True


class _Consumer:
    def consumer_group_metadata(self) -> object:
        return object()


def test_a_storm_in_one_batch_still_publishes_its_incident_as_it_opened() -> None:
    """Notify posts an incident when it sees its one-report record, so that record must exist."""
    from stream.subscribers.incidents import STATE_HEADER
    from stream.subscribers.notify import NotifyOptions, notice_for
    from stream.subscribers.stage import IncidentOptions, IncidentStage
    from tests.unit.fakes import FakeMessage, Record

    options = IncidentOptions(bootstrap_servers="unused", threshold=0.5)
    stage = IncidentStage(options, _Embedder())
    producer = _Producer()
    stage._producer, stage._consumer = producer, _Consumer()  # type: ignore[assignment]
    messages = [
        FakeMessage(
            Record(
                options.alerts_topic,
                0,
                n,
                publisher.encode(),
                alert(f"s{n}", publisher=publisher, title="Car bomb kills twelve in Kabul")
                .model_dump_json()
                .encode(),
                [],
            )
        )
        for n, publisher in enumerate(["AP", "Reuters", "BBC"])
    ]
    outcome = stage.process(messages)  # type: ignore[arg-type]
    assert (outcome.opened, outcome.joined) == (1, 2)
    assert producer.committed
    records = [
        (key, value, headers)
        for topic, key, value, headers in producer.produced
        if topic == options.incidents_topic
    ]
    assert [json.loads(value)["reports"] for _, value, _ in records] == [1, 3]
    assert len({key for key, _, _ in records}) == 1
    assert all(STATE_HEADER in dict(headers) for _, _, headers in records)
    notify = NotifyOptions(bootstrap_servers="unused", webhook="http://unused")
    notices = [notice_for(options.incidents_topic, value, notify) for _, value, _ in records]
    assert [n is not None for n in notices] == [True, False], "announced once, as new"
    # A lone new incident is published once, not twice.
    producer.produced.clear()
    lone = alert("x", publisher="AFP", title="Floods close schools", at=T0 + timedelta(minutes=1))
    stage.process(
        [FakeMessage(Record(options.alerts_topic, 0, 3, b"x", lone.model_dump_json().encode(), []))]
    )  # type: ignore[list-item]
    assert [t for t, *_ in producer.produced].count(options.incidents_topic) == 1


class _FailingProducer(_Producer):
    """Its commit fails with the error given; records whether the transaction was aborted."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.aborted = False

    def commit_transaction(self, timeout: float) -> None:
        raise self.error

    def abort_transaction(self, timeout: float) -> None:
        self.aborted = True


@pytest.mark.parametrize(("fatal", "aborted"), [(False, True), (True, False)])
def test_a_failed_incidents_transaction_stops_the_stage_aborting_it_unless_fenced(
    fatal: bool, aborted: bool
) -> None:
    """The grouper already holds the batch: the stage stops without committing, and a restart rebuilds."""
    from confluent_kafka import KafkaError

    from stream.errors import SystemicError
    from stream.subscribers.stage import IncidentOptions, IncidentStage
    from tests.unit.fakes import FakeMessage, Record, error

    options = IncidentOptions(bootstrap_servers="unused", threshold=0.5)
    stage = IncidentStage(options, _Embedder())
    code = KafkaError.PRODUCER_FENCED if fatal else KafkaError._STATE
    producer = _FailingProducer(error(code, fatal=fatal, abort=not fatal))
    stage._producer, stage._consumer = producer, _Consumer()  # type: ignore[assignment]
    value = alert("a", publisher="AP", title="Car bomb kills twelve in Kabul").model_dump_json().encode()
    with pytest.raises(SystemicError, match="the incidents transaction failed: scripted"):
        stage.process([FakeMessage(Record(options.alerts_topic, 0, 0, b"a", value, []))])  # type: ignore[list-item]
    assert producer.aborted is aborted
    assert not producer.committed
