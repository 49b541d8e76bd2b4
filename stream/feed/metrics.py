"""The feed's Prometheus metrics, and the totals the progress line shows."""

import threading
import time
from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class FeedMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self._lock = threading.Lock()
        self.totals: Tally[str] = Tally()
        self.error_reasons: Tally[str] = Tally()
        self._seen = Counter("wirewatch_feed_items_seen", "Entries read in feed documents", registry=r)
        self._new = Counter("wirewatch_feed_items_new", "Entries not published before", registry=r)
        self._fetches = Counter(
            "wirewatch_feed_fetches",
            "HTTP fetches by kind (feed, page) and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self._extracted = Counter(
            "wirewatch_feed_pages_extracted", "Articles whose text was extracted from their page", registry=r
        )
        self._fallbacks = Counter(
            "wirewatch_feed_fallbacks",
            "Articles whose text is the feed's summary (or title), by why the page was not used",
            ["reason"],
            registry=r,
        )
        self._produced = Counter(
            "wirewatch_feed_articles_produced", "Articles acknowledged by the broker", registry=r
        )
        self._errors = Counter("wirewatch_feed_errors", "Failures by reason", ["reason"], registry=r)
        self._lang = Counter(
            "wirewatch_feed_articles_by_lang", "Articles produced by detected language", ["lang"], registry=r
        )
        self.lag = Gauge(
            "wirewatch_feed_lag_seconds",
            "Seconds since the feed was last read successfully (since start when never)",
            ["feed"],
            registry=r,
        )
        self.failures = Gauge(
            "wirewatch_feed_consecutive_failures", "Failed polls of the feed in a row", ["feed"], registry=r
        )
        self.failing = Gauge("wirewatch_feeds_failing", "Feeds whose last poll failed", registry=r)
        self.feeds = Gauge("wirewatch_feeds", "Feeds this process polls", registry=r)
        self.delay = Histogram(
            "wirewatch_feed_item_delay_seconds",
            "From an item's published_at to its article's acknowledgement",
            buckets=(60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 24 * 3600, 7 * 24 * 3600),
            registry=r,
        )
        self.started = time.monotonic()

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.totals[name] += n

    def seen(self, n: int) -> None:
        self._seen.inc(n)
        self._count("seen", n)

    def new(self, n: int) -> None:
        self._new.inc(n)
        self._count("new", n)

    def fetch(self, kind: str, outcome: str) -> None:
        self._fetches.labels(kind, outcome).inc()
        self._count(f"{kind}_{outcome}")

    def extracted(self) -> None:
        self._extracted.inc()
        self._count("extracted")

    def fallback(self, reason: str) -> None:
        self._fallbacks.labels(reason).inc()
        self._count("fallbacks")

    def produced(self, lang: str | None, delay_s: float | None) -> None:
        self._produced.inc()
        self._lang.labels(lang or "unknown").inc()
        if delay_s is not None and delay_s >= 0:
            self.delay.observe(delay_s)
        self._count("produced")

    def error(self, reason: str, n: int = 1) -> None:
        self._errors.labels(reason).inc(n)
        with self._lock:
            self.totals["errors"] += n
            self.error_reasons[reason] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.totals)
