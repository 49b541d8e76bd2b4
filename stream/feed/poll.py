"""Polling: each feed on its own interval (with jitter), conditional GETs, growing backoff for a
feed that fails, and one article per new item.

A feed's ETag and Last-Modified are kept only once every new item of that document is
acknowledged by the broker: a poll that lost an article is followed by a full GET, never by a
304 that would hide the item for good. A failing feed is retried after backoff_s, doubled per
failure up to max_backoff_s (and never sooner than the server's Retry-After); the others go on.
"""

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from stream.feed.extract import Page, detect_lang, extract_page, normalise_lang
from stream.feed.fetch import Fetcher, FetchError
from stream.feed.metrics import FeedMetrics
from stream.feed.parse import Entry, FeedParseError, ParsedFeed, parse_feed
from stream.feed.robots import Robots
from stream.feed.seen import SeenIndex
from stream.feed.settings import FeedSettings
from stream.feed.sink import ArticleSink, Delivery
from stream.feed.sources import Feed
from stream.feed.urls import article_id, same_site

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
# A page whose host asked for a pause is waited for when the pause is this short; else the summary is used.
MAX_PAGE_WAIT_S = 10.0


@dataclass
class FeedState:
    feed: Feed
    next_due: float = 0.0  # monotonic
    etag: str | None = None
    last_modified: str | None = None
    failures: int = 0
    last_ok: float | None = None  # monotonic
    last_error: str | None = None
    polls: int = 0
    active: bool = True


@dataclass(frozen=True)
class Built:
    article: dict[str, Any]
    item_id: str  # the entry's id, which the article's (a canonical URL) may differ from


class Poller:
    def __init__(
        self,
        settings: FeedSettings,
        fetcher: Fetcher,
        seen: SeenIndex,
        sink: ArticleSink,
        metrics: FeedMetrics,
        *,
        robots: Robots | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.seen = seen
        self.sink = sink
        self.metrics = metrics
        self.robots = (
            robots
            if robots is not None
            else (Robots(fetcher, settings.user_agent) if settings.robots else None)
        )
        self._rng = rng or random.Random()
        self._clock = clock
        self._lock = threading.Lock()
        self.states: dict[str, FeedState] = {}
        self._log = structlog.get_logger("wirewatch.feed")

    # The feed set -----------------------------------------------------------------------------

    def set_feeds(self, feeds: list[Feed]) -> None:
        """Poll these feeds from now on; a feed new to the set is due at once."""
        with self._lock:
            keys = {f.key for f in feeds}
            for key, state in list(self.states.items()):
                if key not in keys:
                    state.active = False
                    del self.states[key]
            for feed in feeds:
                self.states.setdefault(feed.key, FeedState(feed, next_due=self._clock()))
            self.metrics.feeds.set(len(self.states))

    def _jittered(self, seconds: float) -> float:
        j = self.settings.jitter
        return seconds * (1 + self._rng.uniform(-j, j))

    def backoff(self, failures: int, retry_after: float | None) -> float:
        """Seconds before the next try of a feed that failed `failures` times in a row."""
        s = self.settings
        wait = self._jittered(min(s.max_backoff_s, s.backoff_s * 2 ** min(failures - 1, 30)))
        return max(wait, retry_after or 0.0)

    # One poll ---------------------------------------------------------------------------------

    def poll(self, state: FeedState) -> None:
        """Read a feed once and publish its new items. Never raises: failures are counted and logged."""
        feed, s = state.feed, self.settings
        log = self._log.bind(feed=feed.url)
        state.polls += 1
        try:
            response = self.fetcher.get(
                feed.url,
                s.max_feed_bytes,
                etag=state.etag,
                last_modified=state.last_modified,
                accept=FEED_ACCEPT,
            )
        except FetchError as exc:
            self.metrics.fetch("feed", "error")
            self._failed(state, exc.reason, exc.detail, exc.retry_after, log)
            return
        if response.status == 304:
            self.metrics.fetch("feed", "not_modified")
            self._succeeded(state, log, new=0, not_modified=True)
            return
        self.metrics.fetch("feed", "ok")
        parsed = self.parse(state, response.body, response.headers.get("content-type"), response.url)
        if parsed is None:
            return
        complete, new = self.publish(parsed, feed, log)
        if complete:
            state.etag, state.last_modified = response.etag, response.last_modified
        else:
            state.etag = state.last_modified = None  # next time a full GET: nothing left behind
        self._succeeded(state, log, new=new, not_modified=False)

    def parse(self, state: FeedState, body: bytes, content_type: str | None, url: str) -> ParsedFeed | None:
        """The entries of a feed document; None (the feed's failure counted and logged) when it is none."""
        log = self._log.bind(feed=state.feed.url)
        try:
            parsed = parse_feed(body, content_type, url, self.settings.max_items_per_feed)
        except FeedParseError as exc:
            self._failed(state, exc.reason, exc.detail, None, log)
        except Exception as exc:  # a parser bug must cost one feed one poll, never the process
            self._failed(state, "parse_failed", f"{type(exc).__name__}: {str(exc)[:200]}", None, log)
        else:
            for reason, n in parsed.skipped.items():
                self.metrics.error(reason, n)
                log.warning("feed entries skipped", reason=reason, entries=n)
            return parsed
        return None

    def publish(self, parsed: ParsedFeed, feed: Feed, log: Any) -> tuple[bool, int]:
        """One article per new entry: (every one acknowledged or not publishable, how many were new)."""
        self.metrics.seen(len(parsed.entries))
        new = [e for e in parsed.entries if self.seen.claim(e.id)]
        self.metrics.new(len(new))
        delivery = Delivery()
        for entry in new:
            try:
                built = self.build(entry, parsed, feed, log)
            except Exception as exc:  # one hostile item must not cost the feed its other items
                self.seen.release(entry.id)
                self.metrics.error("build_failed")
                log.error("item failed", item=entry.id, error=f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            if built is None:
                continue
            self._send(built, entry, feed, delivery, log)
        if not delivery.wait(self.settings.delivery_timeout_s):
            log.error("articles not acknowledged in time", pending=delivery.pending)
            return False, len(new)
        return delivery.failed == 0, len(new)

    def _send(self, built: Built, entry: Entry, feed: Feed, delivery: Delivery, log: Any) -> None:
        article = built.article
        ids = (article["id"], entry.id) if article["id"] != entry.id else (entry.id,)
        delay = _age_s(article.get("published_at"))

        def done(error: str | None) -> None:
            if error is None:
                self.seen.confirm(*ids)
                self.metrics.produced(article.get("lang"), delay)
            else:
                self.seen.release(*ids)
                self.metrics.error("produce_failed")
                log.error("article refused by Kafka", item=entry.id, error=error)
            delivery.finish(error is None)

        delivery.add()
        self.sink.send(article, entry.id, feed.url, done)

    def build(self, entry: Entry, parsed: ParsedFeed, feed: Feed, log: Any) -> Built | None:
        """The article of an entry: page text when it can be had, else the feed's summary, else its title."""
        s = self.settings
        page, why = self._page(entry, log) if s.fetch_pages else (None, "disabled")
        article_key = entry.id
        if page is not None and page.canonical and entry.link and same_site(page.canonical, entry.link):
            canonical = article_id(page.canonical, None, feed.url)
            if canonical is not None and canonical != entry.id:
                if not self.seen.claim(canonical):
                    # Published already under its canonical URL (by another feed, or before a restart).
                    self.seen.confirm(entry.id)
                    return None
                article_key = canonical
        if page is not None and (len(page.text) >= s.min_page_chars or len(page.text) >= len(entry.summary)):
            text, source = page.text, "page"
            self.metrics.extracted()
        else:
            if page is not None:
                why = "page_text_short"
            text, source = entry.summary, "summary"
            if not text and entry.title:
                text, source = entry.title, "title"
            self.metrics.fallback(why or "no_page")
        if not text:
            self.seen.release(article_key)
            self.seen.confirm(entry.id)  # nothing to publish: not asked for again while this process runs
            self.metrics.error("empty_text")
            log.warning("item has no text", item=entry.id)
            return None
        text = text[: s.max_text_chars]
        article: dict[str, Any] = {
            "id": article_key,
            "title": entry.title or (page.title if page else None),
            "text": text,
            "url": entry.link,
            "published_at": entry.published_at or (page.published_at if page else None),
            "source": parsed.title or feed.url,
            "lang": detect_lang(text, normalise_lang(parsed.lang)),
            "text_source": source,
            "feed": feed.url,
            "fetched_at": datetime.now(UTC).isoformat(),
        }
        return Built(article, entry.id)

    def _page(self, entry: Entry, log: Any) -> tuple[Page | None, str | None]:
        if entry.link is None:
            return None, "no_link"
        if self.robots is not None and not self.robots.allowed(entry.link):
            return None, "robots"
        wait = self.fetcher.host_wait(entry.link)
        if 0 < wait <= MAX_PAGE_WAIT_S:
            time.sleep(wait)
        try:
            response = self.fetcher.get(entry.link, self.settings.max_page_bytes, accept=PAGE_ACCEPT)
        except FetchError as exc:
            self.metrics.fetch("page", "error")
            self.metrics.error(f"page_{exc.reason}")
            log.info("page not fetched; the summary stands in", item=entry.id, reason=exc.reason)
            return None, exc.reason
        self.metrics.fetch("page", "ok")
        page = extract_page(response.body, response.url)
        if page is None:
            return None, "no_text"
        return page, None

    # Bookkeeping -------------------------------------------------------------------------------

    def _failed(
        self, state: FeedState, reason: str, detail: str, retry_after: float | None, log: Any
    ) -> None:
        state.failures += 1
        state.last_error = reason
        wait = self.backoff(state.failures, retry_after)
        state.next_due = self._clock() + wait
        self.metrics.error(f"feed_{reason}")
        self.metrics.failures.labels(state.feed.url).set(state.failures)
        log.warning(
            "feed failed", reason=reason, detail=detail, failures=state.failures, retry_in_s=round(wait, 1)
        )

    def _succeeded(self, state: FeedState, log: Any, *, new: int, not_modified: bool) -> None:
        if state.failures:
            log.info("feed recovered", after_failures=state.failures)
        state.failures = 0
        state.last_error = None
        state.last_ok = self._clock()
        state.next_due = state.last_ok + self._jittered(self.settings.interval_s)
        self.metrics.failures.labels(state.feed.url).set(0)
        log.debug("feed polled", new=new, not_modified=not_modified)

    # The loop ----------------------------------------------------------------------------------

    def refresh_gauges(self) -> None:
        now = self._clock()
        with self._lock:
            states = list(self.states.values())
        for state in states:
            since = state.last_ok if state.last_ok is not None else self.metrics.started
            self.metrics.lag.labels(state.feed.url).set(max(0.0, now - since))
        self.metrics.failing.set(sum(1 for st in states if st.failures))

    def run(self, stop: threading.Event, *, once: bool = False) -> None:
        """Poll until stop is set; with once, every feed one time, then return."""
        started_polls: set[str] = set()
        with ThreadPoolExecutor(self.settings.workers, thread_name_prefix="feed") as pool:
            running: dict[str, Future[None]] = {}
            while not stop.is_set():
                now = self._clock()
                with self._lock:
                    due = [
                        st
                        for key, st in self.states.items()
                        if key not in running and st.next_due <= now and not (once and key in started_polls)
                    ]
                for state in due:
                    started_polls.add(state.feed.key)
                    running[state.feed.key] = pool.submit(self._guarded, state)
                for key in [k for k, f in running.items() if f.done()]:
                    del running[key]
                with self._lock:
                    pending_once = once and any(k not in started_polls for k in self.states)
                if once and not running and not pending_once:
                    return
                self.refresh_gauges()
                stop.wait(0.05 if running or due else 0.2)
            for future in running.values():
                future.cancel()

    def _guarded(self, state: FeedState) -> None:
        try:
            self.poll(state)
        except Exception as exc:  # poll is total; this keeps a bug in it from killing the worker silently
            self._failed(
                state, "bug", f"{type(exc).__name__}: {exc}", None, self._log.bind(feed=state.feed.url)
            )


def _age_s(published_at: object) -> float | None:
    if not isinstance(published_at, str):
        return None
    try:
        when = datetime.fromisoformat(published_at)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds()
