"""`wirewatch feed`: the command, its progress line and its metrics endpoint.

wirewatch.cli's command table lists it (with its one-line help) and calls register; the feed
extra's libraries are imported with this module, so without them the command says what to install.
"""

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from stream.feed.fetch import Fetcher
from stream.feed.metrics import FeedMetrics
from stream.feed.poll import Poller
from stream.feed.seen import SeenIndex, SeenReader
from stream.feed.settings import FeedSettings, add_arguments, from_arguments
from stream.feed.sink import ArticleSink
from stream.feed.sources import Feed, feed_list


def progress_line(metrics: FeedMetrics, poller: Poller, seen: SeenIndex) -> str:
    t = metrics.snapshot()
    feeds = len(poller.states)
    failing = sum(1 for st in list(poller.states.values()) if st.failures)
    return (
        f"feeds {feeds} ({failing} failing) | items {t.get('seen', 0)} seen, {t.get('new', 0)} new | "
        f"articles {t.get('produced', 0)} ({t.get('extracted', 0)} page text, {t.get('fallbacks', 0)} summary) | "
        f"errors {t.get('errors', 0)} | known ids {len(seen)}"
    )


def _progress(stop: threading.Event, line: Any) -> None:
    while not stop.wait(1.0):
        sys.stderr.write("\r" + line()[:200].ljust(120))
        sys.stderr.flush()


def run_feed(
    settings: FeedSettings, feeds: list[Feed], *, once: bool, stop: threading.Event, progress: bool = False
) -> FeedMetrics:
    """Poll the feeds into the articles topic until stop is set (or, with once, after one pass)."""
    log = structlog.get_logger("wirewatch.feed")
    metrics = FeedMetrics()
    server = None
    if settings.metrics_port:
        from prometheus_client import start_http_server

        server, _ = start_http_server(settings.metrics_port, settings.metrics_host, registry=metrics.registry)
    seen = SeenIndex()
    reader = SeenReader(settings.bootstrap_servers, settings.articles_topic, settings.kafka, seen)
    fetcher = Fetcher(
        settings.user_agent,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        deadline_s=settings.fetch_deadline_s,
        per_host=settings.per_host,
        max_redirects=settings.max_redirects,
    )

    def kafka_error(error: Any) -> None:
        metrics.error(f"kafka_{error.name()}".lower())
        log.warning("kafka error", error=error.name(), reason=error.str())

    sink = ArticleSink(settings.bootstrap_servers, settings.articles_topic, settings.kafka, kafka_error)
    ticker = threading.Event()
    try:
        started = time.monotonic()
        marks = reader.start(settings.startup_timeout_s)
        # Nothing is polled before every article already in the topic is known: that is the no-duplicates rule.
        while not reader.wait(marks, 5.0):
            if reader.error:
                raise RuntimeError(f"reading the articles topic failed: {reader.error}")
            log.info("reading back the articles topic", read=reader.read)
            if stop.is_set():
                return metrics
        log.info(
            "feed starting",
            feeds=len(feeds),
            known_ids=len(seen),
            read_back_s=round(time.monotonic() - started, 2),
        )
        poller = Poller(settings, fetcher, seen, sink, metrics)
        poller.set_feeds(feeds)
        if progress:
            threading.Thread(
                target=_progress, args=(ticker, lambda: progress_line(metrics, poller, seen)), daemon=True
            ).start()
        poller.run(stop, once=once)
        left = sink.close(settings.delivery_timeout_s)
        if left:
            log.error("articles still unacknowledged at exit", messages=left)
        poller.refresh_gauges()
        if progress:
            sys.stderr.write("\r" + progress_line(metrics, poller, seen)[:200].ljust(120) + "\n")
        log.info("feed stopped", **dict(sorted(metrics.snapshot().items())))
        return metrics
    finally:
        ticker.set()
        reader.stop()
        fetcher.close()
        if server is not None:
            server.shutdown()


def main(args: argparse.Namespace) -> int:
    from stream.errors import ConfigError
    from stream.logs import configure_logging

    settings = from_arguments(args)
    configure_logging(settings.log_format, settings.log_level)
    feeds = feed_list(list(args.feeds), list(args.feed))
    if not feeds:
        raise ConfigError("no feeds: pass --feeds FILE (one URL a line, or OPML) or --feed URL")
    stop = threading.Event()
    progress = sys.stderr.isatty() if args.progress is None else bool(args.progress)
    try:
        run_feed(settings, feeds, once=args.once, stop=stop, progress=progress)
    except KeyboardInterrupt:
        stop.set()
        raise
    return 0


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "feed",
        description=(
            "Read the feeds of --feeds FILE (one URL a line, or OPML) and --feed URL, fetch each new item's "
            "page for its main text (the feed's summary when the page cannot be had), and produce one "
            "article per new item. What was published is read back from the articles topic at start: no "
            "duplicates across restarts. Every option also reads from its WIREWATCH_FEED_* variable."
        ),
    )
    p.add_argument(
        "--feeds", type=Path, action="append", default=[], metavar="FILE", help="feed list; repeatable"
    )
    p.add_argument("--feed", action="append", default=[], metavar="URL", help="one feed; repeatable")
    p.add_argument("--once", action="store_true", help="poll every feed once, wait for Kafka, exit")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the progress line on stderr (default: when stderr is a terminal)",
    )
    add_arguments(p)
    p.set_defaults(handler=main)
