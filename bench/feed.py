"""`wirewatch feed` throughput: a local site of 200 feeds x 50 items (pages from the stream file),
one `--once` pass into the embedded broker; prints JSON. Run on purpose: python -m bench.feed
"""

import argparse
import json
import os
import platform
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from stream.devtools.broker import EmbeddedBroker
from stream.devtools.feedserver import FeedServer, read_jsonl, site_from_articles
from stream.feed.cli import run_feed
from stream.feed.settings import load_feed_settings
from stream.feed.sources import feed_list
from stream.logs import configure_logging


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor()
    return next(
        (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.feed", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/stream.jsonl"))
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--per-host", type=int, default=16, help="every feed is on one local host")
    args = parser.parse_args()
    configure_logging("console", "warning")
    need = args.feeds * args.items
    articles: list[dict[str, Any]] = read_jsonl(args.data, need)
    if not articles:
        raise SystemExit(f"{args.data}: no articles (make data)")
    # Fewer articles than items: reuse them under new ids, so that every item is a distinct story.
    articles = [{**articles[i % len(articles)], "id": f"b{i}"} for i in range(need)]
    with EmbeddedBroker() as broker, FeedServer() as site:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.create_topics([NewTopic("articles", num_partitions=3, replication_factor=1)])[
            "articles"
        ].result(20)
        time.sleep(1.0)
        urls = site_from_articles(site, articles, args.feeds, args.items)
        settings = load_feed_settings(
            bootstrap_servers=broker.bootstrap_servers,
            metrics_port=0,
            workers=args.workers,
            per_host=args.per_host,
            log_level="warning",
        )
        started = time.perf_counter()
        metrics = run_feed(settings, feed_list([], urls), once=True, stop=threading.Event())
        seconds = time.perf_counter() - started
    totals = metrics.snapshot()
    print(
        json.dumps(
            {
                "feeds": len(urls),
                "items": need,
                "articles": totals.get("produced", 0),
                "page_text": totals.get("extracted", 0),
                "summaries": totals.get("fallbacks", 0),
                "errors": totals.get("errors", 0),
                "seconds": round(seconds, 2),
                "articles_per_s": round(totals.get("produced", 0) / seconds, 1),
                "workers": args.workers,
                "per_host": args.per_host,
                "cpu": _cpu(),
                "cores": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
