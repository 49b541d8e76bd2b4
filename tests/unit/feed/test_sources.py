"""Feed lists, URL normalisation and ids, Retry-After, backoff: the feed's pure parts."""

import random
from pathlib import Path

import pytest

from stream.errors import ConfigError
from stream.feed.fetch import Fetcher, retry_after
from stream.feed.metrics import FeedMetrics
from stream.feed.poll import Poller
from stream.feed.seen import SeenIndex
from stream.feed.settings import load_feed_settings
from stream.feed.sources import feed_list, read_feed_file
from stream.feed.urls import article_id, normalise, resolve
from wirewatch.cli import main


def test_a_url_list_with_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "feeds.txt"
    path.write_text("# news\n\nhttps://a.test/rss.xml\n  http://B.test:80/feed  \n", encoding="utf-8")
    assert [f.url for f in read_feed_file(path)] == ["https://a.test/rss.xml", "http://B.test:80/feed"]


def test_an_opml_export(tmp_path: Path) -> None:
    path = tmp_path / "subs.opml"
    path.write_text(
        '<?xml version="1.0"?>\n<opml version="2.0"><head><title>subs</title></head><body>\n'
        '<outline text="World"><outline type="rss" text="A" xmlUrl="https://a.test/rss"/>\n'
        '<outline type="rss" text="B" xmlUrl="https://b.test/atom"/></outline>\n</body></opml>\n',
        encoding="utf-8",
    )
    assert [f.url for f in read_feed_file(path)] == ["https://a.test/rss", "https://b.test/atom"]


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("https://a.test/rss\n\nfile:///etc/passwd\n", 3),
        ("https://a.test/rss\nnot a url\n", 2),
        (
            '<opml><body>\n<outline xmlUrl="https://a.test/"/>\n<outline xmlUrl="ftp://x/"/>\n</body></opml>',
            3,
        ),
        ("<opml><body>\n<outline xmlUrl='https://a.test/'>\n</body></opml>", 3),
    ],
)
def test_a_bad_feed_file_is_one_line_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, line: int
) -> None:
    path = tmp_path / "feeds"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf", line {line}: "):
        read_feed_file(path)
    assert main(["feed", "--feeds", str(path), "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"line {line}" in err
    assert err.startswith("wirewatch: error:")


def test_feeds_from_files_and_flags_are_deduplicated(tmp_path: Path) -> None:
    path = tmp_path / "feeds.txt"
    path.write_text("https://a.test/rss?utm_source=x\n", encoding="utf-8")
    feeds = feed_list([path], ["HTTPS://a.test:443/rss", "https://b.test/rss"])
    assert [f.url for f in feeds] == ["https://a.test/rss?utm_source=x", "https://b.test/rss"]
    with pytest.raises(ConfigError, match="--feed: not an http"):
        feed_list([], ["data:text/html,hi"])


def test_normalise_removes_tracking_and_keeps_what_names_the_story() -> None:
    assert (
        normalise("HTTPS://News.Test:443/a/b?utm_source=rss&id=7&fbclid=x&page=2#comments")
        == "https://news.test/a/b?id=7&page=2"
    )
    assert normalise("http://news.test") == "http://news.test/"
    assert normalise("http://news.test:8080/x") == "http://news.test:8080/x"
    for bad in ("javascript:alert(1)", "file:///etc/passwd", "http://", "http://a b/", "//a.test/x"):
        assert normalise(bad) is None


def test_ids_are_stable_and_bounded() -> None:
    assert article_id("https://a.test/x?utm_medium=feed", "g", "https://a.test/rss") == "https://a.test/x"
    assert article_id(None, "https://a.test/x#frag", "https://a.test/rss") == "https://a.test/x"
    assert article_id(None, "1234", "https://a.test/rss") == "guid:https://a.test/rss#1234"
    long = article_id("https://a.test/" + "x" * 400, None, "https://a.test/rss")
    assert long is not None
    assert long.startswith("sha256:")
    assert len(long) < 256
    assert article_id(None, None, "https://a.test/rss") is None


def test_relative_links_resolve_against_the_feed_and_other_schemes_do_not() -> None:
    assert resolve("https://a.test/feeds/rss", "/news/1") == "https://a.test/news/1"
    assert resolve("https://a.test/feeds/rss", "javascript:alert(1)") is None
    assert resolve("https://a.test/feeds/rss", " ") is None


def test_retry_after_in_seconds_or_as_a_date_and_capped() -> None:
    assert retry_after("120") == 120.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert retry_after("99999999") == 24 * 3600.0
    assert retry_after("soon") is None
    assert retry_after(None) is None


def test_backoff_grows_to_its_ceiling_and_never_undercuts_retry_after() -> None:
    settings = load_feed_settings(backoff_s=10, max_backoff_s=100, jitter=0.0, metrics_port=0)
    poller = Poller(
        settings, Fetcher("t"), SeenIndex(), None, FeedMetrics(), robots=None, rng=random.Random(0)
    )  # type: ignore[arg-type]
    assert [poller.backoff(n, None) for n in (1, 2, 3, 4, 5, 50)] == [10, 20, 40, 80, 100, 100]
    assert poller.backoff(1, 300.0) == 300.0


def test_settings_read_the_shared_bootstrap_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIREWATCH_BOOTSTRAP_SERVERS", "kafka:29092")
    monkeypatch.setenv("WIREWATCH_FEED_INTERVAL_S", "60")
    settings = load_feed_settings()
    assert settings.bootstrap_servers == "kafka:29092"
    assert settings.interval_s == 60
    with pytest.raises(ConfigError, match="per_host"):
        load_feed_settings(per_host=0)
    with pytest.raises(ConfigError, match="user_agent"):
        load_feed_settings(user_agent="a\r\nX-Injected: 1")
