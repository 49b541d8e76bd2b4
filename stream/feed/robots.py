"""robots.txt for article page fetches (RFC 9309), one cached copy per host.

A robots.txt that is missing (4xx) allows everything; one that cannot be had (5xx, timeout)
disallows everything for a while, as the RFC asks, and the item falls back to its summary.
"""

import threading
import time
from urllib.parse import urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

from stream.feed.fetch import Fetcher, FetchError, host_key

MAX_ROBOTS_BYTES = 512_000  # RFC 9309 asks crawlers to read at least 500 KiB
TTL_S = 3600.0
UNREACHABLE_TTL_S = 300.0


class Robots:
    def __init__(self, fetcher: Fetcher, user_agent: str) -> None:
        self._fetcher = fetcher
        # robots.txt groups are matched by product token: the User-Agent's first word.
        self._agent = user_agent.split("/")[0].split()[0] if user_agent.strip() else "*"
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, RobotFileParser | bool]] = {}
        self._host_locks: dict[str, threading.Lock] = {}

    def allowed(self, url: str) -> bool:
        key = host_key(url)
        with self._lock:
            host_lock = self._host_locks.setdefault(key, threading.Lock())
        with host_lock:  # one robots.txt fetch per host at a time, however many pages wait on it
            now = time.monotonic()
            cached = self._cache.get(key)
            if cached is None or cached[0] <= now:
                cached = self._load(url, now)
                self._cache[key] = cached
        rules = cached[1]
        return rules if isinstance(rules, bool) else rules.can_fetch(self._agent, url)

    def _load(self, url: str, now: float) -> tuple[float, RobotFileParser | bool]:
        parts = urlsplit(url)
        robots_url = urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))
        try:
            response = self._fetcher.get(robots_url, MAX_ROBOTS_BYTES, accept="text/plain")
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                return now + TTL_S, True
            return now + UNREACHABLE_TTL_S, False
        parser = RobotFileParser()
        parser.parse(response.body.decode("utf-8", "replace").splitlines())
        return now + TTL_S, parser
