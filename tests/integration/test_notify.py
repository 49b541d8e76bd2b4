"""`wirewatch notify` against the real broker and a local webhook that fails on purpose."""

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stream.notify import Notifier, NotifyOptions
from stream.schemas import Incident, IncidentBest
from tests.integration.service_harness import SESSION_TIMEOUT, committed, consume, produce

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
