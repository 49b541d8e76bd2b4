"""The live page's state and access checks, without a socket: text caps, snapshots, highlighting,
throughput and lag, Host and token."""

import base64
import json
from typing import Any

import pytest

from stream.errors import ConfigError
from stream.subscribers import web
from stream.subscribers.web import (
    MAX_ALERTS,
    MAX_STORED_TEXT_CHARS,
    Hub,
    Snapshot,
    WebOptions,
    highlight,
    host_allowed,
    input_lag,
    token_given,
)
from tests.unit.subscribers.alerts import alert


def _record(i: int, chars: int) -> dict[str, Any]:
    return {"id": f"a{i}", "segments": [{"text": "x" * chars, "mark": False}], "snippet": "s"}


def test_stored_article_text_is_capped_oldest_alerts_keeping_their_snippet() -> None:
    hub = Hub(None)
    per = MAX_STORED_TEXT_CHARS // 10
    for i in range(25):
        hub.alert(_record(i, per))
    assert hub.text_chars <= MAX_STORED_TEXT_CHARS
    assert hub.text_chars == sum(len(s["text"]) for a in hub.alerts for s in a["segments"] or [])
    kept = [a["id"] for a in hub.alerts if a["segments"]]
    assert kept == [f"a{i}" for i in range(15, 25)], "the newest keep their text"
    assert all(a["snippet"] == "s" for a in hub.alerts)
    for i in range(MAX_ALERTS + 5):
        hub.alert(_record(100 + i, 10))
    assert len(hub.alerts) == MAX_ALERTS
    assert hub.text_chars == 10 * MAX_ALERTS


def test_a_new_page_costs_the_lock_no_serialization(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Hub(None, max_clients=2)
    hub.alert(_record(1, 10))

    def refuse(*_: Any, **__: Any) -> str:
        raise AssertionError("serialized under the lock")

    monkeypatch.setattr(web.json, "dumps", refuse)
    client = hub.subscribe()
    assert client is not None
    first = client.queue.get_nowait()
    assert isinstance(first, Snapshot)
    monkeypatch.undo()
    hub.alert(_record(2, 10))  # stored records are replaced, never changed: the snapshot stays as taken
    assert [a["id"] for a in first.alerts] == ["a1"]
    assert json.loads(json.dumps(first.as_dict()))["alerts"][0]["id"] == "a1"
    assert hub.subscribe() is not None
    assert hub.subscribe() is None, "max_clients pages at most"


def test_a_page_whose_queue_fills_is_dropped_and_told_so() -> None:
    hub = Hub(None, queue_size=3)
    client = hub.subscribe()
    assert client is not None
    for i in range(5):
        hub.alert(_record(i, 1))
    assert client.dropped.is_set()
    assert hub.subscribe() is not None, "its place is free again"
    other = hub.subscribe()
    assert other is not None
    hub._drop(other)
    items = [other.queue.get_nowait() for _ in range(2)]
    assert items[-1] is None, "a dropped page's thread is woken rather than left waiting"


def test_the_host_header_must_name_this_server() -> None:
    hosts = WebOptions("b", host="0.0.0.0", allow_anonymous=True, allowed_hosts=("wire.example.org",)).hosts
    for good in (
        "localhost",
        "localhost:8080",
        "127.0.0.1:8080",
        "[::1]:8080",
        "WIRE.example.org.",
        "wire.example.org:443",
    ):
        assert host_allowed(good, hosts), good
    for bad in (
        None,
        "",
        "evil.example",
        "evil.example:8080",
        "localhost.evil.example",
        "0.0.0.0:8080",
        "[::2]",
    ):
        assert not host_allowed(bad, hosts), bad
    assert host_allowed("10.1.2.3:8080", WebOptions("b", host="10.1.2.3", token="t" * 16).hosts)


def test_the_token_is_taken_as_bearer_or_as_basic_auth_password() -> None:
    token = "correct-horse-battery-staple"
    basic = base64.b64encode(f"anyone:{token}".encode()).decode()
    assert token_given(f"Bearer {token}", token)
    assert token_given(f"Basic {basic}", token)
    for bad in (
        None,
        "",
        token,
        f"Bearer {token}x",
        "Bearer ",
        f"Basic {token}",
        "Basic !!!",
        f"Digest {token}",
    ):
        assert not token_given(bad, token), bad


def test_a_page_beyond_loopback_needs_a_long_token_or_an_explicit_choice() -> None:
    for host in ("0.0.0.0", "", "::", "192.168.1.5", "wire.example.org"):
        with pytest.raises(ConfigError, match="without a token"):
            WebOptions("b", host=host)
        assert WebOptions("b", host=host, token="t" * 16).token
        assert WebOptions("b", host=host, allow_anonymous=True).allow_anonymous
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert WebOptions("b", host=host).token is None
    with pytest.raises(ConfigError, match="shorter than 16"):
        WebOptions("b", token="short")


def test_highlight_marks_sentences_whatever_the_whitespace() -> None:
    text = "Title\n\nA bomb  exploded\nin the market. Police said nothing. Two died."
    segments = highlight(text, ["A bomb exploded in the market.", "Two died.", "Not there."])
    marked = [s for s in segments if s["mark"]]
    assert [s["text"] for s in marked] == ["A bomb  exploded\nin the market.", "Two died."]
    assert [s["rank"] for s in marked] == [0, 1]
    assert "".join(str(s["text"]) for s in segments) == text


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
