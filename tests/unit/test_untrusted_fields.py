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

from stream.process import BatchProcessor
from stream.records import Incoming
from stream.schemas import HTTP_URL_PATTERN, Alert, IncidentAlert, ModelRef, http_url_or_none
from stream.settings import ServeSettings
from tests.unit.test_fuzz_input import TokenScorer

ROOT = Path(__file__).resolve().parents[2]
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
