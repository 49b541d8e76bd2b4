"""Webhook notices: retries with backoff, what is retried, what is posted and its Slack text."""

import json
from datetime import UTC, datetime

import pytest

from stream.errors import ConfigError
from stream.notify import Notice, Notifier, NotifyOptions, Response, notice_for
from stream.schemas import Incident, IncidentBest

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def incident(reports: int = 1, status: str = "open") -> Incident:
    return Incident(
        id="inc-1",
        status=status,  # type: ignore[arg-type]
        first_seen=T0,
        last_seen=T0,
        reports=reports,
        outlets=["AP", "Reuters"],
        title="Car bomb in the capital",
        best=IncidentBest(
            alert_id="a", score=0.97, title="Car bomb", publisher="AP", url="https://x/a", explanation=None
        ),
        alert_ids=["a"],
        updated_at=T0,
    )


class Answers:
    def __init__(self, *statuses: int | None) -> None:
        self.statuses = list(statuses)
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        self.calls.append((url, body, headers))
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(status, "" if status else "connection refused")


def notifier(post: Answers, sleeps: list[float], retries: int = 4) -> Notifier:
    options = NotifyOptions(bootstrap_servers="unused:9092", webhook="http://hook", retries=retries)
    return Notifier(options, post=post, sleep=sleeps.append)


def test_retries_server_errors_and_no_answer_with_exponential_backoff() -> None:
    post, sleeps = Answers(500, None, 503, 200), []
    response = notifier(post, sleeps).deliver(Notice(b"{}", "k"))
    assert response.ok
    assert len(post.calls) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert post.calls[0][2]["Idempotency-Key"] == "k"


def test_gives_up_after_the_retries_and_does_not_retry_a_refusal() -> None:
    post, sleeps = Answers(500, 500, 500), []
    assert not notifier(post, sleeps, retries=2).deliver(Notice(b"{}", "k")).ok
    assert len(post.calls) == 3
    post, sleeps = Answers(400), []
    response = notifier(post, sleeps).deliver(Notice(b"{}", "k"))
    assert response.status == 400
    assert len(post.calls) == 1
    assert sleeps == []
    post, sleeps = Answers(429, 200), []
    assert notifier(post, sleeps).deliver(Notice(b"{}", "k")).ok


def test_new_incidents_are_posted_updates_only_when_asked() -> None:
    options = NotifyOptions(bootstrap_servers="x", webhook="http://hook")
    new = notice_for(options.incidents_topic, incident().model_dump_json().encode(), options)
    assert new is not None
    body = json.loads(new.body)
    assert body["text"].startswith("*New incident* (1 report from AP, Reuters): Car bomb in the capital")
    assert body["incident"]["id"] == "inc-1"
    assert new.key == "inc-1:1:open"
    assert (
        notice_for(options.incidents_topic, incident(reports=2).model_dump_json().encode(), options) is None
    )
    with_updates = NotifyOptions(bootstrap_servers="x", webhook="http://hook", updates=True)
    update = notice_for(options.incidents_topic, incident(reports=2).model_dump_json().encode(), with_updates)
    assert update is not None
    assert json.loads(update.body)["text"].startswith("*Incident update* (2 reports")


def test_a_webhook_that_is_not_an_http_url_fails_at_startup_saying_what_to_pass() -> None:
    for bad in ("", "hooks.slack.com/services/T000", "ftp://example.com/hook", "http://"):
        with pytest.raises(ConfigError, match="not an http\\(s\\) URL with a host"):
            NotifyOptions(bootstrap_servers="127.0.0.1:9092", webhook=bad)
    with pytest.raises(ConfigError, match="--retries -1"):
        NotifyOptions(bootstrap_servers="127.0.0.1:9092", webhook="http://127.0.0.1:9/x", retries=-1)
    assert (
        NotifyOptions(bootstrap_servers="b:9092", webhook="https://hooks.slack.com/services/T/B/X").retries
        == 5
    )
