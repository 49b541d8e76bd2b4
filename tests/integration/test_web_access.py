"""The live page's server over real sockets (no Kafka but for the last): Host check, token, limits, slow pages."""

import base64
import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from stream.schemas import SourceRef
from stream.subscribers.web import Follower, Hub, WebOptions, make_server

TOKEN = "a-long-random-test-token-0123456789"


@contextlib.contextmanager
def serving(hub: Hub, **options: Any) -> Iterator[int]:
    """The page's server on a free loopback port, in this process; yields the port."""
    server = make_server(WebOptions("unused:9092", port=0, **options), hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def get(port: int, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        for name, value in {"Host": f"127.0.0.1:{port}", **headers}.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read() if path != "/events" else b""
        return response.status, dict(response.getheaders()), body
    finally:
        connection.close()


def test_a_page_loaded_under_another_name_is_refused_dns_rebinding() -> None:
    with serving(Hub(None), allowed_hosts=("wire.example.org",)) as port:
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io"):
            status, _, body = get(port, "/api/state", Host=host)
            assert status == 403, host
            assert b"--allowed-host" in body
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "wire.example.org"):
            assert get(port, "/api/state", Host=host)[0] == 200, host


def test_with_a_token_every_request_but_healthz_must_carry_it() -> None:
    with serving(Hub(None), token=TOKEN) as port:
        status, headers, _ = get(port, "/")
        assert status == 401
        assert headers["WWW-Authenticate"].startswith('Basic realm="wirewatch"')
        assert get(port, "/api/state", Authorization="Bearer wrong-token-0123456789")[0] == 401
        assert get(port, "/events")[0] == 401
        assert get(port, "/healthz")[0] == 200
        assert get(port, "/api/state", Authorization=f"Bearer {TOKEN}")[0] == 200
        basic = base64.b64encode(f"me:{TOKEN}".encode()).decode()
        status, headers, body = get(port, "/", Authorization=f"Basic {basic}")
        assert status == 200
        assert b"<script>" in body
        policy = headers["Content-Security-Policy"]
        assert "script-src 'sha256-" in policy
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]


def test_event_streams_are_capped() -> None:
    with serving(Hub(None, max_clients=2), max_clients=2) as port:
        streams = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        try:
            for stream in streams:
                stream.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                assert stream.recv(100).startswith(b"HTTP/1.1 200")
            assert get(port, "/events")[0] == 503
        finally:
            for stream in streams:
                stream.close()
        deadline = time.monotonic() + 10
        while get(port, "/events")[0] != 200:
            assert time.monotonic() < deadline, "closed streams free their places"
            time.sleep(0.1)


def test_a_page_that_stops_reading_has_its_stream_ended_so_that_it_reconnects() -> None:
    hub = Hub(None, queue_size=8)
    with serving(hub) as port:
        page = socket.socket()
        # A small receive buffer, set before connecting: the server's writes block soon.
        page.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        page.settimeout(30)
        page.connect(("127.0.0.1", port))
        page.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        deadline = time.monotonic() + 30
        while not hub._clients:
            assert time.monotonic() < deadline, "the page subscribed"
            time.sleep(0.05)
        (client,) = hub._clients
        sent = 0
        while not client.dropped.is_set():
            assert sent < 5000, "the queue of a page that does not read filled"
            hub.alert({"id": f"a{sent}", "segments": [{"text": "x" * 20_000, "mark": False}]})
            sent += 1
        received = b""
        try:
            while chunk := page.recv(1 << 16):  # the stream ends, rather than going on with keep-alives
                received += chunk
        except TimeoutError:
            pytest.fail("the stream of a page that fell behind was kept open")
        finally:
            page.close()
    assert received.startswith(b"HTTP/1.1 200")
    assert received.rstrip().endswith(b'event: dropped\ndata: {"reason": "the page fell behind"}')
    assert b"retry: 2000" in received


def test_an_alert_naming_another_topic_has_its_text_left_unread(kafka_bootstrap: str) -> None:
    follower = Follower(WebOptions(kafka_bootstrap, input_topic="articles"), Hub(None))
    try:
        assert follower.article_text(SourceRef(topic="secrets", partition=0, offset=0), timeout=5) is None
        assert follower.articles.assignment() == [], "the other topic was not even assigned"
    finally:
        for consumer in (follower.consumer, follower.articles, follower.committed):
            consumer.close()
