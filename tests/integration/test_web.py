"""`wirewatch web` in a real headless Chromium against the real broker; keeps a screenshot.

The browser is Debian's Chromium (`make browser` installs it; `make test` does so first) driven by
Playwright's Python client, which never downloads a browser here. Without Chromium the test fails
and says how to install it; WIREWATCH_SKIP_BROWSER_TESTS=1 is the only way to skip it, on purpose.
"""

import contextlib
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.devtools.broker import free_port
from stream.schemas import Contribution, Incident, IncidentAlert, IncidentBest, ModelRef, Score, SourceRef
from tests.integration.service_harness import ROOT, produce

CHROMIUM = os.environ.get("WIREWATCH_CHROMIUM", "/usr/bin/chromium")
SKIP_ENV = "WIREWATCH_SKIP_BROWSER_TESTS"
ARTIFACTS = Path(os.environ.get("WIREWATCH_TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts"))
# As root, headless, on a closed network: no sandbox, and no background calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
MODEL = ModelRef(name="terrorism-v1", version="1.0.0", digest="0123456789ab")

ARTICLES = {
    "ap-1": (
        "Car bomb kills twelve outside police station in Kabul",
        "A car bomb exploded outside a police station in central Kabul on Monday morning. "
        "At least twelve people were killed and dozens wounded, officials said. "
        "The interior ministry said the attacker drove up to the gate before detonating the explosives. "
        "Traffic in the city was diverted for several hours.",
    ),
    "rt-1": (
        "Kabul police station hit by suicide car bombing",
        "A suicide bomber detonated a car packed with explosives at a Kabul police station, killing twelve. "
        "No group has claimed the attack. Hospitals appealed for blood donations.",
    ),
    "bbc-1": (
        "Twelve dead in Kabul blast",
        "Twelve people died when a car bomb went off at a police station in the Afghan capital. "
        "Witnesses described a huge explosion that shattered windows across the district.",
    ),
    "afp-2": (
        "Gunmen take hostages at embassy compound",
        "Armed men stormed an embassy compound and took at least six staff hostage, police said. "
        "Security forces surrounded the building and negotiations were under way.",
    ),
    "live-3": (
        "Explosion at rail station injures passengers",
        "An explosive device went off on a crowded platform, injuring fourteen passengers. "
        "Police evacuated the station and closed the line.",
    ),
    "dw-4": (
        "Gunmen attack border checkpoint overnight",
        "Gunmen attacked a border checkpoint overnight, killing two guards, the interior ministry said. "
        "The attackers fled across the river before dawn.",
    ),
}


def browser_or_fail() -> Any:
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"browser tests switched off on purpose ({SKIP_ENV}=1)")
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run `make browser` (Debian's chromium package), "
            f"set WIREWATCH_CHROMIUM, or set {SKIP_ENV}=1 to skip browser tests on purpose"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright Python client is missing: `make install` (the dev extra) installs it")
    return sync_playwright


def article(id: str) -> bytes:
    title, text = ARTICLES[id]
    return json.dumps({"id": id, "title": title, "text": text, "source": id.split("-")[0].upper()}).encode()


def grouped_alert(
    id: str, offset: int, incident_id: str, score: float, input_topic: str, at: datetime
) -> IncidentAlert:
    title, text = ARTICLES[id]
    first = text.split(". ")[0] + "."
    second = text.split(". ")[1].rstrip(".") + "."
    return IncidentAlert(
        id=id,
        score=score,
        is_alert=True,
        threshold=0.5,
        model=MODEL,
        scored_at=at,
        source=SourceRef(topic=input_topic, partition=0, offset=offset),
        title=title,
        snippet=text[:200].lower(),
        publisher=id.split("-")[0].upper(),
        url=f"https://news.example/{id}",
        published_at=at.isoformat(),
        explanation=[
            Contribution(sentence=first, contribution=0.41, alone=0.93),
            Contribution(sentence=second, contribution=0.08, alone=0.61),
        ],
        incident_id=incident_id,
        similarity=None if id in ("ap-1", "afp-2", "live-3") else 0.83,
    )


def incident_of(alerts: list[IncidentAlert]) -> Incident:
    best = max(alerts, key=lambda a: a.score)
    return Incident(
        id=alerts[0].incident_id,
        status="open",
        first_seen=alerts[0].scored_at,
        last_seen=alerts[-1].scored_at,
        reports=len(alerts),
        outlets=sorted({a.publisher or "" for a in alerts}),
        title=alerts[0].title,
        best=IncidentBest(
            alert_id=best.id,
            score=best.score,
            title=best.title,
            publisher=best.publisher,
            url=best.url,
            explanation=best.explanation,
        ),
        alert_ids=[a.id for a in alerts],
        updated_at=alerts[-1].scored_at,
    )


@pytest.fixture
def web_topics(new_topic: Callable[[int], str]) -> dict[str, str]:
    return {name: new_topic(1) for name in ("input", "scores", "incidents", "incident_alerts")}


@contextlib.contextmanager
def running_web(
    kafka_bootstrap: str,
    web_topics: dict[str, str],
    log: Path,
    *extra: str,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, Path]]:
    """`wirewatch web` on a free port until the block ends; yields its URL and its log."""
    port = free_port()
    args = [
        sys.executable, "-m", "wirewatch", "web",
        "--bootstrap-servers", kafka_bootstrap,
        "--port", str(port),
        "--input-topic", web_topics["input"],
        "--scores-topic", web_topics["scores"],
        "--incidents-topic", web_topics["incidents"],
        "--incident-alerts-topic", web_topics["incident_alerts"],
        "--group-id", f"scorers-{uuid.uuid4().hex}",
        "--log-format", "json",
        *extra,
    ]  # fmt: skip
    with log.open("wb") as handle:
        process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"wirewatch web exited: {log.read_text()}"
            try:
                with urllib.request.urlopen(url + "healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail(f"wirewatch web did not answer within 60 s: {log.read_text()}")
        yield url, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def web_process(
    kafka_bootstrap: str, web_topics: dict[str, str], tiny_bundle: Path, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    with running_web(kafka_bootstrap, web_topics, tmp_path / "web.log", "--bundle", str(tiny_bundle)) as web:
        yield web


def test_alerts_produced_into_the_topics_appear_live_on_the_page(
    kafka_bootstrap: str, web_topics: dict[str, str], web_process: tuple[str, Path]
) -> None:
    sync_playwright = browser_or_fail()
    url, log = web_process
    t = web_topics
    now = datetime.now(UTC)
    ids = list(ARTICLES)
    produce(kafka_bootstrap, t["input"], [(i.encode(), article(i), None) for i in ids])
    rng = random.Random(0)
    scores = [
        Score(
            id=f"s{k}", score=min(rng.betavariate(1, 14), 0.49), is_alert=False, threshold=0.5, model=MODEL,
            scored_at=now, source=SourceRef(topic=t["input"], partition=0, offset=k),
        ).model_dump_json().encode()
        for k in range(300)
    ]  # fmt: skip
    scores += [
        Score(
            id=i, score=0.9, is_alert=True, threshold=0.5, model=MODEL, scored_at=now,
            source=SourceRef(topic=t["input"], partition=0, offset=k),
        ).model_dump_json().encode()
        for k, i in enumerate(ids[:4])
    ]  # fmt: skip
    produce(kafka_bootstrap, t["scores"], [(None, s, None) for s in scores])
    storm = [
        grouped_alert("ap-1", 0, "inc-kabul", 0.97, t["input"], now - timedelta(minutes=30)),
        grouped_alert("rt-1", 1, "inc-kabul", 0.95, t["input"], now - timedelta(minutes=22)),
        grouped_alert("bbc-1", 2, "inc-kabul", 0.91, t["input"], now - timedelta(minutes=12)),
    ]
    hostages = [grouped_alert("afp-2", 3, "inc-embassy", 0.88, t["input"], now - timedelta(minutes=8))]
    # An incident whose alerts are older than the hour the page reads: only its record is there.
    older = incident_of([grouped_alert("dw-4", 5, "inc-older", 0.77, t["input"], now - timedelta(hours=3))])
    produce(
        kafka_bootstrap,
        t["incident_alerts"],
        [(a.incident_id.encode(), a.model_dump_json().encode(), None) for a in storm + hostages],
    )
    produce(
        kafka_bootstrap,
        t["incidents"],
        [
            (i.id.encode(), i.model_dump_json().encode(), None)
            for i in (incident_of(storm), incident_of(hostages), older)
        ],
    )

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "web-page.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.wait_for_selector('[data-alert-id="ap-1"] mark', timeout=60_000)
            marks = page.locator('[data-alert-id="ap-1"] mark').all_inner_texts()
            assert (
                marks[0] == "A car bomb exploded outside a police station in central Kabul on Monday morning."
            )
            # The card first shows what the alerts say (pending, no outlets); the incident's state
            # (its outlets) follows from the incidents topic, so wait for it rather than race it.
            page.wait_for_function(
                """() => document.querySelector('[data-incident-id="inc-kabul"]')?.innerText.includes('AP, BBC, RT')""",
                timeout=60_000,
            )
            card = page.locator('[data-incident-id="inc-kabul"]')
            assert "3 reports" in card.inner_text()
            assert "AP, BBC, RT" in card.inner_text()
            page.wait_for_selector('[data-incident-id="inc-older"] [data-alert-id="dw-4"]', timeout=60_000)
            assert "best report" in page.locator('[data-incident-id="inc-older"]').inner_text()

            # Live: an alert produced now, with its incident, shows up without a reload.
            live = grouped_alert("live-3", 4, "inc-rail", 0.93, t["input"], datetime.now(UTC))
            produce(
                kafka_bootstrap, t["incident_alerts"], [(b"inc-rail", live.model_dump_json().encode(), None)]
            )
            produce(
                kafka_bootstrap,
                t["incidents"],
                [(b"inc-rail", incident_of([live]).model_dump_json().encode(), None)],
            )
            page.wait_for_selector(
                '[data-incident-id="inc-rail"] [data-alert-id="live-3"] mark', timeout=60_000
            )
            # Stats: 304 scores in the hour against the bundle's validation distribution.
            page.wait_for_function(
                "() => document.getElementById('k-drift').textContent.match(/(ok|DRIFT) [0-9.]+/)",
                timeout=60_000,
            )
            assert page.locator("#hist rect").count() > 20, "the histogram (live and reference) was drawn"
            assert page.locator("#k-alerts").inner_text() == "4"
            assert page.locator("#k-incidents").inner_text() == "4", "kabul, embassy, rail and the older one"
            assert page.locator("#rate rect").count() >= 1, "the alert rate was drawn"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert "following Kafka failed" not in log.read_text()


def test_tail_stats_reports_the_hour_and_flags_drift_against_the_bundle(
    kafka_bootstrap: str, new_topic: Callable[[int], str], tiny_bundle: Path
) -> None:
    from stream.devtools.tail import stats
    from stream.scoring.bundle import read_manifest

    reference = read_manifest(tiny_bundle).score_distribution
    assert reference is not None, "training records the validation score distribution in the bundle"
    topic = new_topic(1)
    now = datetime.now(UTC)
    # Every score far above the reference's top decile: a shifted feed.
    high = max(reference.edges) + (1 - max(reference.edges)) / 2
    produce(
        kafka_bootstrap,
        topic,
        [
            (None, Score(
                id=f"s{k}", score=high, is_alert=high >= 0.5, threshold=0.5, model=MODEL, scored_at=now,
                source=SourceRef(topic="articles", partition=0, offset=k),
            ).model_dump_json().encode(), None)
            for k in range(250)
        ],
    )  # fmt: skip
    lines: list[str] = []
    snapshot = stats(kafka_bootstrap, topic, bundle=tiny_bundle, interval=60, limit=250, emit=lines.append)
    assert snapshot.scores == 250
    assert snapshot.drifted
    assert "DRIFT" in lines[-1]
    assert "last hour: 250 scores" in lines[-1]


# What the hostile links below would set, had they run. Predicates are functions, not strings:
# the page's Content-Security-Policy refuses eval, which Playwright uses for a string.
PWNED = "() => window.__pwned"
HOSTILE_URLS = [
    "javascript:window.__pwned=1",
    " JavaScript:window.__pwned=2",
    "java\tscript:window.__pwned=3",
    "data:text/html,<script>opener.__pwned=4</script>",
    "vbscript:x",
    "/relative/path",
]


def _click_every_title(page: Any) -> None:
    for title in page.locator(".alert .head strong").all():
        title.click(modifiers=[], timeout=5_000)
    page.wait_for_timeout(300)


def test_an_alert_with_a_javascript_url_naming_another_topic_runs_nothing_and_shows_nothing_of_it(
    kafka_bootstrap: str, web_topics: dict[str, str], new_topic: Callable[[int], str], tmp_path: Path
) -> None:
    sync_playwright = browser_or_fail()
    t = web_topics
    foreign = new_topic(1)
    produce(
        kafka_bootstrap,
        foreign,
        [(b"k", b'{"id": "x", "title": "FOREIGN-TOPIC-TOKEN", "text": "FOREIGN-TOPIC-TOKEN"}', None)],
    )
    produce(kafka_bootstrap, t["input"], [(b"ap-1", article("ap-1"), None)])
    now = datetime.now(UTC)
    hostile = json.loads(grouped_alert("rt-1", 0, "inc-x", 0.95, foreign, now).model_dump_json())
    hostile["url"] = "javascript:window.__pwned=1"  # bypasses the model: what a crafted record holds
    honest = grouped_alert("ap-1", 0, "inc-x", 0.97, t["input"], now)
    produce(
        kafka_bootstrap,
        t["incident_alerts"],
        [(b"inc-x", json.dumps(hostile).encode(), None), (b"inc-x", honest.model_dump_json().encode(), None)],
    )
    # The Kafka password reaches the page process through a properties file and never its log.
    (tmp_path / "client.properties").write_text("sasl.password=hunter2-web-password\n")
    env = {**os.environ, "WIREWATCH_KAFKA": json.dumps({"session.timeout.ms": "6000"})}
    extra = ("--kafka-file", str(tmp_path / "client.properties"))
    with running_web(kafka_bootstrap, t, tmp_path / "web.log", *extra, env=env) as (url, log):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()
                dialogs: list[str] = []
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.goto(url)
                page.wait_for_selector('[data-alert-id="ap-1"] mark', timeout=60_000)
                page.wait_for_selector('[data-alert-id="rt-1"]', timeout=60_000)
                hostile_node = page.locator('[data-alert-id="rt-1"]')
                assert hostile_node.locator("a").count() == 0, "no link from a javascript: url"
                assert "Kabul police station hit" in hostile_node.inner_text()
                assert hostile_node.locator(".article").inner_text() == hostile["snippet"], (
                    "its snippet, no text"
                )
                assert "FOREIGN-TOPIC-TOKEN" not in page.content()
                hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
                assert hrefs == ["https://news.example/ap-1"]
                _click_every_title(page)
                assert page.evaluate(PWNED) is None
                assert dialogs == []
            finally:
                browser.close()
        assert "FOREIGN-TOPIC-TOKEN" not in log.read_text()
    text = log.read_text()
    assert "article not read: the alert names another topic" in text
    assert "hunter2" not in text
    serving = [json.loads(line) for line in text.splitlines() if '"serving"' in line]
    assert serving[0]["kafka"]["sasl.password"] == "***"


def test_the_page_links_only_http_urls_asks_for_its_token_and_says_when_it_reconnected(
    tmp_path: Path,
) -> None:
    from stream.subscribers.web import Hub
    from tests.integration.test_web_access import TOKEN, serving

    sync_playwright = browser_or_fail()
    hub = Hub(None)
    now = datetime.now(UTC)
    # Records put straight into the page's state, past the schema's url check: the page's own check.
    for k, bad in enumerate(HOSTILE_URLS):
        record = json.loads(grouped_alert("afp-2", k, f"inc-{k}", 0.9, "articles", now).model_dump_json())
        hub.alert({**record, "id": f"bad-{k}", "url": bad, "segments": None})
    hub.alert(
        {
            **json.loads(grouped_alert("ap-1", 9, "inc-js", 0.99, "articles", now).model_dump_json()),
            "segments": None,
        }
    )
    with serving(hub, token=TOKEN) as port, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            url = f"http://127.0.0.1:{port}/"
            assert browser.new_page().request.get(url).status == 401, "no token, no page"
            context = browser.new_context(http_credentials={"username": "analyst", "password": TOKEN})
            page = context.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            page.wait_for_selector('[data-alert-id="ap-1"]', timeout=30_000)
            page.wait_for_function(
                "() => document.getElementById('conn').textContent === 'live'", timeout=30_000
            )
            shown = page.eval_on_selector_all("[data-alert-id]", "nodes => nodes.map(n => n.dataset.alertId)")
            assert sorted(shown) == sorted(["ap-1", *(f"bad-{k}" for k in range(len(HOSTILE_URLS)))])
            hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
            assert hrefs == ["https://news.example/ap-1"]
            _click_every_title(page)
            assert page.evaluate(PWNED) is None
            assert dialogs == []

            # The server ends the stream of a page that fell behind: it reconnects and says so.
            with hub.lock:
                for client in list(hub._clients):
                    hub._drop(client)
            page.wait_for_function(
                "() => document.getElementById('conn').textContent.includes('reconnected')", timeout=30_000
            )
            assert "fallen behind" in page.locator("#conn").inner_text()
            assert page.locator("#conn").get_attribute("data-reconnects") == "1"
            hub.alert(
                {
                    **json.loads(
                        grouped_alert("bbc-1", 10, "inc-new", 0.95, "articles", now).model_dump_json()
                    ),
                    "segments": None,
                }
            )
            page.wait_for_selector('[data-alert-id="bbc-1"]', timeout=30_000)
        finally:
            browser.close()
