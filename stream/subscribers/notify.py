"""`wirewatch notify --webhook URL`: post each new incident (optionally each alert) to a webhook.

At-least-once: a message's offset is committed only after the webhook answered 2xx, or after the
message went to the dead-letter topic (delivery acknowledged) because the webhook refused it
(a 4xx other than 408/429) or kept failing through every retry. Retries back off exponentially
(0.5 s, 1 s, 2 s, ... up to 30 s). A crash between a 2xx and the commit posts that message again:
receivers deduplicate on the ``Idempotency-Key`` header (incident id and report count, or alert
id). The body is JSON with a Slack-compatible ``text`` field, so a Slack incoming webhook works
as is; the full record rides along under ``incident`` or ``alert``.

The webhook URL is a credential (whoever has a Slack incoming webhook's URL can post to the
channel): only its scheme and host are logged or put in dead letters. Article fields are written
by whoever controls a feed, so in ``text`` they are escaped as Slack asks (``& < >``) and their
whitespace collapsed: a title cannot ping a channel, hide a link or add lines. Redirects are not
followed: a 3xx is a failure, retried and then dead-lettered, never a POST turned into a GET to
another host that would count as delivered.
"""

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from confluent_kafka import KafkaError, Message, Producer, TopicPartition
from pydantic import ValidationError

from stream.errors import ConfigError, SystemicError
from stream.kafka.config import redact_kafka
from stream.kafka.connection import Connection
from stream.kafka.deadletter import dead_letter
from stream.kafka.topics import TopicSpec, ensure_topics, incoming
from stream.schemas import (
    INCIDENT_ALERTS_TOPIC,
    INCIDENTS_TOPIC,
    NOTIFY_DLQ_TOPIC,
    WEBHOOK_HEADER,
    DeadLetterReason,
    Incident,
    IncidentAlert,
    http_url_or_none,
)

TIMEOUT_S = 10.0


@dataclass
class NotifyOptions:
    bootstrap_servers: str
    webhook: str
    incidents_topic: str = INCIDENTS_TOPIC
    incident_alerts_topic: str = INCIDENT_ALERTS_TOPIC
    dlq_topic: str = NOTIFY_DLQ_TOPIC
    group_id: str = "wirewatch-notify"
    alerts: bool = False  # post every alert too
    updates: bool = False  # post every change of an incident, not only new ones
    retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    create_topics: bool = False
    startup_timeout_s: float = 30.0
    page_url: str | None = None  # link to the live page in the text
    kafka: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A wrong URL would otherwise only show as every record going to the dead-letter topic.
        if http_url_or_none(self.webhook) is None:
            raise ConfigError(
                "the webhook is not an http(s) URL with a host (it is not shown: it is a credential); "
                "pass the full address, e.g. https://hooks.slack.com/services/T000/B000/XXXX, in "
                "WIREWATCH_WEBHOOK or a file named by --webhook-file"
            )
        if self.retries < 0:
            raise ConfigError(f"--retries {self.retries} is negative; pass 0 or more")

    @property
    def webhook_origin(self) -> str:
        """What may be logged and stored of the webhook: scheme and host, never its path or query."""
        return origin(self.webhook)


def origin(url: str) -> str:
    """scheme://host[:port] of a URL, without user, path, query or fragment (they may be secret)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(not a URL)"
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


@dataclass(frozen=True)
class Response:
    status: int | None  # None: no answer (connection refused, timeout)
    detail: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retriable(self) -> bool:
        # A 3xx is not followed (see post_json) but may be a moved endpoint coming back.
        status = self.status
        return status is None or status >= 500 or status in (408, 429) or 300 <= status < 400


def _next(message: Message) -> TopicPartition:
    """The position after the message: what a commit covering it stores."""
    return TopicPartition(str(message.topic()), int(message.partition() or 0), int(message.offset() or 0) + 1)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would re-send a 301/302/303 as a GET without the body, to any host, and report its 2xx."""

    def redirect_request(self, *_: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def post_json(url: str, body: bytes, headers: dict[str, str]) -> Response:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with _OPENER.open(request, timeout=TIMEOUT_S) as answer:
            return Response(answer.status, "")
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            return Response(exc.code, f"redirect to {origin(exc.headers.get('Location') or '')} not followed")
        return Response(exc.code, exc.read(500).decode(errors="replace"))
    except (urllib.error.URLError, OSError) as exc:
        return Response(None, str(getattr(exc, "reason", exc)))
    except ValueError:  # http.client's InvalidURL, whose message holds the whole URL
        return Response(None, "the webhook URL was refused by the HTTP client")


# Control characters, and the bidirectional overrides that make text read in another order.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def slack_escape(value: str) -> str:
    """Text that Slack shows as written: ``& < >`` escaped, whitespace (newlines too) collapsed.

    Slack reads ``<!channel>``, ``<@U123>`` and ``<https://evil|Reuters>`` in ``text`` as a
    mention or a link; escaped they stay text.
    """
    text = " ".join(_UNPRINTABLE.sub(" ", value).split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def incident_text(incident: Incident, page_url: str | None = None) -> str:
    e = slack_escape
    verb = {
        "open": "New incident" if incident.reports == 1 else "Incident update",
        "closed": "Incident closed",
    }
    outlets = f" from {', '.join(e(o) for o in incident.outlets[:5])}" if incident.outlets else ""
    lines = [
        f"*{verb[incident.status]}* ({incident.reports} report{'s' if incident.reports != 1 else ''}{outlets}): "
        f"{e(incident.title or incident.id)}",
        f"best score {incident.best.score:.3f}" + (f": {e(incident.best.url)}" if incident.best.url else ""),
    ]
    if incident.best.explanation:
        lines.append(f"> {e(incident.best.explanation[0].sentence)}")
    link = e(page_url or "")
    if link:
        lines.append(link)
    return "\n".join(lines)


def alert_text(alert: IncidentAlert) -> str:
    e = slack_escape
    head = f"*Alert* {alert.score:.3f}: {e(alert.title or alert.id)}"
    source = f" ({e(alert.publisher)})" if alert.publisher else ""
    return f"{head}{source}, incident {e(alert.incident_id)}" + (f"\n{e(alert.url)}" if alert.url else "")


@dataclass(frozen=True)
class Notice:
    body: bytes
    key: str  # the idempotency key


def notice_for(topic: str, value: bytes, options: NotifyOptions) -> Notice | None:
    """What to post for a record, or None when it is not posted (an update, with updates off)."""
    if topic == options.incidents_topic:
        incident = Incident.model_validate_json(value)
        if not options.updates and not (incident.status == "open" and incident.reports == 1):
            return None
        payload = {
            "text": incident_text(incident, options.page_url),
            "incident": json.loads(incident.model_dump_json()),
        }
        return Notice(json.dumps(payload).encode(), f"{incident.id}:{incident.reports}:{incident.status}")
    alert = IncidentAlert.model_validate_json(value)
    payload = {"text": alert_text(alert), "alert": json.loads(alert.model_dump_json())}
    return Notice(json.dumps(payload).encode(), f"alert:{alert.id}")


class Post(Protocol):
    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Response: ...


class Notifier:
    def __init__(
        self,
        options: NotifyOptions,
        post: Post = post_json,
        sleep: Callable[[float], None] = time.sleep,
        log: Any = None,
    ) -> None:
        self.options = options
        self.post = post
        self.sleep = sleep
        self.log = log or structlog.get_logger("wirewatch.notify")
        self.posted = 0
        self.dead_lettered = 0
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    def deliver(self, notice: Notice) -> Response:
        """Post with retries and exponential backoff; the last response."""
        o = self.options
        delay = o.backoff_s
        response = Response(None, "not tried")
        for attempt in range(o.retries + 1):
            response = self.post(
                o.webhook, notice.body, {"Idempotency-Key": notice.key, "User-Agent": "wirewatch-notify"}
            )
            if response.ok or not response.retriable:
                return response
            self.log.warning(
                "webhook failed, retrying",
                status=response.status,
                detail=response.detail[:200],
                attempt=attempt + 1,
                in_s=delay,
            )
            if attempt < o.retries:
                self.sleep(delay)
                delay = min(delay * 2, o.max_backoff_s)
        return response

    def handle(self, message: Message, producer: Producer) -> None:
        """Post one record, or dead-letter it; returns when the commit may cover it."""
        topic, value = str(message.topic()), message.value() or b""
        try:
            notice = notice_for(topic, value, self.options)
        except ValidationError as exc:
            self.dead_letter(message, producer, "schema_violation", str(exc).splitlines()[0])
            return
        if notice is None:
            return
        response = self.deliver(notice)
        if response.ok:
            self.posted += 1
            return
        why = f"HTTP {response.status}" if response.status else "no answer"
        self.dead_letter(
            message,
            producer,
            "webhook_failed",
            f"{why} after {self.options.retries + 1} attempts: {response.detail[:500]}",
        )

    def dead_letter(
        self, message: Message, producer: Producer, reason: DeadLetterReason, detail: str
    ) -> None:
        failures: list[str] = []

        def delivered(error: Any, _msg: Any) -> None:
            if error is not None:
                failures.append(error.str())

        origin = [(WEBHOOK_HEADER, self.options.webhook_origin.encode())]
        letter = dead_letter(incoming(message), reason, detail, self.options.dlq_topic, origin)
        headers: list[tuple[str, str | bytes | None]] = list(letter.headers)
        producer.produce(
            letter.topic, key=letter.key, value=letter.value, headers=headers, on_delivery=delivered
        )
        if producer.flush(30) or failures:
            raise SystemicError(
                f"could not dead-letter a notice ({failures[0] if failures else 'timed out'}); stopped without committing it"
            )
        self.dead_lettered += 1
        self.log.error(
            "notice dead-lettered",
            reason=reason,
            detail=detail[:200],
            topic=message.topic(),
            offset=message.offset(),
        )

    def run(self, stop_after: Callable[[], bool] = lambda: False) -> None:
        o = self.options
        connection = Connection(o.bootstrap_servers, o.kafka)
        topics = [o.incidents_topic] + ([o.incident_alerts_topic] if o.alerts else [])
        ensure_topics(
            connection,
            [TopicSpec(t) for t in [*topics, o.dlq_topic]],
            o.create_topics,
            o.startup_timeout_s,
        )
        consumer = connection.consumer(o.group_id)
        producer = connection.producer()
        consumer.subscribe(topics)
        self.log.info(
            "started",
            webhook=o.webhook_origin,
            topics=topics,
            group_id=o.group_id,
            kafka=redact_kafka(o.kafka),
        )
        try:
            while not self._stopping and not stop_after():
                message = consumer.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise SystemicError(f"the consumer failed: {error.str()}")
                    if error.code() != KafkaError._PARTITION_EOF:
                        self.log.warning("kafka error", reason=error.str())
                    continue
                self.handle(message, producer)
                # Only now: the webhook took it (2xx) or its dead letter is acknowledged.
                consumer.commit(offsets=[_next(message)], asynchronous=False)
        finally:
            consumer.close()
            producer.flush(5)
