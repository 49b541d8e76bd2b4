"""The `feed` command's flags: importable without the feed extra, so `wirewatch --help` lists it."""

import argparse
from pathlib import Path
from typing import Any

from stream.feed.settings import add_arguments


def add_command(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", handler: Any) -> None:
    p = sub.add_parser(
        "feed",
        help="poll RSS/Atom/RDF feeds, extract each new item's article text, produce it to the articles topic",
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
    p.set_defaults(handler=handler)
