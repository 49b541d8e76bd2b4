"""`wirewatch notify` against the real broker and a local webhook that fails on purpose."""

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stream.schemas import Incident, IncidentBest
from stream.subscribers.notify import Notifier, NotifyOptions
from tests.integration.service_harness import ROOT, SESSION_TIMEOUT, committed, consume, produce, until

TIMEOUT = 90.0


def incident(id: str, title: str, reports: int = 1) -> bytes:
    now = datetime.now(UTC)
    return (
        Incident(
            id=id,
            status="open",
            first_seen=now,
            last_seen=now,
            reports=reports,
            outlets=["AP"],
            title=title,
            best=IncidentBest(
                alert_id=f"{id}-a", score=0.97, title=title, publisher="AP", url=None, explanation=None
            ),
            alert_ids=[f"{id}-a"],
            updated_at=now,
        )
        .model_dump_json()
        .encode()
    )


class Webhook:
    """Fails the first `failures` POSTs of each incident with 503, and every POST whose title says poison.

    At each POST it also reads the notifier group's committed offset from the broker: what was
    committed while the notice was still undelivered.
    """

    def __init__(self, failures: int, group: str, topic: str, bootstrap: str) -> None:
        self.failures = failures
        self.seen: dict[str, int] = {}
        self.accepted: list[dict[str, Any]] = []
        self.committed_at_post: list[tuple[str, int]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                offset = committed(bootstrap, group, topic, 1)[0]
                hook.committed_at_post.append((body["incident"]["id"], offset))
                hook.seen[key] = hook.seen.get(key, 0) + 1
                failing = "poison" in body["incident"]["title"] or hook.seen[key] <= hook.failures
                if not failing:
                    hook.accepted.append(body)
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> "Webhook":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def topics(new_topic: Callable[[int], str]) -> tuple[str, str]:
    return new_topic(1), new_topic(1)


def test_notices_are_retried_committed_after_a_2xx_and_dead_lettered_after_the_retries(
    kafka_bootstrap: str, topics: tuple[str, str]
) -> None:
    incidents_topic, dlq = topics
    group = f"notify-{uuid.uuid4().hex}"
    produce(
        kafka_bootstrap,
        incidents_topic,
        [
            (b"inc-1", incident("inc-1", "Car bomb at police station"), None),
            (
                b"inc-1",
                incident("inc-1", "Car bomb at police station", reports=2),
                None,
            ),  # an update: not posted
            (b"inc-2", incident("inc-2", "poison notice"), None),
            (b"inc-3", incident("inc-3", "Hostages taken at embassy"), None),
        ],
    )
    with Webhook(failures=2, group=group, topic=incidents_topic, bootstrap=kafka_bootstrap) as hook:
        options = NotifyOptions(
            bootstrap_servers=kafka_bootstrap,
            webhook=hook.url,
            incidents_topic=incidents_topic,
            dlq_topic=dlq,
            group_id=group,
            retries=3,
            backoff_s=0.05,
            kafka=dict(SESSION_TIMEOUT),
        )
        notifier = Notifier(options)

        def done() -> bool:
            return len(hook.accepted) >= 2 and committed(kafka_bootstrap, group, incidents_topic, 1)[0] >= 4

        thread = threading.Thread(target=notifier.run, kwargs={"stop_after": done}, daemon=True)
        thread.start()
        thread.join(timeout=TIMEOUT)
        assert not thread.is_alive(), "the notifier did not finish in time"

    assert [b["incident"]["id"] for b in hook.accepted] == ["inc-1", "inc-3"]
    assert all(b["text"].startswith("*New incident*") for b in hook.accepted)
    # inc-1: two 503s then a 2xx; inc-2: four 503s (1 + 3 retries); inc-3: two 503s then a 2xx.
    assert [i for i, _ in hook.committed_at_post] == ["inc-1"] * 3 + ["inc-2"] * 4 + ["inc-3"] * 3
    # While a notice was failing its offset was never committed: at-least-once.
    for incident_id, offset_then in hook.committed_at_post:
        position = {"inc-1": 0, "inc-2": 2, "inc-3": 3}[incident_id]
        assert offset_then <= position, f"{incident_id} was committed before the webhook took it"
    (letter,) = consume(kafka_bootstrap, dlq, lambda ms: len(ms) >= 1, TIMEOUT)
    headers = dict(letter.headers())
    assert headers["wirewatch-error"] == b"webhook_failed"
    assert b"HTTP 503 after 4 attempts" in headers["wirewatch-error-detail"]
    assert json.loads(letter.value())["id"] == "inc-2"
    assert committed(kafka_bootstrap, group, incidents_topic, 1)[0] == 4


class Server:
    """A local HTTP server answering every request with `status` (and a Location when it redirects)."""

    def __init__(self, status: int, location: str | None = None) -> None:
        self.requests: list[tuple[str, str]] = []  # (method, path)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.command, self.path))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self.do_POST()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "Server":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_redirect_is_not_followed_retried_and_dead_lettered_never_counted_as_delivered(
    kafka_bootstrap: str, topics: tuple[str, str]
) -> None:
    incidents_topic, dlq = topics
    group = f"notify-{uuid.uuid4().hex}"
    produce(
        kafka_bootstrap, incidents_topic, [(b"inc-1", incident("inc-1", "Car bomb at police station"), None)]
    )
    with Server(200) as elsewhere, Server(302, f"{elsewhere.origin}/collect?token=abc") as hook:
        options = NotifyOptions(
            bootstrap_servers=kafka_bootstrap,
            webhook=f"{hook.origin}/services/T000/B000/XXXX",
            incidents_topic=incidents_topic,
            dlq_topic=dlq,
            group_id=group,
            retries=2,
            backoff_s=0.05,
            kafka=dict(SESSION_TIMEOUT),
        )
        notifier = Notifier(options)
        thread = threading.Thread(
            target=notifier.run,
            kwargs={"stop_after": lambda: committed(kafka_bootstrap, group, incidents_topic, 1)[0] >= 1},
            daemon=True,
        )
        thread.start()
        thread.join(timeout=TIMEOUT)
        assert not thread.is_alive(), "the notifier did not finish in time"
    assert hook.requests == [("POST", "/services/T000/B000/XXXX")] * 3, "posted once and retried twice"
    assert elsewhere.requests == [], "the redirect was not followed"
    assert notifier.posted == 0
    (letter,) = consume(kafka_bootstrap, dlq, lambda ms: len(ms) >= 1, TIMEOUT)
    headers = dict(letter.headers())
    assert headers["wirewatch-error"] == b"webhook_failed"
    detail = headers["wirewatch-error-detail"].decode()
    assert detail == f"HTTP 302 after 3 attempts: redirect to {elsewhere.origin} not followed"


def test_no_webhook_path_or_kafka_secret_reaches_a_log_line_or_a_dead_letter_header(
    kafka_bootstrap: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    incidents_topic, dlq = topics
    group = f"notify-{uuid.uuid4().hex}"
    (tmp_path / "client.properties").write_text(
        "sasl.password=hunter2-kafka-password\nsasl.oauthbearer.config=clientSecret=oauth-client-secret\n"
    )
    produce(
        kafka_bootstrap, incidents_topic, [(b"inc-1", incident("inc-1", "Car bomb at police station"), None)]
    )
    log = tmp_path / "notify.log"
    with Server(500) as hook:
        secret_path = "/services/T000/B000/WEBHOOKSECRET"
        env = {
            **os.environ,
            "WIREWATCH_WEBHOOK": hook.origin + secret_path,
            "WIREWATCH_KAFKA": json.dumps(SESSION_TIMEOUT),
        }
        args = [
            sys.executable, "-m", "wirewatch", "notify",
            "--bootstrap-servers", kafka_bootstrap,
            "--kafka-file", str(tmp_path / "client.properties"),
            "--incidents-topic", incidents_topic,
            "--dlq-topic", dlq,
            "--group-id", group,
            "--retries", "1",
            "--log-format", "json",
        ]  # fmt: skip
        with log.open("wb") as handle:
            process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        try:
            (letter,) = consume(kafka_bootstrap, dlq, lambda ms: len(ms) >= 1, TIMEOUT)
            assert until(lambda: committed(kafka_bootstrap, group, incidents_topic, 1)[0] == 1, TIMEOUT)
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert hook.requests == [("POST", secret_path)] * 2, "the URL itself was used"
    headers = dict(letter.headers())
    assert headers["wirewatch-webhook"] == hook.origin.encode()
    assert not [k for k, v in headers.items() if b"WEBHOOKSECRET" in (v or b"")]
    lines = log.read_text().splitlines()
    started = [json.loads(line) for line in lines if '"started"' in line]
    assert started
    assert started[0]["webhook"] == hook.origin
    assert started[0]["kafka"]["sasl.password"] == "***"
    assert started[0]["kafka"]["sasl.oauthbearer.config"] == "***"
    assert any("notice dead-lettered" in line for line in lines)
    for secret in ("WEBHOOKSECRET", "hunter2", "oauth-client-secret"):
        assert not [line for line in lines if secret in line], f"{secret} was logged"
