"""Article fields are written by whoever controls a feed: what reaches pages and chat tools is checked.

Fuzzed with hypothesis: the alert schema's url check, the Slack text of notices and the records the
live page renders.
"""

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.kafka.records import Incoming
from stream.schemas import (
    HTTP_URL_PATTERN,
    Alert,
    Contribution,
    Incident,
    IncidentAlert,
    ModelRef,
    http_url_or_none,
)
from stream.serve.process import BatchProcessor
from stream.serve.settings import ServeSettings
from stream.subscribers.incidents import _best
from stream.subscribers.notify import alert_text, incident_text, slack_escape
from stream.subscribers.web import CUT, MAX_ARTICLE_CHARS, page_record
from tests.unit.serve.test_process import TokenScorer

ROOT = Path(__file__).resolve().parents[3]
HOSTILE_URLS = [
    "javascript:alert(document.domain)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "\x01javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/x",
    "/relative",
    "https://",
    "https://host/ spaced",
    "https://host/\nline",
]
# What a page or chat tool could be led to by a url: anything that looks like a scheme or a URL.
urls = st.one_of(
    st.sampled_from(HOSTILE_URLS),
    st.text(max_size=60),
    st.builds(
        lambda s, rest: s + rest,
        st.sampled_from(["http://", "https://", "HTTPS://", "javascript:"]),
        st.text(),
    ),
)


def _alert_json(url: object) -> bytes:
    return json.dumps(
        {
            "id": "a", "score": 0.9, "is_alert": True, "threshold": 0.5,
            "model": {"name": "m", "version": "1"}, "scored_at": "2026-11-30T12:00:00Z",
            "source": {"topic": "articles", "partition": 0, "offset": 0},
            "title": "t", "snippet": "s", "publisher": None, "url": url, "published_at": None,
            "incident_id": "inc-1", "similarity": None,
        }
    ).encode()  # fmt: skip


def assert_web_url(url: str | None) -> None:
    if url is not None:
        assert urlsplit(url).scheme.lower() in ("http", "https")
        assert urlsplit(url).hostname
        assert not re.search(r"[\s\x00-\x1f\x7f]", url)


@settings(max_examples=500, deadline=None, database=None)
@given(urls)
def test_an_alert_read_from_kafka_carries_an_http_url_or_none(url: str) -> None:
    alert = IncidentAlert.model_validate_json(_alert_json(url))
    assert_web_url(alert.url)
    assert alert.url == http_url_or_none(url)


def test_hostile_urls_are_dropped_and_http_ones_kept() -> None:
    for url in HOSTILE_URLS:
        assert IncidentAlert.model_validate_json(_alert_json(url)).url is None, url
    kept = "https://news.example/a?b=1&c=<2>"
    assert IncidentAlert.model_validate_json(_alert_json(kept)).url == kept
    assert IncidentAlert.model_validate_json(_alert_json(7)).url is None


def test_the_published_schema_documents_the_same_pattern() -> None:
    for name in ("alert", "incident", "incident_alert"):
        schema = json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
        url = (
            schema["properties"]["url"]
            if name != "incident"
            else schema["$defs"]["IncidentBest"]["properties"]["url"]
        )
        assert url["pattern"] == HTTP_URL_PATTERN


def test_the_scorer_publishes_an_article_with_a_javascript_url_as_an_alert_without_a_url() -> None:
    everything_alerts = BatchProcessor(
        TokenScorer(), ServeSettings(bundle=Path("unused")), ModelRef(name="m", version="1"), 0.0,
        explainer=lambda title, text, cleaned: [],
    )  # fmt: skip
    articles = [
        {"id": "bad", "text": "a bomb exploded", "url": "javascript:alert(1)"},
        {"id": "good", "text": "a bomb exploded", "url": "https://news.example/good"},
    ]
    messages = [
        Incoming("articles", 0, i, None, json.dumps(a).encode(), [], None) for i, a in enumerate(articles)
    ]
    alerts = {
        o.key: Alert.model_validate_json(o.value)
        for o in everything_alerts.process(messages).outputs
        if o.kind == "alert"
    }
    assert alerts[b"bad"].url is None
    assert alerts[b"good"].url == "https://news.example/good"
    assert b"javascript" not in b"".join(o.value for o in everything_alerts.process(messages).outputs)


sentences = st.lists(st.text(max_size=80), max_size=4)


@settings(max_examples=300, deadline=None, database=None)
@given(
    title=st.one_of(st.none(), st.text(max_size=200)),
    publisher=st.one_of(st.none(), st.text(max_size=40)),
    outlets=st.lists(st.text(max_size=40), max_size=6),
    url=st.one_of(st.none(), urls),
    sentence=st.text(max_size=300),
    page_url=st.one_of(st.none(), st.text(max_size=60)),
)
def test_the_slack_text_of_any_article_fields_holds_no_control_sequence_and_no_extra_line(
    title: str | None,
    publisher: str | None,
    outlets: list[str],
    url: str | None,
    sentence: str,
    page_url: str | None,
) -> None:
    alert = IncidentAlert.model_validate_json(_alert_json(url))
    alert = alert.model_copy(
        update={
            "title": title,
            "publisher": publisher,
            "explanation": [Contribution(sentence=sentence, contribution=0.1, alone=0.5)],
        }
    )
    incident = Incident(
        id="inc-1", status="open", first_seen=alert.scored_at, last_seen=alert.scored_at, reports=1,
        outlets=outlets, title=title, best=_best(alert), alert_ids=["a"], updated_at=alert.scored_at,
    )  # fmt: skip
    for text, lines in (
        (incident_text(incident, page_url), 3 + bool(slack_escape(page_url or ""))),
        (alert_text(alert), 1 + bool(alert.url)),
    ):
        assert len(text.splitlines()) == lines
        body = "\n".join(line.removeprefix("> ") for line in text.splitlines())
        assert "<" not in body
        assert ">" not in body
        assert not re.search(r"&(?!amp;|lt;|gt;)", body), "every & is escaped"
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]", text)


@settings(max_examples=300, deadline=None, database=None)
@given(
    url=st.one_of(st.none(), urls),
    text=st.one_of(st.none(), st.text(max_size=300), st.text(min_size=1, max_size=3).map(lambda t: t * 9000)),
    sentences=sentences,
)
def test_what_the_page_renders_of_any_alert_is_plain_bounded_text_and_an_http_link_at_most(
    url: str | None, text: str | None, sentences: list[str]
) -> None:
    alert = IncidentAlert.model_validate_json(_alert_json(url)).model_copy(
        update={"explanation": [Contribution(sentence=s, contribution=0.1, alone=0.5) for s in sentences]}
    )
    record = page_record(alert, text)
    json.dumps(record)
    assert_web_url(record["url"])
    if not text:
        assert record["segments"] is None
        return
    shown = "".join(s["text"] for s in record["segments"])
    assert len(shown) <= MAX_ARTICLE_CHARS
    assert shown == (text if len(text) <= MAX_ARTICLE_CHARS else shown)
    assert text.startswith(shown.removesuffix(CUT))
    for segment in record["segments"]:
        assert set(segment) <= {"text", "mark", "rank"}
        assert isinstance(segment["text"], str)
        assert segment.get("rank", 0) in range(len(sentences) or 1)
