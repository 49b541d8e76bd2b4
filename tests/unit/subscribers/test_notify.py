"""Webhook notices: retries with backoff, what is retried, what is posted and its Slack text."""

import json
from datetime import UTC, datetime

import pytest

from stream.errors import ConfigError
from stream.schemas import Contribution, Incident, IncidentAlert, IncidentBest
from stream.subscribers.notify import (
    Notice,
    Notifier,
    NotifyOptions,
    Response,
    alert_text,
    incident_text,
    notice_for,
    origin,
)

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


def test_slack_control_sequences_in_article_fields_stay_text() -> None:
    hostile = incident().model_copy(
        update={
            "title": "<!channel> Bomb & <@U024BE7LH>\n*fake line*",
            "outlets": ["<https://evil.example|Reuters>", "AP"],
            "best": IncidentBest(
                alert_id="a",
                score=0.97,
                title="t",
                publisher="AP",
                url="https://news.example/a?x=1&y=<2>",
                explanation=[Contribution(sentence="one\r\n> <!here> two", contribution=0.4, alone=0.9)],
            ),
        }
    )
    text = incident_text(hostile, page_url="http://127.0.0.1:8080/?a=1&b=2")
    assert text.splitlines() == [
        "*New incident* (1 report from &lt;https://evil.example|Reuters&gt;, AP): "
        "&lt;!channel&gt; Bomb &amp; &lt;@U024BE7LH&gt; *fake line*",
        "best score 0.970: https://news.example/a?x=1&amp;y=&lt;2&gt;",
        "> one &gt; &lt;!here&gt; two",
        "http://127.0.0.1:8080/?a=1&amp;b=2",
    ]
    alert = IncidentAlert.model_validate(
        {
            **json.loads(hostile.best.model_dump_json()),
            "id": "a<!channel>",
            "is_alert": True, "threshold": 0.5, "model": {"name": "m", "version": "1"},
            "scored_at": T0, "source": {"topic": "articles", "partition": 0, "offset": 0},
            "title": "Car\nbomb <!everyone>", "snippet": "s", "publisher": "<b|x>\tAP",
            "published_at": None, "incident_id": "inc-1", "similarity": None,
        }
    )  # fmt: skip
    assert alert_text(alert).splitlines() == [
        "*Alert* 0.970: Car bomb &lt;!everyone&gt; (&lt;b|x&gt; AP), incident inc-1",
        "https://news.example/a?x=1&amp;y=&lt;2&gt;",
    ]


def test_a_redirect_is_a_failure_that_is_retried() -> None:
    post, sleeps = Answers(302, 301, 307), []
    response = notifier(post, sleeps, retries=2).deliver(Notice(b"{}", "k"))
    assert response.status == 307
    assert not response.ok
    assert len(post.calls) == 3
    assert notifier(Answers(308, 200), []).deliver(Notice(b"{}", "k")).ok


def test_the_webhook_url_is_never_echoed_and_only_its_origin_is_kept() -> None:
    secret = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    for bad in (
        "hooks.slack.com/services/T000/B000/XXXXSECRET",
        "ftp://hooks.slack.com/services/XXXXSECRET",
        "https://hooks.slack.com/services/XXXX SECRET",
    ):
        with pytest.raises(ConfigError) as raised:
            NotifyOptions(bootstrap_servers="b:9092", webhook=bad)
        assert "SECRET" not in str(raised.value)
        assert "WIREWATCH_WEBHOOK" in str(raised.value)
    options = NotifyOptions(bootstrap_servers="b:9092", webhook=secret)
    assert options.webhook_origin == "https://hooks.slack.com"
    assert origin("http://user:pw@127.0.0.1:8123/hook?token=x#f") == "http://127.0.0.1:8123"
