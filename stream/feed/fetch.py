"""The polite HTTP client: every fetch has timeouts, a size limit, a per-host concurrency limit
and a clear User-Agent; redirects are followed by hand, and only to http(s) URLs.

Errors are FetchError with a short reason (the `errors` metric's label) and, for 429 and 503,
the server's Retry-After in seconds, so that the caller waits at least that long.
"""

import email.utils
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from urllib.parse import urljoin, urlsplit

import httpx

from stream.feed.urls import fetchable

# A Retry-After above this is taken as this: a hostile or broken server must not park a feed for a year.
MAX_RETRY_AFTER_S = 24 * 3600.0


class FetchError(Exception):
    def __init__(self, reason: str, detail: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after
        self.status = status


@dataclass
class Response:
    url: str  # after redirects
    status: int  # 200 or 304
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when.timestamp() - (time.time() if now is None else now)
    return min(max(delta, 0.0), MAX_RETRY_AFTER_S)


def host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}"


class Fetcher:
    """Thread-safe; one per process. The per-host limit holds across every caller."""

    def __init__(
        self,
        user_agent: str,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
        deadline_s: float = 30.0,
        per_host: int = 2,
        max_redirects: int = 5,
    ) -> None:
        self.user_agent = user_agent
        self.deadline_s = deadline_s
        self.per_host = per_host
        self.max_redirects = max_redirects
        timeout = httpx.Timeout(
            connect=connect_timeout_s, read=read_timeout_s, write=read_timeout_s, pool=deadline_s
        )
        # No proxies or netrc from the environment (trust_env=False): the feed list decides where we go.
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
        )
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._not_before: dict[str, float] = {}

    def close(self) -> None:
        self._client.close()

    def host_wait(self, url: str) -> float:
        """Seconds until the host of url may be asked again (after a 429/503 with Retry-After)."""
        with self._lock:
            return max(0.0, self._not_before.get(host_key(url), 0.0) - time.monotonic())

    def _back_off_host(self, url: str, seconds: float) -> None:
        key = host_key(url)
        with self._lock:
            self._not_before[key] = max(self._not_before.get(key, 0.0), time.monotonic() + seconds)

    @contextmanager
    def _slot(self, url: str) -> Iterator[None]:
        key = host_key(url)
        with self._lock:
            slot = self._slots.setdefault(key, threading.BoundedSemaphore(self.per_host))
        if not slot.acquire(timeout=self.deadline_s):
            raise FetchError("host_busy", f"no free connection to {key} within {self.deadline_s:g} s")
        try:
            yield
        finally:
            slot.release()

    def get(
        self,
        url: str,
        max_bytes: int,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "*/*",
    ) -> Response:
        """GET url, following at most max_redirects http(s) redirects; 200 or 304, else FetchError."""
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        started = time.monotonic()
        current = url
        for _ in range(self.max_redirects + 1):
            if fetchable(current) is None:
                raise FetchError("bad_url", "not an http(s) URL")
            wait = self.host_wait(current)
            if wait > 0:
                raise FetchError(
                    "host_backoff", f"the host asked to wait {wait:.0f} s more", retry_after=wait
                )
            with self._slot(current):
                status, response_headers, body = self._one(current, headers, max_bytes, started)
            if status in (301, 302, 303, 307, 308):
                location = response_headers.get("location")
                if not location:
                    raise FetchError("bad_redirect", f"HTTP {status} without a Location", status=status)
                try:
                    target = urljoin(current, location.strip())
                except ValueError:
                    target = ""
                if fetchable(target) is None:
                    raise FetchError("bad_redirect", "a redirect to something other than an http(s) URL")
                current = target
                continue
            if status in (200, 304):
                return Response(current, status, body, response_headers)
            wait_s = retry_after(response_headers.get("retry-after"))
            if status in (429, 503) and wait_s is not None:
                self._back_off_host(current, wait_s)
            reason = "http_429" if status == 429 else ("http_5xx" if status >= 500 else "http_4xx")
            raise FetchError(reason, f"HTTP {status}", retry_after=wait_s, status=status)
        raise FetchError("too_many_redirects", f"more than {self.max_redirects} redirects")

    def _one(
        self, url: str, headers: dict[str, str], max_bytes: int, started: float
    ) -> tuple[int, dict[str, str], bytes]:
        remaining = self.deadline_s - (time.monotonic() - started)
        if remaining <= 0:
            raise FetchError("timeout", f"over the {self.deadline_s:g} s deadline")
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                lowered = {k.lower(): v for k, v in response.headers.items()}
                if response.status_code != 200:
                    return response.status_code, lowered, b""
                declared = lowered.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError("too_large", f"{declared} bytes declared, limit {max_bytes}")
                chunks: list[bytes] = []
                size = 0
                # iter_bytes decompresses: the limit holds on what we keep, so a gzip bomb stops too.
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError("too_large", f"over {max_bytes} bytes")
                    if time.monotonic() - started > self.deadline_s:
                        raise FetchError("timeout", f"over the {self.deadline_s:g} s deadline")
                    chunks.append(chunk)
                return 200, lowered, b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise FetchError("timeout", type(exc).__name__) from None
        except httpx.DecodingError:
            raise FetchError("bad_encoding", "the content encoding does not decode") from None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
            raise FetchError("network", f"{type(exc).__name__}: {str(exc)[:200]}") from None
