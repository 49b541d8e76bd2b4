"""Grouping alerts into incidents: similarity, the event-time window, the state record."""

from datetime import UTC, datetime, timedelta

import numpy as np

from stream.subscribers.incidents import DEFAULT_EMBEDDING_WEIGHT, Group, Grouper, event_time, incident_id
from stream.subscribers.lexical import combine
from tests.unit.subscribers.alerts import T0, alert, unit


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
