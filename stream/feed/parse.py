"""A feed document (RSS 0.9x/1.0/2.0, Atom) into entries, with feedparser.

feedparser is given the bytes themselves (never a string, which it would try as a URL or a
path) and the response's Content-Type, which it reads the encoding from. Titles and summaries
are HTML in many feeds: they are reduced to their text here, so nothing downstream sees markup.
"""

import io
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import feedparser

from stream.feed.urls import article_id, resolve

MAX_TITLE_CHARS = 1000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


class FeedParseError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Entry:
    id: str
    link: str | None  # an http(s) URL, or None
    title: str | None
    summary: str  # the feed's own text of the item (content, else summary), markup removed
    published_at: str | None
    guid: str | None


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    lang: str | None  # as the feed declares it
    entries: list[Entry]
    skipped: dict[str, int]  # entries that could not become an article, by reason


class _Text(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "head", "iframe", "object"})
    _BREAK = frozenset({"p", "br", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def clean_text(value: str) -> str:
    """Text fit for a UTF-8 message: no control characters or lone surrogates, tidy spaces."""
    value = value.encode("utf-8", "replace").decode("utf-8")
    value = _CONTROL.sub(" ", value.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [_SPACES.sub(" ", line).strip() for line in value.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(value: str) -> str:
    """The text of an HTML fragment (or of plain text, unchanged but tidied)."""
    if "<" not in value and "&" not in value:
        return clean_text(value)
    parser = _Text()
    try:
        parser.feed(value)
        parser.close()
    except Exception:  # html.parser is lenient, but hostile input must never stop a feed
        return clean_text(re.sub(r"<[^>]*>", " ", value))
    return clean_text("".join(parser.parts))


def _one_line(value: object, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(html_to_text(value).split())[:limit]
    return text or None


def iso_time(parsed: Any) -> str | None:
    """A feedparser time (a UTC struct_time) as ISO 8601, or None when absent or impossible."""
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        return datetime(*parsed[:6], tzinfo=UTC).isoformat()
    except (ValueError, OverflowError, TypeError):
        return None


def _entry_text(entry: Any) -> str:
    """The longest text the feed gives for the entry: content (content:encoded, Atom content) or summary."""
    texts = []
    for content in entry.get("content") or []:
        if isinstance(content, dict) and isinstance(content.get("value"), str):
            texts.append(html_to_text(content["value"]))
    summary = entry.get("summary")
    if isinstance(summary, str):
        texts.append(html_to_text(summary))
    return max(texts, key=len, default="")


def parse_feed(body: bytes, content_type: str | None, feed_url: str, max_items: int) -> ParsedFeed:
    """Entries of a feed document. FeedParseError when it is not a feed at all."""
    headers = {"content-type": content_type} if content_type else {}
    try:
        parsed = feedparser.parse(
            io.BytesIO(body), response_headers=headers, sanitize_html=True, resolve_relative_uris=False
        )
    except Exception as exc:  # feedparser is meant to be total; hostile input gets a second net
        raise FeedParseError("parse_failed", f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not parsed.get("version") and not parsed.get("entries"):
        why = parsed.get("bozo_exception")
        raise FeedParseError(
            "not_a_feed", f"{type(why).__name__}: {str(why)[:200]}" if why else "no feed found"
        )
    feed = parsed.get("feed") or {}
    lang = feed.get("language") if isinstance(feed.get("language"), str) else None
    entries: list[Entry] = []
    skipped: dict[str, int] = {}
    ids: set[str] = set()
    for entry in list(parsed.get("entries") or [])[:max_items]:
        link = resolve(feed_url, entry.get("link"))
        guid = entry.get("id") if isinstance(entry.get("id"), str) else None
        entry_id = article_id(link, guid, feed_url)
        if entry_id is None:
            skipped["no_id"] = skipped.get("no_id", 0) + 1
            continue
        if entry_id in ids:
            continue  # the same story twice in one document
        ids.add(entry_id)
        published = iso_time(entry.get("published_parsed")) or iso_time(entry.get("updated_parsed"))
        entries.append(
            Entry(
                id=entry_id,
                link=link,
                title=_one_line(entry.get("title"), MAX_TITLE_CHARS),
                summary=_entry_text(entry),
                published_at=published,
                guid=guid,
            )
        )
    return ParsedFeed(_one_line(feed.get("title"), MAX_TITLE_CHARS), lang, entries, skipped)
