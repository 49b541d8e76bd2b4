"""Grouping alerts into incidents, the quality measure, drift and the page's highlighting: pure units."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from stream.schemas import Alert, Contribution, ModelRef, SourceRef
from stream.scoring.drift import MIN_SCORES, PSI_THRESHOLD, DriftWindow, psi, reference_from_scores
from stream.subscribers.incidents import DEFAULT_EMBEDDING_WEIGHT, Group, Grouper, event_time, incident_id
from stream.subscribers.lexical import combine
from stream.subscribers.web import highlight, input_lag
from training.bench.incident_quality import candidate_pairs, pairwise

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def alert(
    id: str, *, at: datetime = T0, score: float = 0.9, publisher: str | None = "AP", title: str | None = None
) -> Alert:
    return Alert(
        id=id,
        score=score,
        is_alert=True,
        threshold=0.5,
        model=ModelRef(name="m", version="1"),
        scored_at=at,
        source=SourceRef(topic="articles", partition=0, offset=1),
        title=title or f"title {id}",
        snippet="a bomb exploded in the market",
        publisher=publisher,
        url=None,
        published_at=None,
        explanation=[Contribution(sentence=f"sentence of {id}", contribution=0.5, alone=0.8)],
    )


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_similar_alerts_join_one_incident_and_dissimilar_ones_open_another() -> None:
    grouper = Grouper(threshold=0.8)
    first = grouper.assign(alert("a", publisher="AP"), unit(1, 0, 0))
    second = grouper.assign(alert("b", publisher="Reuters", score=0.95), unit(0.95, 0.1, 0))
    third = grouper.assign(alert("c"), unit(0, 1, 0))
    assert first.opened
    assert not second.opened
    assert third.opened
    assert first.alert.incident_id == second.alert.incident_id == incident_id("a")
    assert third.alert.incident_id != first.alert.incident_id
    assert first.alert.similarity is None
    assert second.alert.similarity is not None
    assert second.alert.similarity >= 0.8
    record = grouper.groups[incident_id("a")].record
    assert record.reports == 2
    assert record.outlets == ["AP", "Reuters"]
    assert record.best.alert_id == "b"  # the highest score brings its explanation
    assert record.best.explanation is not None
    assert record.best.explanation[0].sentence == "sentence of b"
    assert record.alert_ids == ["a", "b"]


def test_alerts_without_names_are_not_grouped_by_their_embedding_at_the_names_threshold() -> None:
    # Reports in lower case have no names: their vectors are the embedding's share alone.
    def lower_case(*embeddings: np.ndarray) -> np.ndarray:
        no_names = np.zeros((len(embeddings), 3), dtype=np.float32)
        return combine(np.stack(embeddings), no_names, DEFAULT_EMBEDDING_WEIGHT)

    grouper = Grouper()
    kabul, other, kabul_again = lower_case(unit(1, 0, 0), unit(0.45, 0.893, 0), unit(0.95, 0.312, 0))
    a = grouper.assign(alert("a"), kabul)
    # Two attacks that read alike (cosine 0.45, far above the threshold 0.225) stay apart...
    b = grouper.assign(alert("b", at=T0 + timedelta(minutes=5)), other)
    assert b.opened, f"joined at similarity {b.alert.similarity}"
    # ...and a near-duplicate report (cosine 0.95) still joins.
    c = grouper.assign(alert("c", at=T0 + timedelta(minutes=6)), kabul_again)
    assert c.group is a.group


def test_the_window_is_event_time_and_closes_incidents() -> None:
    grouper = Grouper(threshold=0.5, window=timedelta(hours=2))
    grouper.assign(alert("a", at=T0), unit(1, 0))
    late = grouper.assign(alert("b", at=T0 + timedelta(hours=3)), unit(1, 0))
    assert late.opened, "same vector, but three hours after the last report of a two-hour window"
    assert grouper.expire() == [], "open for a second window, for reports that arrive late"
    early = grouper.assign(alert("c", at=T0 + timedelta(hours=1)), unit(1, 0))
    assert early.group.record.id == incident_id("a"), "read after b, but within a's window"
    grouper.assign(alert("d", at=T0 + timedelta(hours=5, minutes=1)), unit(0, 1))
    closed = grouper.expire()
    assert [g.record.id for g in closed] == [incident_id("a")]
    assert closed[0].record.status == "closed"
    assert set(grouper.groups) == {incident_id("b"), incident_id("d")}


def test_a_partition_read_ahead_does_not_close_incidents_a_slower_partitions_alerts_join() -> None:
    # A backlog: partition 1 is read a day ahead of partition 0, which is still being read.
    grouper = Grouper(threshold=0.5, window=timedelta(hours=2))
    first = grouper.assign(alert("a", at=T0), unit(1, 0), partition=0)
    grouper.assign(alert("z", at=T0 + timedelta(days=1)), unit(0, 1), partition=1)
    assert grouper.expire(reading={0, 1}) == [], "partition 0 has not got past the first report's window"
    assert grouper.expire(reading={0, 1, 2}) == [], "partition 2 has given nothing yet: its time is unknown"
    follow_up = grouper.assign(alert("b", at=T0 + timedelta(hours=1)), unit(1, 0), partition=0)
    assert follow_up.group is first.group
    # Partition 0 caught up (no longer read): the newest alert is the clock again.
    assert [g.record.id for g in grouper.expire(reading={1})] == [incident_id("a")]


def test_representative_title_is_the_report_closest_to_the_centroid() -> None:
    grouper = Grouper(threshold=0.0)
    grouper.assign(alert("edge", title="edge"), unit(1, 0.6))
    grouper.assign(alert("other-edge", title="other edge"), unit(1, -0.6))
    grouper.assign(alert("middle", title="middle"), unit(1, 0))  # closer to the centroid than the first
    (group,) = grouper.groups.values()
    assert group.record.title == "middle"


def test_state_survives_a_round_trip_through_the_record_and_its_header() -> None:
    grouper = Grouper(threshold=0.8)
    grouper.assign(alert("a"), unit(1, 0, 0))
    grouper.assign(alert("b"), unit(0.9, 0.2, 0))
    (group,) = grouper.groups.values()
    value, header = group.record.model_dump_json().encode(), group.state_header()

    restored = Grouper(threshold=0.8)
    restored.restore(Group.from_record(value, header))
    again = restored.assign(alert("c", publisher="BBC"), unit(1, 0.05, 0))
    assert not again.opened
    assert again.alert.incident_id == incident_id("a")
    assert restored.groups[incident_id("a")].record.reports == 3
    np.testing.assert_allclose(
        restored.groups[incident_id("a")].total, group.total + unit(1, 0.05, 0), rtol=1e-6
    )


def test_closed_incidents_are_not_restored() -> None:
    grouper = Grouper(threshold=0.8, window=timedelta(hours=1))
    grouper.assign(alert("a", at=T0), unit(1, 0))
    grouper.assign(alert("b", at=T0 + timedelta(hours=5)), unit(0, 1))
    (closed,) = grouper.expire()
    restored = Grouper()
    restored.restore(Group.from_record(closed.record.model_dump_json().encode(), closed.state_header()))
    assert restored.groups == {}


def test_event_time_prefers_published_at_unless_it_is_in_the_future() -> None:
    a = alert("a").model_copy(update={"published_at": "2026-11-30T10:00:00Z"})
    assert event_time(a) == datetime(2026, 11, 30, 10, tzinfo=UTC)
    future = alert("b").model_copy(update={"published_at": "2027-01-01T00:00:00+00:00"})
    assert event_time(future) == T0
    naive = alert("c").model_copy(update={"published_at": "2026-11-30T11:00:00"})
    assert event_time(naive) == datetime(2026, 11, 30, 11, tzinfo=UTC)


def test_pairwise_precision_and_recall_count_pairs_within_the_truth_window() -> None:
    days = np.asarray([0, 0, 1, 5, 5], dtype=np.int64)
    pairs = candidate_pairs(days)
    assert sorted(zip(*(p.tolist() for p in pairs), strict=True)) == [(0, 1), (0, 2), (1, 2), (3, 4)]
    truth = ["x", "x", "y", None, None]  # no header: an incident of its own
    predicted = ["1", "1", "1", "2", "2"]
    scored = pairwise(predicted, truth, pairs)
    assert scored.predicted_pairs == 4
    assert scored.true_pairs == 1
    assert scored.precision == 0.25
    assert scored.recall == 1.0


def test_psi_is_near_zero_for_the_reference_itself_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = reference_from_scores(rng.beta(1, 12, 5000).tolist(), "test")
    assert len(reference.proportions) == len(reference.edges) + 1
    assert sum(reference.proportions) == pytest.approx(1.0)
    same = np.bincount(
        np.searchsorted(reference.edges, rng.beta(1, 12, 2000), side="right"),
        minlength=len(reference.proportions),
    )
    shifted = np.bincount(
        np.searchsorted(reference.edges, rng.beta(3, 8, 2000), side="right"),
        minlength=len(reference.proportions),
    )
    assert psi(reference.proportions, same) < 0.05
    assert psi(reference.proportions, shifted) > PSI_THRESHOLD


def test_a_feed_above_a_reference_of_identical_scores_is_drift() -> None:
    reference = reference_from_scores([0.031] * 400, "every normal article scores alike")
    assert sum(reference.proportions) == pytest.approx(1.0)
    window = DriftWindow(reference, clock=lambda: 1_000_000.0)
    for _ in range(MIN_SCORES):
        window.observe(0.031, False)
    assert not window.snapshot().drifted, "the reference itself is no drift"
    shifted = DriftWindow(reference, clock=lambda: 1_000_000.0)
    for _ in range(MIN_SCORES):
        shifted.observe(0.5, True)
    assert shifted.snapshot().drifted


def test_drift_window_keeps_one_hour_and_needs_enough_scores() -> None:
    now = [1_000_000.0]
    rng = np.random.default_rng(1)
    reference = reference_from_scores(rng.beta(1, 12, 5000).tolist(), "test")
    window = DriftWindow(reference, clock=lambda: now[0])
    for value in rng.beta(4, 4, MIN_SCORES - 1):
        window.observe(float(value), value > 0.5)
    few = window.snapshot()
    assert few.psi is not None
    assert few.psi > PSI_THRESHOLD
    assert not few.drifted, "below the minimum number of scores nothing is flagged"
    window.observe(0.6, True)
    assert window.snapshot().drifted
    assert window.snapshot().alerts == few.alerts + 1
    now[0] += 3601 + 60
    later = window.snapshot()
    assert later.scores == 0
    assert later.psi is None
    assert not later.drifted


def test_highlight_marks_sentences_whatever_the_whitespace() -> None:
    text = "Title\n\nA bomb  exploded\nin the market. Police said nothing. Two died."
    segments = highlight(text, ["A bomb exploded in the market.", "Two died.", "Not there."])
    marked = [s for s in segments if s["mark"]]
    assert [s["text"] for s in marked] == ["A bomb  exploded\nin the market.", "Two died."]
    assert [s["rank"] for s in marked] == [0, 1]
    assert "".join(str(s["text"]) for s in segments) == text


def test_names_tell_apart_two_reports_of_the_same_kind_of_event() -> None:
    from stream.subscribers.lexical import combine, name_vectors, names

    assert names("A car bomb in Kabul killed 12, the Taliban said.") == ["kabul", "12", "taliban"]
    kabul, kabul_again, baghdad = name_vectors(
        [
            "A car bomb in Kabul killed 12.",
            "Twelve dead as car bomb hits Kabul.",
            "A car bomb in Baghdad killed 20.",
        ]
    )
    assert float(kabul @ kabul_again) > 0.5
    assert float(kabul @ baghdad) == pytest.approx(0.0, abs=1e-6)
    embeddings = np.stack([unit(1, 0), unit(0.8, 0.6)])
    lexical = np.stack([unit(1, 0, 0), unit(0, 1, 0)])
    joined = combine(embeddings, lexical, 0.5)
    assert float(joined[0] @ joined[1]) == pytest.approx(0.5 * 0.8 + 0.5 * 0.0, abs=1e-6)
    assert float(np.linalg.norm(joined[0])) == pytest.approx(1.0, abs=1e-6)


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


def test_the_page_counts_throughput_from_live_scores_not_the_hour_read_back() -> None:
    import time

    from stream.subscribers.web import Hub

    hub = Hub(None)
    now = time.time()
    for k in range(120):
        hub.score(alert(f"old{k}"), now - 1800 + k)  # read back from the last hour at startup
    hub.refresh(lag=0)
    assert hub.stats["throughput_per_s"] == 0
    assert hub.stats["scores"] == 120  # they still count for the hour's distribution
    for k in range(30):
        hub.score(alert(f"new{k}"), now)
    hub.refresh(lag=0)
    assert hub.stats["throughput_per_s"] == 0.5


def test_lag_is_unknown_rather_than_negative_when_the_broker_reports_an_end_before_the_commit() -> None:
    assert input_lag([(10, 0, 25), (-1001, 5, 9)]) == 15 + 4  # no commit yet: from the start
    assert input_lag([(10, 0, 25), (40, 0, 1)]) is None  # the embedded broker's ListOffsets
    assert input_lag([]) == 0


def test_tail_shows_the_incident_an_alert_joined_or_opened() -> None:
    from stream.devtools.tail import format_alert

    joined = {"id": "rt-1", "score": 0.95, "title": "Kabul blast", "publisher": "RT"}
    joined |= {"incident_id": "inc-1", "similarity": 0.83}
    assert "incident inc-1 (joined at 0.83) | RT" in format_alert(joined)
    assert "incident inc-2 (new)" in format_alert({**joined, "incident_id": "inc-2", "similarity": None})
    assert "incident" not in format_alert({"id": "ap-1", "score": 0.9, "title": "Kabul blast"})
