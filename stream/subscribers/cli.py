"""`wirewatch incidents`, `web` and `notify`: the subscribers that read what the scorer publishes.

wirewatch.cli's command table lists them (with their one-line help) and calls register.
"""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from stream.arguments import add_bootstrap_servers, add_kafka
from stream.errors import ConfigError
from stream.schemas import (
    ALERTS_TOPIC,
    ARTICLES_TOPIC,
    DLQ_TOPIC,
    INCIDENT_ALERTS_TOPIC,
    INCIDENTS_TOPIC,
    NOTIFY_DLQ_TOPIC,
    SCORER_GROUP_ID,
    SCORES_TOPIC,
)

if TYPE_CHECKING:
    from stream.subscribers.settings import SubscriberSettings


def _subscriber_settings(args: argparse.Namespace) -> "SubscriberSettings":
    from stream.subscribers.settings import load_subscriber_settings

    return load_subscriber_settings(
        kafka_file=args.kafka_file,
        webhook_file=getattr(args, "webhook_file", None),
        web_token_file=getattr(args, "token_file", None),
    )


def _kafka_of(args: argparse.Namespace) -> dict[str, str]:
    return _subscriber_settings(args).kafka_config(args.kafka or [])


def _incidents(args: argparse.Namespace) -> int:
    from stream.logs import configure_logging
    from stream.subscribers.stage import IncidentOptions, run_incidents

    configure_logging(args.log_format, "info")
    options = IncidentOptions(
        bootstrap_servers=args.bootstrap_servers,
        alerts_topic=args.alerts_topic,
        incidents_topic=args.incidents_topic,
        incident_alerts_topic=args.incident_alerts_topic,
        dlq_topic=args.dlq_topic,
        group_id=args.group_id,
        transactional_id=args.transactional_id,
        lease_topic=args.lease_topic,
        threshold=args.threshold,
        window_hours=args.window_hours,
        embedding_weight=args.embedding_weight,
        create_topics=args.create_topics,
        kafka=_kafka_of(args),
    )
    run_incidents(options, args.embedder)
    return 0


def _web(args: argparse.Namespace) -> int:
    import threading

    from stream.logs import configure_logging
    from stream.subscribers.web import WebOptions, run_web

    configure_logging(args.log_format, "info")
    settings = _subscriber_settings(args)
    options = WebOptions(
        bootstrap_servers=args.bootstrap_servers,
        host=args.host,
        port=args.port,
        input_topic=args.input_topic,
        scores_topic=args.scores_topic,
        incidents_topic=args.incidents_topic,
        incident_alerts_topic=args.incident_alerts_topic,
        group_id=args.group_id,
        bundle=args.bundle,
        kafka=settings.kafka_config(args.kafka or []),
        token=settings.token(),
        allowed_hosts=tuple(args.allowed_host or ()),
        allow_anonymous=args.allow_anonymous,
        max_clients=args.max_clients,
    )
    run_web(options, threading.Event())
    return 0


def _notify(args: argparse.Namespace) -> int:
    import signal

    import structlog

    from stream.logs import configure_logging
    from stream.subscribers.notify import Notifier, NotifyOptions

    configure_logging(args.log_format, "info")
    webhook = _subscriber_settings(args).webhook_url()
    if args.webhook:
        structlog.get_logger("wirewatch.notify").warning(
            "the webhook URL is on the command line, where every user of this host can read it "
            "(ps); pass it in WIREWATCH_WEBHOOK or a file named by --webhook-file"
        )
        webhook = args.webhook
    if webhook is None:
        raise ConfigError("no webhook: set WIREWATCH_WEBHOOK to its URL, or pass --webhook-file FILE")
    options = NotifyOptions(
        bootstrap_servers=args.bootstrap_servers,
        webhook=webhook,
        incidents_topic=args.incidents_topic,
        incident_alerts_topic=args.incident_alerts_topic,
        dlq_topic=args.dlq_topic,
        group_id=args.group_id,
        alerts=args.alerts,
        updates=args.updates,
        retries=args.retries,
        create_topics=args.create_topics,
        page_url=args.page_url,
        kafka=_kafka_of(args),
    )
    notifier = Notifier(options)
    signal.signal(signal.SIGTERM, lambda *_: notifier.stop())
    notifier.run()
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    add_bootstrap_servers(p)
    add_kafka(
        p,
        more=", on top of WIREWATCH_KAFKA and --kafka-file; secrets belong in those two, not here (ps shows flags)",
    )
    p.add_argument(
        "--kafka-file",
        type=Path,
        metavar="FILE",
        help="librdkafka settings, one key=value a line (SASL passwords and the like) [WIREWATCH_KAFKA_FILE]",
    )
    p.add_argument("--log-format", choices=["json", "console"], default="console", help="log format")


def _incident_topics(p: argparse.ArgumentParser) -> None:
    """The topics `incidents` writes, as web and notify read them."""
    p.add_argument("--incidents-topic", default=INCIDENTS_TOPIC, help=f"default {INCIDENTS_TOPIC}")
    p.add_argument(
        "--incident-alerts-topic", default=INCIDENT_ALERTS_TOPIC, help=f"default {INCIDENT_ALERTS_TOPIC}"
    )


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from stream.subscribers.incidents import DEFAULT_EMBEDDING_WEIGHT, DEFAULT_THRESHOLD, DEFAULT_WINDOW_HOURS

    p = sub.add_parser(
        "incidents",
        description=(
            "Read the alerts topic, embed each alert with the embedder (ONNX Runtime), group alerts about "
            "the same event into incidents, and publish each alert with its incident_id and each incident's "
            "state (compacted topic, keyed by incident id) in Kafka transactions. State is rebuilt from the "
            "incidents topic at startup. Several may run: the one holding the lease (a one-partition topic "
            "and consumer group) groups, the others stand by and take over when it stops."
        ),
    )
    _common(p)
    p.add_argument(
        "--embedder",
        type=Path,
        default=Path("exports/embedder"),
        help="embedder folder (default exports/embedder; `python -m training.ship.embedder` exports it)",
    )
    p.add_argument("--alerts-topic", default=ALERTS_TOPIC, help=f"input (default {ALERTS_TOPIC})")
    p.add_argument(
        "--incidents-topic",
        default=INCIDENTS_TOPIC,
        help=f"compacted output, keyed by incident id (default {INCIDENTS_TOPIC})",
    )
    p.add_argument(
        "--incident-alerts-topic",
        default=INCIDENT_ALERTS_TOPIC,
        help=f"alerts with their incident_id (default {INCIDENT_ALERTS_TOPIC})",
    )
    p.add_argument("--dlq-topic", default=DLQ_TOPIC, help="for records that are not alerts")
    p.add_argument(
        "--group-id", default="wirewatch-incidents", help="consumer group (default wirewatch-incidents)"
    )
    p.add_argument(
        "--transactional-id", help="default <group-id>-<alerts topic>: one writer per alerts topic"
    )
    p.add_argument(
        "--lease-topic",
        help=f"one-partition topic whose holder groups (default <alerts topic>-incidents-lease, here {ALERTS_TOPIC}-incidents-lease)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"cosine similarity to join an incident (default {DEFAULT_THRESHOLD}, chosen on 2015-2016 current events)",
    )
    p.add_argument(
        "--window-hours",
        type=float,
        default=DEFAULT_WINDOW_HOURS,
        help=f"an incident takes reports within this many hours of its reports (default {DEFAULT_WINDOW_HOURS:g})",
    )
    p.add_argument(
        "--embedding-weight",
        type=float,
        default=DEFAULT_EMBEDDING_WEIGHT,
        help=f"the embedding's share of the similarity; the rest is the bag of names (default {DEFAULT_EMBEDDING_WEIGHT})",
    )
    p.add_argument(
        "--create-topics", action="store_true", help="create missing topics (the incidents topic compacted)"
    )
    p.set_defaults(handler=_incidents)

    p = sub.add_parser(
        "web",
        description="One process: follows the topics and serves the page, with live updates as server-sent events.",
    )
    _common(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1); any other needs a token, or --allow-anonymous",
    )
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="file holding the token every request but /healthz must carry (Bearer, or as the password of "
        "basic auth, which browsers ask for); or set WIREWATCH_WEB_TOKEN [WIREWATCH_WEB_TOKEN_FILE]",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a name the page is reached by (the Host header), besides localhost, 127.0.0.1 and --host; "
        "repeatable. Other names are refused (DNS rebinding)",
    )
    p.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="serve a non-loopback --host without a token: only where nothing else reaches the port "
        "(docker's 127.0.0.1:8080:8080 publishing) or a proxy in front authenticates",
    )
    p.add_argument(
        "--max-clients", type=int, default=16, help="open pages (event streams) at most (default 16)"
    )
    p.add_argument(
        "--bundle", type=Path, help="the bundle in service: its validation scores are the reference for drift"
    )
    p.add_argument(
        "--input-topic",
        default=ARTICLES_TOPIC,
        help="where the articles are (for their text, and lag)",
    )
    p.add_argument(
        "--scores-topic",
        default=SCORES_TOPIC,
        help="for throughput, score distribution and drift",
    )
    _incident_topics(p)
    p.add_argument("--group-id", default=SCORER_GROUP_ID, help="the scorers' consumer group, for lag")
    p.set_defaults(handler=_web)

    p = sub.add_parser(
        "notify",
        description=(
            "POST JSON with a Slack-compatible text field for each new incident (--updates: every change; "
            "--alerts: every alert too). Retries with exponential backoff; offsets are committed only after "
            "a 2xx, or after a notice that failed every retry (or was refused with a 4xx) is in the dead-letter topic."
        ),
    )
    _common(p)
    p.add_argument(
        "--webhook-file",
        type=Path,
        metavar="FILE",
        help="file holding the URL to POST to (e.g. a Slack incoming webhook, whose URL is its credential); "
        "or set WIREWATCH_WEBHOOK [WIREWATCH_WEBHOOK_FILE]",
    )
    p.add_argument(
        "--webhook",
        help="the URL itself: visible to every user of the host (ps), so prefer WIREWATCH_WEBHOOK or --webhook-file",
    )
    p.add_argument("--alerts", action="store_true", help="post every alert too")
    p.add_argument(
        "--updates", action="store_true", help="post every change of an incident, not only new ones"
    )
    p.add_argument(
        "--retries",
        type=int,
        default=5,
        help="retries after a failed POST (default 5; backoff 0.5 s doubling to 30 s)",
    )
    _incident_topics(p)
    p.add_argument(
        "--dlq-topic", default=NOTIFY_DLQ_TOPIC, help=f"notices that failed (default {NOTIFY_DLQ_TOPIC})"
    )
    p.add_argument("--group-id", default="wirewatch-notify", help="consumer group (default wirewatch-notify)")
    p.add_argument("--page-url", help="link to the live page, added to each message")
    p.add_argument("--create-topics", action="store_true", help="create missing topics")
    p.set_defaults(handler=_notify)
