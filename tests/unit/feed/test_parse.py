"""The parser path: feed documents into entries and articles, hostile ones into counted errors."""

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.feed.fetch import Fetcher
from stream.feed.metrics import FeedMetrics
from stream.feed.parse import FeedParseError, html_to_text, parse_feed
from stream.feed.poll import FeedState, Poller
from stream.feed.seen import SeenIndex
from stream.feed.settings import load_feed_settings
from stream.feed.sources import Feed
from stream.schemas import ArticleIn
from tests.feed_documents import DOCUMENTS, summary

BASE = "http://news.test"


@pytest.mark.parametrize("kind", sorted(DOCUMENTS))
def test_rss_atom_and_rdf_give_every_item_with_link_summary_and_date(kind: str) -> None:
    make, content_type = DOCUMENTS[kind]
    parsed = parse_feed(make(BASE, range(1, 6)), content_type, f"{BASE}/{kind}.xml", max_items=100)
    assert len(parsed.entries) == 5
    assert parsed.title in ("The Riverside Herald", "Valley Atom News", "Valley RDF Digest")
    for n, entry in enumerate(parsed.entries, 1):
        assert entry.link is not None
        assert entry.link.startswith(f"{BASE}/{kind}/{n}.html")
        assert entry.id == f"{BASE}/{kind}/{n}.html"  # the normalised URL, tracking parameters gone
        assert entry.summary == summary(kind, n)  # markup (CDATA <p>, escaped <b>) removed
        assert entry.published_at is not None
        assert entry.published_at.startswith("2024-03-0")
        assert entry.title is not None
        assert "<" not in entry.title


def test_published_at_is_utc_iso_8601() -> None:
    parsed = parse_feed(DOCUMENTS["rss"][0](BASE, range(1, 2)), "application/rss+xml", BASE, max_items=10)
    assert parsed.entries[0].published_at == "2024-03-04T00:30:00+00:00"  # 01:30 +0100


def test_html_in_titles_is_text_and_scripts_vanish() -> None:
    doc = (
        b"<rss version='2.0'><channel><title>t</title><item><title>Big &lt;b&gt;news&lt;/b&gt;"
        b"&lt;script&gt;alert(1)&lt;/script&gt;</title><link>http://a.test/1</link>"
        b"<description>&lt;img src=x onerror=alert(1)&gt;Body &amp;amp; more</description></item></channel></rss>"
    )
    entry = parse_feed(doc, "application/rss+xml", "http://a.test/feed", 10).entries[0]
    assert entry.title == "Big news"
    assert entry.summary == "Body & more"
    assert html_to_text("<p>a</p><p>b</p>") == "a\n\nb"


def test_links_of_other_schemes_are_not_kept_and_guids_name_the_item() -> None:
    doc = (
        b"<rss version='2.0'><channel><title>t</title>"
        b"<item><title>x</title><link>javascript:alert(1)</link><guid>abc-1</guid><description>d</description></item>"
        b"<item><title>y</title><link>file:///etc/passwd</link><description>d</description></item>"
        b"</channel></rss>"
    )
    parsed = parse_feed(doc, "application/rss+xml", "http://a.test/feed", 10)
    assert [e.link for e in parsed.entries] == [None]
    assert parsed.entries[0].id == "guid:http://a.test/feed#abc-1"
    assert parsed.skipped == {"no_id": 1}  # no usable link and no guid: counted, not published


def test_not_a_feed_is_an_error_with_a_reason() -> None:
    with pytest.raises(FeedParseError) as caught:
        parse_feed(b"<html><body>hello</body></html>", "text/html", "http://a.test/", 10)
    assert caught.value.reason == "not_a_feed"


def test_latin1_feed_declared_in_the_header_is_decoded() -> None:
    doc = "<?xml version='1.0'?><rss version='2.0'><channel><title>Él</title><item><title>Café crème</title><link>http://a.test/1</link></item></channel></rss>"
    parsed = parse_feed(
        doc.encode("latin-1"), "application/rss+xml; charset=iso-8859-1", "http://a.test/", 10
    )
    assert parsed.entries[0].title == "Café crème"


# The fuzz test: every input ends as articles or counted errors ---------------------------------


def _poller() -> Poller:
    settings = load_feed_settings(fetch_pages=False, robots=False, metrics_port=0)
    return Poller(
        settings, Fetcher("test"), SeenIndex(), sink=None, metrics=FeedMetrics(), rng=random.Random(0)
    )  # type: ignore[arg-type]


_pieces = st.sampled_from(
    [
        b"<rss version='2.0'><channel><title>t</title>",
        b"<item><title>",
        b"</title><link>http://a.test/",
        b"</link><description>",
        b"</description></item>",
        b"<entry><title type='html'>&lt;b&gt;",
        b"<feed xmlns='http://www.w3.org/2005/Atom'>",
        b"<![CDATA[<p>x</p>]]>",
        b"<guid>",
        b"</guid>",
        b"</channel></rss>",
        b"&#0;&#xD800;&bogus;",
        b"\xff\xfe\x00<",
        b"\xc3\x28\xa0\xa1",
        b"<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;'>]>",
        b"&b;",
        b"x" * 5000,
        "é中文 ".encode(),
        "é".encode("latin-1"),
        b"<script>alert(1)</script>",
        b"<link>javascript:alert(1)</link>",
        b"<pubDate>Mon, 99 Foo 99999 99:99:99</pubDate>",
        b"<pubDate>Mon, 04 Mar 2024 01:30:00 +0100</pubDate>",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.one_of(_pieces, st.binary(max_size=64)), max_size=40),
    content_type=st.sampled_from(
        [None, "application/rss+xml", "text/xml; charset=utf-16", "text/html; charset=koi8-r"]
    ),
)
def test_fuzz_every_document_ends_as_articles_or_counted_errors(
    pieces: list[bytes], content_type: str | None
) -> None:
    poller = _poller()
    state = FeedState(Feed("http://a.test/feed", "http://a.test/feed"))
    log = poller._log
    parsed = poller.parse(state, b"".join(pieces), content_type, state.feed.url)
    errors = poller.metrics.snapshot().get("errors", 0)  # the feed's, or its skipped entries'
    if parsed is None:
        assert errors == 1
        assert state.failures == 1
        return
    assert errors == sum(parsed.skipped.values())
    built = 0
    for entry in parsed.entries:
        result = poller.build(entry, parsed, state.feed, log)
        if result is not None:
            ArticleIn.model_validate(result.article)  # what the scorer will accept
            assert result.article["text"]
            result.article["text"].encode("utf-8")  # no lone surrogates
            built += 1
    counted = poller.metrics.snapshot().get("errors", 0)
    assert built + (counted - errors) == len(parsed.entries)


def test_a_huge_entry_is_cut_to_the_text_limit(tmp_path: Path) -> None:
    text = "word " * 100_000
    doc = f"<rss version='2.0'><channel><title>t</title><item><title>x</title><link>http://a.test/1</link><description>{text}</description></item></channel></rss>"
    poller = _poller()
    state = FeedState(Feed("http://a.test/feed", "http://a.test/feed"))
    parsed = poller.parse(state, doc.encode(), "application/rss+xml", state.feed.url)
    assert parsed is not None
    built = poller.build(parsed.entries[0], parsed, state.feed, poller._log)
    assert built is not None
    assert len(built.article["text"]) == poller.settings.max_text_chars
    assert built.article["text_source"] == "summary"
