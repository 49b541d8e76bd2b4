"""`wirewatch feed` end to end: a local news site (started by each test) into a real broker."""

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from stream.devtools.feedserver import FeedServer, Reply, static
from stream.feed.cli import run_feed
from stream.feed.metrics import FeedMetrics
from stream.feed.settings import FeedSettings, load_feed_settings
from stream.feed.sources import Feed, feed_list
from stream.schemas import ArticleIn
from tests.feed_documents import DOCUMENTS, page, story, summary
from tests.integration.broker_fixtures import TopicFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


def _serve_feed(site: FeedServer, kind: str, items: range) -> str:
    make, content_type = DOCUMENTS[kind]
    site.routes[f"/{kind}.xml"] = static(make(site.base, items), content_type)
    for n in items:
        site.routes[f"/{kind}/{n}.html"] = static(page(kind, n), "text/html; charset=utf-8")
    return site.url(f"/{kind}.xml")


def _settings(bootstrap: str, topic: str, **overrides: Any) -> FeedSettings:
    return load_feed_settings(
        bootstrap_servers=bootstrap, articles_topic=topic, metrics_port=0, startup_timeout_s=20, **overrides
    )


def _articles(
    bootstrap: str, topic: str, expect: int, timeout: float = 20.0
) -> list[tuple[str, dict[str, Any]]]:
    """Every message of the topic: read until `expect` are in and a second passes with nothing new."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    out: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            messages = [m for m in consumer.consume(500, timeout=0.2) if m.error() is None]
            if messages:
                quiet_since = time.monotonic()
            out += [(m.key().decode(), json.loads(m.value())) for m in messages]
            if len(out) >= expect and time.monotonic() - quiet_since > 1.0:
                break
    finally:
        consumer.close()
    return out


def _once(settings: FeedSettings, feeds: list[Feed]) -> FeedMetrics:
    return run_feed(settings, feeds, once=True, stop=threading.Event())


def test_rss_atom_and_rdf_items_become_one_article_each_with_their_full_text(
    kafka_bootstrap: str, new_topic: TopicFactory, site: FeedServer
) -> None:
    topic = new_topic(3)
    urls = [_serve_feed(site, kind, range(1, 5)) for kind in ("rss", "atom", "rdf")]
    metrics = _once(_settings(kafka_bootstrap, topic), feed_list([], urls))
    articles = _articles(kafka_bootstrap, topic, expect=12)
    assert len(articles) == 12
    assert metrics.snapshot()["produced"] == 12
    by_id = dict(articles)
    for kind in ("rss", "atom", "rdf"):
        for n in range(1, 5):
            article = by_id[
                f"{site.base}/{kind}/{n}.html"
            ]  # the canonical URL: utm_* gone from the RSS links
            ArticleIn.model_validate(article)
            assert article["text_source"] == "page"
            assert f"FIRST paragraph of {kind} story {n}" in article["text"]
            assert f"LAST paragraph of {kind} story {n}" in article["text"]
            assert "Copyright" not in article["text"]  # the page's furniture is not the article
            assert article["title"] == story(kind, n)[0]
            assert article["lang"] == "en"
            assert article["published_at"].startswith("2024-03-04T0")  # the feed's date, not the page's
    # Pages were fetched with the configured User-Agent, and robots.txt was asked first.
    assert all("wirewatch-feed" in headers.get("User-Agent", "") for _, headers in site.requests)
    assert site.hits["/robots.txt"] == 1


def test_an_unchanged_feed_answers_304_and_produces_nothing(
    kafka_bootstrap: str, new_topic: TopicFactory, site: FeedServer
) -> None:
    topic = new_topic(1)
    url = _serve_feed(site, "rss", range(1, 4))
    stop = threading.Event()
    settings = _settings(kafka_bootstrap, topic, interval_s=0.3, jitter=0.0)
    result: list[FeedMetrics] = []
    runner = threading.Thread(
        target=lambda: result.append(run_feed(settings, feed_list([], [url]), once=False, stop=stop))
    )
    runner.start()
    deadline = time.monotonic() + 20
    while site.hits.get("/rss.xml", 0) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    runner.join(timeout=30)
    assert not runner.is_alive()
    totals = result[0].snapshot()
    assert totals["feed_ok"] == 1
    assert totals["feed_not_modified"] >= 3  # every later poll: If-None-Match, 304, nothing parsed
    assert totals["produced"] == 3
    feed_requests = [headers for path, headers in site.requests if path == "/rss.xml"]
    assert "If-None-Match" not in feed_requests[0]
    assert all(h.get("If-None-Match") for h in feed_requests[1:])
    assert sum(site.hits.get(f"/rss/{n}.html", 0) for n in range(1, 4)) == 3  # each page once
    assert len(_articles(kafka_bootstrap, topic, expect=3)) == 3


def test_a_page_that_fails_gives_the_feed_summary(
    kafka_bootstrap: str, new_topic: TopicFactory, site: FeedServer
) -> None:
    topic = new_topic(1)
    url = _serve_feed(site, "atom", range(1, 4))
    site.routes["/atom/2.html"] = Reply(500, b"oops")
    site.routes["/atom/3.html"] = Reply(200, b"<html><body></body></html>")  # nothing to extract
    metrics = _once(_settings(kafka_bootstrap, topic), feed_list([], [url]))
    by_id = dict(_articles(kafka_bootstrap, topic, expect=3))
    assert by_id[f"{site.base}/atom/1.html"]["text_source"] == "page"
    for n in (2, 3):
        article = by_id[f"{site.base}/atom/{n}.html"]
        assert article["text_source"] == "summary"
        assert article["text"] == summary("atom", n)
    assert metrics.snapshot()["fallbacks"] == 2
    assert metrics.error_reasons["page_http_5xx"] == 1


def test_a_failing_feed_is_retried_politely_while_the_others_go_on(
    kafka_bootstrap: str, new_topic: TopicFactory, site: FeedServer
) -> None:
    topic = new_topic(1)
    good = _serve_feed(site, "rss", range(1, 3))
    body, content_type = DOCUMENTS["atom"][0](site.base, range(1, 3)), "application/atom+xml"
    for n in range(1, 3):
        site.routes[f"/atom/{n}.html"] = static(page("atom", n), "text/html")
    site.routes["/atom.xml"] = [
        Reply(500, b"down"),
        Reply(429, b"slow down", headers={"Retry-After": "2"}),
        Reply(200, body, content_type, hang_s=5.0),  # hangs past the read timeout
        Reply(200, body, content_type),
    ]
    settings = _settings(
        kafka_bootstrap,
        topic,
        interval_s=0.3,
        jitter=0.0,
        backoff_s=0.5,
        read_timeout_s=1.0,
        fetch_deadline_s=3.0,
    )
    stop = threading.Event()
    result: list[FeedMetrics] = []
    feeds = feed_list([], [site.url("/atom.xml"), good])
    runner = threading.Thread(target=lambda: result.append(run_feed(settings, feeds, once=False, stop=stop)))
    runner.start()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and site.hits.get("/atom/2.html", 0) < 1:
        time.sleep(0.02)
    time.sleep(0.5)
    stop.set()
    runner.join(timeout=30)
    assert not runner.is_alive()
    # When each request reached the server, not when this thread got round to seeing it.
    times: dict[str, list[float]] = {}
    for (path, _), arrived in zip(site.requests, site.arrivals, strict=True):
        times.setdefault(path, []).append(arrived)
    atom = times["/atom.xml"]
    assert len(atom) >= 4
    gaps = [b - a for a, b in itertools.pairwise(atom)]
    assert gaps[0] >= 0.4  # backoff after the 500
    assert gaps[1] >= 1.9  # Retry-After: 2 honoured after the 429
    assert gaps[2] >= 1.0  # the hang: cut by the read timeout, then a longer backoff
    # Meanwhile the good feed was polled again and again.
    during = [t for t in times["/rss.xml"] if atom[0] <= t <= atom[3]]
    assert len(during) >= 3
    totals = result[0]
    reasons = totals.error_reasons
    assert reasons["feed_http_5xx"] == 1
    assert reasons["feed_http_429"] == 1
    assert reasons["feed_timeout"] == 1
    ids = {key for key, _ in _articles(kafka_bootstrap, topic, expect=4)}
    assert ids == {f"{site.base}/{kind}/{n}.html" for kind in ("rss", "atom") for n in (1, 2)}


def test_restart_mid_run_loses_nothing_and_duplicates_nothing(
    kafka_bootstrap: str, new_topic: TopicFactory, site: FeedServer, tmp_path: Path
) -> None:
    topic = new_topic(3)
    kinds = ("rss", "atom", "rdf")
    urls = [_serve_feed(site, kind, range(1, 21)) for kind in kinds]
    for kind in kinds:
        for n in range(1, 21):
            route = site.routes[f"/{kind}/{n}.html"]
            assert isinstance(route, Reply)
            route.hang_s = 0.1  # slow pages, so that the kill lands mid-run
    feeds = tmp_path / "feeds.txt"
    feeds.write_text("\n".join(urls) + "\n", encoding="utf-8")
    command = [
        sys.executable, "-m", "wirewatch", "feed", "--feeds", str(feeds), "--bootstrap-servers", kafka_bootstrap,
        "--articles-topic", topic, "--metrics-port", "0", "--log-format", "json", "--per-host", "4",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while (
            len(_articles(kafka_bootstrap, topic, expect=0, timeout=1)) < 15 and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)  # a crash: no flush, no goodbye
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    before = _articles(kafka_bootstrap, topic, expect=0, timeout=2)
    assert 15 <= len(before) < 60, "the kill was meant to land mid-run"
    second = subprocess.run(
        [*command, "--once"], cwd=ROOT, env=env, capture_output=True, timeout=120, check=False
    )
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    keys = [key for key, _ in _articles(kafka_bootstrap, topic, expect=60)]
    expected = {f"{site.base}/{kind}/{n}.html" for kind in kinds for n in range(1, 21)}
    assert sorted(keys) == sorted(expected)  # every item once: none lost, none twice
