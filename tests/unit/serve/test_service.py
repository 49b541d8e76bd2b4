"""The service loop with fake Kafka clients and a fake scorer: every failure branch of issue 8.

Each test drives Service.step() (or run()) a bounded number of times; the fakes behave as
librdkafka does where it matters (see fakes.py). Nothing here needs a broker or a model.
"""

import json
import math

import pytest
import structlog
from confluent_kafka import KafkaError

from stream.errors import SystemicError
from stream.schemas import ERROR_HEADER, ORIGINAL_SIZE_HEADER
from stream.serve.process import BatchProcessor
from stream.serve.service import Scoring
from tests.unit.fakes import (
    INPUT,
    FakeCluster,
    FakeScorer,
    LazyExecutor,
    StuckExecutor,
    article,
    error,
    harness,
    processor,
    settings,
)

SCORES, ALERTS, DLQ = "article-scores", "article-alerts", "articles-dlq"


def _committed(cluster: FakeCluster, partition: int = 0) -> int:
    return cluster.committed.get((INPUT, partition), 0)


def _reasons(h) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {r.key.decode(): r.header(ERROR_HEADER).decode() for r in h.outputs(DLQ)}


def test_every_article_scored_alerts_match_and_offsets_committed() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i, "bomb attack downtown" if i % 3 == 0 else "budget talks") for i in range(10)])
    h = harness(cluster).start()
    h.steps(lambda: _committed(cluster) == 10)
    assert sorted(h.ids(SCORES)) == sorted(f"a{i}" for i in range(10))
    assert sorted(h.ids(ALERTS)) == [f"a{i}" for i in (0, 3, 6, 9)]
    assert all(
        r.json()["model"] == {"name": "fake", "version": "1.0.0", "digest": "d1.0.0"}
        for r in h.outputs(SCORES)
    )


def test_an_alerts_snippet_keeps_the_articles_case_so_incidents_can_tell_names_apart() -> None:
    # The model reads lower-cased text; grouping alerts into incidents needs the names.
    cluster = FakeCluster()
    text = "A  bomb attack in Kabul killed twelve, AFP reported. &amp; More followed."
    cluster.feed([json.dumps({"id": "a0", "text": text}).encode()])
    h = harness(cluster).start()
    h.steps(lambda: _committed(cluster) == 1)
    (alert,) = h.outputs(ALERTS)
    assert alert.json()["snippet"] == "A bomb attack in Kabul killed twelve, AFP reported. & More followed."


def test_one_article_failing_to_score_is_dead_lettered_and_the_stream_goes_on() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i, "poison text" if i == 2 else "budget talks") for i in range(8)])
    s = settings()
    h = harness(cluster, s, Scoring(processor(s, FakeScorer(fail_on=["poison"])))).start()
    h.steps(lambda: _committed(cluster) == 8)
    assert _reasons(h) == {"k2": "scoring_failed"}
    assert sorted(h.ids(SCORES)) == sorted(f"a{i}" for i in range(8) if i != 2)


@pytest.mark.parametrize("value", [math.nan, math.inf, -0.5, 1.5])
def test_a_score_that_is_not_a_probability_is_dead_lettered(value: float) -> None:
    cluster = FakeCluster()
    cluster.feed([article(i, "weird text" if i == 1 else "budget talks") for i in range(4)])
    s = settings()
    h = harness(cluster, s, Scoring(processor(s, FakeScorer(values={"weird": value})))).start()
    h.steps(lambda: _committed(cluster) == 4)
    assert _reasons(h) == {"k1": "scoring_failed"}
    assert len(h.outputs(SCORES)) == 3


def test_an_explainer_exception_sends_the_alert_unexplained_and_a_dead_letter() -> None:
    def explode(title: str | None, text: str, cleaned: str) -> list:  # type: ignore[type-arg]
        raise RuntimeError("explainer bug")

    cluster = FakeCluster()
    cluster.feed([article(0, "bomb attack downtown"), article(1, "budget talks")])
    s = settings()
    h = harness(cluster, s, Scoring(processor(s, explainer=explode))).start()
    h.steps(lambda: _committed(cluster) == 2)
    (alert,) = h.outputs(ALERTS)
    assert alert.json()["explanation"] is None
    assert _reasons(h) == {"k0": "explain_failed"}
    assert "explainer bug" in h.outputs(DLQ)[0].header("wirewatch-error-detail").decode()
    assert sorted(h.ids(SCORES)) == ["a0", "a1"]


def test_a_broken_session_stops_the_service_without_committing_with_one_log_line() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(6)])
    s = settings()
    h = harness(cluster, s, Scoring(processor(s, FakeScorer(broken=True))))
    with structlog.testing.capture_logs() as logs, pytest.raises(SystemicError, match="known to score"):
        h.service.run()
    assert cluster.committed == {}
    assert h.producer.delivered == []  # nothing dead-lettered: the stream is not poison
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["event"] == "stopped without committing"
    assert "known to score" in errors[0]["reason"]
    assert h.consumer.closed


def test_many_articles_failing_in_a_row_stop_the_service_before_their_offsets_are_committed() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i, f"odd text {i}") for i in range(4)])
    s = settings(max_consecutive_failures=6)
    h = harness(cluster, s, Scoring(processor(s, FakeScorer(fail_on=["odd"])))).start()
    h.steps(lambda: _committed(cluster) == 4)  # 4 in a row: still per-message, dead-lettered
    cluster.feed([article(i, f"odd text {i}") for i in range(4, 12)])
    with pytest.raises(SystemicError, match="6 articles in a row"):
        h.steps(lambda: False, limit=20)
    assert len(h.outputs(DLQ)) == 4  # the batch that reached 6 was neither published nor committed
    assert _committed(cluster) == 4


def test_a_delivery_that_fails_for_good_stops_without_committing_past_it() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(8)])
    h = harness(cluster)
    h.producer.refuse = lambda r: KafkaError(KafkaError._MSG_TIMED_OUT) if b'"a5"' in r.value else None
    with pytest.raises(SystemicError, match="delivery to article-scores failed"):
        h.service.run()
    assert _committed(cluster) <= 5


@pytest.mark.parametrize("size", [1_020_000, 5_000_000])
def test_an_oversized_input_is_dead_lettered_capped_with_its_size_and_the_stream_goes_on(size: int) -> None:
    huge = json.dumps({"id": "huge", "text": "word " * (size // 5)}).encode()
    cluster = FakeCluster()
    cluster.feed([article(0), huge, article(2)])
    h = harness(cluster).start()
    h.steps(lambda: _committed(cluster) == 3)
    (letter,) = h.outputs(DLQ)
    assert letter.header(ERROR_HEADER) == b"too_large"
    assert int(letter.header(ORIGINAL_SIZE_HEADER)) == len(huge)
    assert huge.startswith(letter.value)
    assert len(letter.value) < 1_000_000
    assert sorted(h.ids(SCORES)) == ["a0", "a2"]


def test_an_output_the_broker_refuses_becomes_a_small_dead_letter() -> None:
    big = b"{not json " + b"x" * 60_000
    cluster = FakeCluster()
    cluster.feed([big, article(1)])
    h = harness(cluster).start()
    h.producer.refuse = lambda r: KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if len(r.value) > 50_000 else None
    h.steps(lambda: _committed(cluster) == 2)
    (letter,) = h.outputs(DLQ)
    assert letter.header(ERROR_HEADER) == b"invalid_json"
    assert int(letter.header(ORIGINAL_SIZE_HEADER)) == len(big)
    assert len(letter.value) < 16 * 1024


def test_revoke_finishes_publishes_and_commits_the_batch_in_flight_and_leaves_the_rest() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(6)])
    executor = LazyExecutor()
    s = settings(batch_size=4, max_wait_ms=60_000)
    h = harness(cluster, s, executor=executor).start()
    h.steps(lambda: len(executor.futures) == 1)  # batch of 4 dispatched, 2 waiting in the batcher
    h.run(2)
    assert h.outputs(SCORES) == []
    assert _committed(cluster) == 0
    h.consumer.revoke_all()
    h.run(1)
    assert sorted(h.ids(SCORES)) == ["a0", "a1", "a2", "a3"]
    assert _committed(cluster) == 4  # the waiting two go to the next owner, uncommitted
    assert len(h.service.batcher) == 0


@pytest.mark.parametrize("exactly_once", [False, True])
def test_lost_partitions_get_no_output_and_no_commit_and_the_service_goes_on(exactly_once: bool) -> None:
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(4)])
    executor = LazyExecutor()
    h = harness(cluster, settings(exactly_once=exactly_once), executor=executor).start()
    h.steps(lambda: len(executor.futures) == 1)
    h.consumer.lose_all()
    h.run(1)
    h.consumer.assign_partitions([(INPUT, 0)])  # the group gives it back before the old batch is done
    h.run(1)
    executor.futures[0].finish()
    h.run(1)
    assert h.outputs(SCORES) == []
    assert cluster.committed == {}
    assert "commit_transaction" not in h.producer.calls
    h.steps(lambda: executor.finish_all() or _committed(cluster) == 4)
    assert sorted(h.ids(SCORES)) == ["a0", "a1", "a2", "a3"]  # once: the old batch stayed void


def test_pause_state_is_reconciled_across_a_rebalance_so_no_partition_stays_paused() -> None:
    """The stall: paused, revoked, resumed while nothing is assigned, then given back still paused."""
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(40)], partitions=2)
    executor = LazyExecutor()
    s = settings(batch_size=4, max_in_flight=8)
    h = harness(cluster, s, partitions=2, executor=executor).start()
    h.steps(lambda: h.consumer.paused == {(INPUT, 0), (INPUT, 1)})
    h.consumer.revoke_all()
    h.run(3)  # in flight drops to nothing: the loop wants to resume, with nothing assigned
    h.consumer.assign_partitions([(INPUT, 0), (INPUT, 1)])  # librdkafka keeps them paused
    h.steps(lambda: executor.finish_all() or _committed(cluster, 0) + _committed(cluster, 1) == 40)
    assert len(set(h.ids(SCORES))) == 40


def test_partitions_assigned_while_over_the_limit_are_paused_too() -> None:
    """Cooperative rebalancing adds a partition while the others stay paused: it must not run free."""
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(40)], partitions=2)
    executor = LazyExecutor()
    h = harness(cluster, settings(batch_size=4, max_in_flight=8), executor=executor).start()
    h.steps(lambda: h.consumer.paused == {(INPUT, 0)})
    h.consumer.add_partitions([(INPUT, 1)])
    h.run(3)
    assert h.consumer.paused == {(INPUT, 0), (INPUT, 1)}
    assert h.consumer.offsets[(INPUT, 1)] == 0  # nothing read from it while over the limit
    h.steps(lambda: executor.finish_all() or _committed(cluster, 0) + _committed(cluster, 1) == 40)


def test_exactly_once_abortable_commit_failure_aborts_and_publishes_the_batch_again_once() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(8)])
    h = harness(cluster, settings(exactly_once=True)).start()
    h.producer.errors["commit_transaction"].append(error(KafkaError.CONCURRENT_TRANSACTIONS, abort=True))
    h.steps(lambda: _committed(cluster) == 8)
    assert "abort_transaction" in h.producer.calls
    assert sorted(h.ids(SCORES)) == sorted(f"a{i}" for i in range(8))  # once each


def test_exactly_once_retriable_commit_error_retries_the_commit() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(4)])
    h = harness(cluster, settings(exactly_once=True)).start()
    h.producer.errors["commit_transaction"].append(error(KafkaError._TIMED_OUT, retriable=True))
    h.steps(lambda: _committed(cluster) == 4)
    assert "abort_transaction" not in h.producer.calls
    assert h.producer.calls.count("commit_transaction") == 2
    assert sorted(h.ids(SCORES)) == ["a0", "a1", "a2", "a3"]


def test_exactly_once_fatal_error_stops_without_committing() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(4)])
    h = harness(cluster, settings(exactly_once=True))
    h.producer.errors["commit_transaction"].append(error(KafkaError.PRODUCER_FENCED, fatal=True))
    with pytest.raises(SystemicError, match="commit_transaction failed"):
        h.service.run()
    assert cluster.committed == {}
    assert h.producer.committed_records == []


def test_exactly_once_refused_record_aborts_then_goes_out_as_a_capped_dead_letter() -> None:
    cluster = FakeCluster()
    cluster.feed([b"{broken " + b"x" * 40_000, article(1)])
    h = harness(cluster, settings(exactly_once=True)).start()
    h.producer.refuse = lambda r: KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if len(r.value) > 30_000 else None
    h.steps(lambda: _committed(cluster) == 2)
    assert "abort_transaction" in h.producer.calls
    (letter,) = h.outputs(DLQ)
    assert letter.header(ERROR_HEADER) == b"invalid_json"
    assert len(letter.value) < 16 * 1024
    assert h.ids(SCORES) == ["a1"]


def test_exactly_once_publish_failing_on_every_attempt_stops() -> None:
    cluster = FakeCluster()
    cluster.feed([article(0)])
    h = harness(cluster, settings(exactly_once=True))
    h.producer.errors["commit_transaction"] += [error(KafkaError._STATE, abort=True) for _ in range(10)]
    with pytest.raises(SystemicError, match="could not be published"):
        h.service.run()
    assert cluster.committed == {}


def test_an_offset_commit_refused_mid_rebalance_is_retried_not_fatal() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(4)])
    h = harness(cluster).start()
    h.consumer.commit_errors.append(error(KafkaError.REBALANCE_IN_PROGRESS))
    h.steps(lambda: bool(h.outputs(SCORES)))
    h.clock[0] += 1.0
    h.steps(lambda: _committed(cluster) == 4)
    assert h.service.metrics.kafka_errors.labels("consumer", "REBALANCE_IN_PROGRESS")._value.get() == 1


def test_a_fatal_client_error_stops_the_service() -> None:
    cluster = FakeCluster()
    h = harness(cluster)
    h.service.events = [h.service.source._events]  # type: ignore[attr-defined]
    h.service.source._events.error(KafkaError(KafkaError._FENCED, "fenced", fatal=True))  # type: ignore[attr-defined]
    with pytest.raises(SystemicError, match="fenced"):
        h.service.run()


def test_liveness_follows_the_loop_the_worker_and_consumption() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(4)])
    s = settings(liveness_timeout_s=30)
    h = harness(cluster, s).start()
    h.run(3)
    assert h.service.live() == (True, "ok")
    h.clock[0] += 31  # the loop stopped beating
    ok, why = h.service.live()
    assert not ok
    assert "loop has not run" in why

    stuck = harness(FakeCluster(), s, executor=StuckExecutor()).start()
    stuck.cluster.feed([article(0)])
    stuck.run(3)
    stuck.clock[0] += 31
    stuck.service.step()
    ok, why = stuck.service.live()
    assert not ok
    assert "scoring for" in why

    stalled = harness(FakeCluster(), s).start()
    stalled.run(2)
    stalled.consumer.stuck.add((INPUT, 0))  # a fetcher that never returns, with messages waiting
    stalled.cluster.feed([article(i) for i in range(3)])
    stalled.run(20)
    assert stalled.service.live() == (True, "ok")
    stalled.clock[0] += 31
    stalled.service.step()
    ok, why = stalled.service.live()
    assert not ok
    assert "delivered nothing" in why
    stalled.consumer.stuck.clear()  # it recovers: alive again
    stalled.run(2)
    assert stalled.service.live() == (True, "ok")


def test_lag_gauges_follow_the_assignment_and_are_removed_on_revoke() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(6)], partitions=2)
    h = harness(cluster, partitions=2).start()
    h.run(1)
    h.consumer.stuck.add((INPUT, 1))
    h.steps(lambda: _committed(cluster, 0) == 3)
    h.run(12)
    text = _metrics(h)
    assert 'wirewatch_consumer_lag{partition="0",topic="articles"} 0.0' in text
    assert 'wirewatch_consumer_lag{partition="1",topic="articles"} 3.0' in text
    h.consumer.revoke_all()
    h.run(1)
    assert "wirewatch_consumer_lag{" not in _metrics(h)


def _metrics(h) -> str:  # type: ignore[no-untyped-def]
    from prometheus_client import generate_latest

    return generate_latest(h.service.metrics.registry).decode()


class _Reloader:
    def __init__(self, ready: tuple[BatchProcessor, object]) -> None:
        self.ready: tuple[BatchProcessor, object] | None = ready
        self.swap_after = 0

    def take(self):  # type: ignore[no-untyped-def]
        if self.swap_after > 0:
            self.swap_after -= 1
            return None
        ready, self.ready = self.ready, None
        return ready

    def start(self) -> None: ...
    def stop(self) -> None: ...


def test_a_reloaded_bundle_is_swapped_in_between_batches_and_names_itself_in_each_score() -> None:
    from stream.scoring.canary import GateResult

    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(16)])
    s = settings(batch_size=4)
    reloader = _Reloader((processor(s, version="2.0.0"), GateResult("canary", 3, 0.0, "x")))
    reloader.swap_after = 2
    h = harness(cluster, s, reloader=reloader).start()
    h.steps(lambda: _committed(cluster) == 16)
    versions = [r.json()["model"]["version"] for r in h.outputs(SCORES)]
    assert sorted(h.ids(SCORES)) == sorted(f"a{i}" for i in range(16))  # none lost, none twice
    assert versions == sorted(versions)
    assert set(versions) == {"1.0.0", "2.0.0"}
    assert 'wirewatch_bundle_reloads_total{result="swapped"} 1.0' in _metrics(h)
    assert 'wirewatch_model_info{digest="d2.0.0",name="fake",role="primary",version="2.0.0"} 1.0' in _metrics(
        h
    )


def test_shadow_bundle_scores_every_article_to_its_own_topic_and_counts_agreement() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i, "bomb attack" if i < 2 else "budget talks") for i in range(6)] + [b"not json"])
    s = settings(shadow_bundle="shadow")
    shadow = processor(s, FakeScorer(values={"bomb": 0.2}), version="2.0.0")  # disagrees on the attacks
    h = harness(cluster, s, Scoring(processor(s), shadow)).start()
    h.steps(lambda: _committed(cluster) == 7)
    shadows = h.outputs("article-scores-shadow")
    assert sorted(r.json()["id"] for r in shadows) == sorted(h.ids(SCORES))
    assert {r.json()["model"]["version"] for r in shadows} == {"2.0.0"}
    assert len(h.outputs(ALERTS)) == 2  # the shadow never alerts
    text = _metrics(h)
    assert 'wirewatch_shadow_agreement_total{agree="true"} 4.0' in text
    assert 'wirewatch_shadow_agreement_total{agree="false"} 2.0' in text


def test_a_failing_shadow_never_hurts_the_primary() -> None:
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(4)])
    s = settings(shadow_bundle="shadow")
    h = harness(cluster, s, Scoring(processor(s), processor(s, FakeScorer(broken=True), version="2"))).start()
    h.steps(lambda: _committed(cluster) == 4)
    assert len(h.outputs(SCORES)) == 4
    assert h.outputs("article-scores-shadow") == []
    assert "wirewatch_shadow_failures_total 4.0" in _metrics(h)


def test_after_a_failure_closing_the_consumer_publishes_and_commits_nothing() -> None:
    """librdkafka revokes on close(); after a systemic failure that revoke must not finish batches."""
    cluster = FakeCluster()
    cluster.feed([article(i) for i in range(4)])
    executor = LazyExecutor()
    h = harness(cluster, executor=executor).start()
    h.steps(lambda: len(executor.futures) == 1)
    events = h.service.source._events  # type: ignore[attr-defined]
    h.service.events = [events]
    events.error(KafkaError(KafkaError._FATAL, "consumer fenced", fatal=True))
    with pytest.raises(SystemicError, match="consumer fenced"):
        h.service.run()
    assert h.consumer.closed
    assert h.producer.delivered == []
    assert cluster.committed == {}
