"""A local news site for tests, the bench and the demo: RSS feeds and article pages, no internet.

`python -m stream.devtools.feedserver data/stream.jsonl` serves the stream file's articles as
RSS 2.0 feeds (/feeds/N.xml) with one HTML page per article (/articles/ID.html), answers
conditional GETs with 304, and prints a feed list for `wirewatch feed --feeds`. Tests script
single routes instead (a status, a Retry-After, a hang) through `FeedServer.routes`.
"""

import argparse
import hashlib
import html
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0  # sleep before answering (a hanging server)
    conditional: bool = True  # answer 304 to a matching If-None-Match / If-Modified-Since


# A route: a fixed Reply, or a list of Replies answered in turn (the last one repeats).
Route = Reply | list[Reply]


class FeedServer:
    """A threading HTTP server on 127.0.0.1; `routes` maps a path to its reply, `hits` counts requests."""

    def __init__(self, port: int = 0) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        # time.monotonic() of each request as it arrived, beside `requests`: a test that reads the
        # requests later cannot tell from its own clock how far apart they came.
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                reply = server._reply(path, dict(self.headers.items()))
                if reply.hang_s:
                    server._stopping.wait(reply.hang_s)
                etag = reply.headers.get("ETag")
                if (
                    reply.status == 200
                    and reply.conditional
                    and etag
                    and self.headers.get("If-None-Match") == etag
                ):
                    self._send(Reply(304, b"", headers={"ETag": etag}))
                    return
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                try:
                    self.send_response(reply.status)
                    if reply.status != 304:
                        self.send_header("Content-Type", reply.content_type)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout): that is what some tests are about

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="feedserver", daemon=True)

    def _reply(self, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            n = self.hits.get(path, 0)
            self.hits[path] = n + 1
            self.requests.append((path, headers))
            self.arrivals.append(time.monotonic())
            route = self.routes.get(path)
        if route is None:
            return Reply(404, b"not found\n", "text/plain")
        if isinstance(route, list):
            return route[min(n, len(route) - 1)]
        return route

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> "FeedServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FeedServer":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def static(body: bytes, content_type: str) -> Reply:
    """A document with an ETag, answered 304 when the client already has it."""
    return Reply(200, body, content_type, {"ETag": etag_of(body)})


def article_page(title: str, text: str, published_at: str | None = None) -> bytes:
    """An article page as news sites make them: navigation, the story in <article>, a footer."""
    paragraphs = "".join(f"<p>{html.escape(p)}</p>\n" for p in text.split("\n") if p.strip())
    date = (
        f'<meta property="article:published_time" content="{html.escape(published_at)}">'
        if published_at
        else ""
    )
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>{date}</head>"
        "<body><header><nav><a href='/'>Home</a> <a href='/world'>World</a> <a href='/sport'>Sport</a></nav></header>"
        f"<main><article><h1>{html.escape(title)}</h1>\n{paragraphs}</article></main>"
        "<aside><h2>Most read</h2><ul><li><a href='/x'>Another story</a></li></ul></aside>"
        "<footer><p>Copyright The Local Gazette. All rights reserved.</p></footer></body></html>"
    ).encode()


def rss(title: str, link: str, items: Iterable[dict[str, str]]) -> bytes:
    """An RSS 2.0 document; each item: title, link, guid, description, pubDate (RFC 822)."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>{html.escape(title)}</title><link>{html.escape(link)}</link><description>{html.escape(title)}</description>",
    ]
    for item in items:
        parts.append(
            "<item>" + "".join(f"<{k}>{html.escape(v)}</{k}>" for k, v in item.items() if v) + "</item>"
        )
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


def _summary(text: str, words: int = 40) -> str:
    cut = text.split()
    return " ".join(cut[:words]) + (" ..." if len(cut) > words else "")


def site_from_articles(
    server: FeedServer, articles: list[dict[str, Any]], feeds: int, items: int, now: datetime | None = None
) -> list[str]:
    """Serve the articles as `feeds` RSS feeds of up to `items` items each; returns the feed URLs."""
    now = now or datetime.now(UTC)
    urls = []
    for f in range(feeds):
        chunk = articles[f * items : (f + 1) * items]
        if not chunk:
            break
        entries = []
        for i, article in enumerate(chunk):
            slug = quote(str(article.get("id") or f"{f}-{i}"), safe="")
            path = f"/articles/{slug}.html"
            title = str(article.get("title") or "Untitled")
            text = str(article.get("text") or "")
            published = now - timedelta(minutes=f * items + i)
            server.routes[path] = static(
                article_page(title, text, published.isoformat()), "text/html; charset=utf-8"
            )
            entries.append(
                {
                    "title": title,
                    "link": server.url(path),
                    "guid": server.url(path),
                    "description": _summary(text),
                    "pubDate": format_datetime(published),
                }
            )
        body = rss(f"Local Gazette feed {f}", server.base, entries)
        server.routes[f"/feeds/{f}.xml"] = static(body, "application/rss+xml; charset=utf-8")
        urls.append(server.url(f"/feeds/{f}.xml"))
    server.routes["/robots.txt"] = Reply(200, b"User-agent: *\nAllow: /\n", "text/plain")
    return urls


def read_jsonl(path: Path, limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if len(out) >= limit:
                break
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("text"):
                out.append(record)
    return out


def main(argv: list[str] | None = None, ready: Callable[[FeedServer, list[str]], None] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.devtools.feedserver", description=__doc__)
    parser.add_argument("file", type=Path, help="JSONL articles, e.g. data/stream.jsonl")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    parser.add_argument("--feeds", type=int, default=10, help="feeds to serve (default 10)")
    parser.add_argument("--items", type=int, default=50, help="items per feed (default 50)")
    parser.add_argument("--list", type=Path, help="write the feed URLs to this file, one a line")
    args = parser.parse_args(argv)
    server = FeedServer(args.port)
    urls = site_from_articles(server, read_jsonl(args.file, args.feeds * args.items), args.feeds, args.items)
    if args.list:
        args.list.write_text("".join(u + "\n" for u in urls), encoding="utf-8")
    server.start()
    print(
        f"serving {len(urls)} feeds at {server.base}/feeds/0.xml ...; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    if args.list:
        print(f"feed list: {args.list} (wirewatch feed --feeds {args.list})", file=sys.stderr, flush=True)
    if ready is not None:
        ready(server, urls)
        return 0
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
