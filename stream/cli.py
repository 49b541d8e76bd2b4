"""The serving side's subcommands. The `wirewatch` entry point (training.cli) adds them."""

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[argparse.Namespace], int]


def _evaluate(args: argparse.Namespace) -> int:
    from stream.articles import read_articles
    from stream.bundle import load_bundle
    from stream.evaluate import format_evaluation, score_articles, summarize, to_json
    from stream.scorer import Scorer

    bundle = load_bundle(args.bundle)
    articles = read_articles(args.data)
    scorer = Scorer(bundle, providers=args.providers, intra_op_threads=args.threads)
    scored = score_articles(scorer, articles, progress=not args.json)
    evaluation = summarize(scored, bundle.manifest.threshold, top=args.top)
    if args.json:
        print(to_json(evaluation, bundle=str(bundle.path), model=bundle.label, data=str(args.data)))
    else:
        print(format_evaluation(evaluation, header=f"{bundle.label} on {args.data}"))
    return 0


def _broker(args: argparse.Namespace) -> int:
    from stream.broker import EmbeddedBroker, stop_signals

    with stop_signals() as stop, EmbeddedBroker(port=args.port, host=args.host) as broker:
        print(f"Kafka bootstrap servers: {broker.bootstrap_servers}", flush=True)
        print(
            "This is a development/test broker with memory storage: topics are lost on restart. "
            "Use a real Kafka (e.g. docker compose) for anything else. Ctrl-C stops it.",
            flush=True,
        )
        broker.run_until(stop)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from stream.observability import configure_logging
    from stream.service import Service
    from stream.settings import load_settings, parse_kafka_pairs

    overrides = {
        field: getattr(args, field)
        for field in (
            "bundle",
            "bootstrap_servers",
            "input_topic",
            "scores_topic",
            "alerts_topic",
            "dlq_topic",
            "group_id",
            "batch_size",
            "max_wait_ms",
            "providers",
            "intra_op_threads",
            "max_in_flight",
            "max_message_bytes",
            "metrics_port",
            "metrics_host",
            "log_format",
            "log_level",
            "exactly_once",
            "transactional_id",
            "create_topics",
            "explain",
        )
    }
    settings = load_settings(kafka_extra=parse_kafka_pairs(args.kafka or []), **overrides)
    configure_logging(settings.log_format, settings.log_level)
    Service(settings).run()
    return 0


def _replay(args: argparse.Namespace) -> int:
    from stream.replay import replay
    from stream.settings import parse_kafka_pairs

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
    from stream.settings import parse_kafka_pairs
    from stream.tail import tail

    tail(
        args.bootstrap_servers,
        args.topic,
        as_json=args.json,
        from_beginning=args.from_beginning,
        limit=args.limit,
        idle_timeout=args.idle_timeout,
        kafka=parse_kafka_pairs(args.kafka or []),
    )
    return 0


def _bootstrap_default() -> str:
    return os.environ.get("WIREWATCH_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def _add_serve(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
    add = p.add_argument
    add("--bundle", type=Path, help="model bundle folder (WIREWATCH_BUNDLE)")
    add("--bootstrap-servers", help="Kafka bootstrap servers (default 127.0.0.1:9092)")
    add("--input-topic", help="topic to read articles from (default articles)")
    add("--scores-topic", help="topic for every score (default article-scores)")
    add("--alerts-topic", help="topic for alerts (default article-alerts)")
    add("--dlq-topic", help="dead-letter topic (default articles-dlq)")
    add("--group-id", help="consumer group; scorers in one group share the partitions (default wirewatch)")
    add("--batch-size", type=int, help="articles per micro-batch at most (default 32)")
    add("--max-wait-ms", type=int, help="close a batch this long after its first article (default 100)")
    add(
        "--providers",
        choices=["auto", "cpu", "cuda"],
        help="ONNX Runtime execution provider (default auto: CUDA if available)",
    )
    add(
        "--threads",
        dest="intra_op_threads",
        type=int,
        help="ONNX Runtime intra-op threads (default 0: all cores)",
    )
    add("--max-in-flight", type=int, help="pause consuming above this many unfinished messages (default 512)")
    add("--max-message-bytes", type=int, help="larger inputs go to the DLQ as too_large (default 1000000)")
    add("--metrics-port", type=int, help="port of /metrics, /healthz, /readyz; 0 turns it off (default 9308)")
    add("--metrics-host", help="address of the metrics server (default 0.0.0.0)")
    add("--log-format", choices=["json", "console"], help="log format (default console)")
    add("--log-level", choices=["debug", "info", "warning", "error"], help="log level (default info)")
    add("--exactly-once", action=argparse.BooleanOptionalAction, default=None, help="use Kafka transactions")
    add("--transactional-id", help="transactional.id for --exactly-once (default <group-id>-<hostname>)")
    add(
        "--create-topics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="create missing topics at startup",
    )
    add(
        "--explain",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="attach the sentences that drove the score to alerts (default on)",
    )
    add(
        "--kafka",
        action="append",
        metavar="KEY=VALUE",
        help="librdkafka setting, repeatable (e.g. security.protocol=SASL_SSL)",
    )
    p.set_defaults(handler=_serve)


def _add_replay_and_tail(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "replay",
        help="produce a JSONL or CSV file to a topic as a live stream, keyed by id",
        description="Send each line of FILE (JSONL, byte for byte) or each CSV row (as JSON) to the topic, keyed by its id.",
    )
    p.add_argument("file", type=Path, help="JSONL or CSV file of articles, e.g. data/stream.jsonl")
    p.add_argument("--topic", default="articles", help="topic to produce to (default articles)")
    p.add_argument(
        "--rate", type=float, default=0.0, help="messages per second (default 0: as fast as possible)"
    )
    p.add_argument("--limit", type=int, help="stop after this many messages")
    p.add_argument(
        "--bootstrap-servers",
        default=_bootstrap_default(),
        help="Kafka bootstrap servers (default $WIREWATCH_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    p.add_argument("--kafka", action="append", metavar="KEY=VALUE", help="librdkafka setting, repeatable")
    p.set_defaults(handler=_replay)

    p = sub.add_parser(
        "tail",
        help="follow the alerts topic and print alerts readably",
        description="Print each new message of the topic (alerts by default) until Ctrl-C. Never commits offsets.",
    )
    p.add_argument("--topic", default="article-alerts", help="topic to follow (default article-alerts)")
    p.add_argument("--json", action="store_true", help="print raw JSON, one message per line")
    p.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest message instead of new ones"
    )
    p.add_argument("--limit", type=int, help="exit after this many messages")
    p.add_argument("--idle-timeout", type=float, help="exit after this many seconds without a message")
    p.add_argument(
        "--bootstrap-servers",
        default=_bootstrap_default(),
        help="Kafka bootstrap servers (default $WIREWATCH_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    p.add_argument("--kafka", action="append", metavar="KEY=VALUE", help="librdkafka setting, repeatable")
    p.set_defaults(handler=_tail)


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    _add_serve(sub)
    _add_replay_and_tail(sub)
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
        "--providers", choices=["auto", "cpu", "cuda"], default="auto", help="ONNX Runtime execution provider"
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
