"""Command-line options of the label-free modes (`wirewatch train --mode novelty|ood`) and `bench-ad`.

Kept apart from training.cli so that the classifier's options stay as they are; nothing heavy
is imported here. wirewatch.cli's command table lists bench-ad (with its one-line help) and calls
register.
"""

import argparse
from pathlib import Path

from stream.arguments import add_bootstrap_servers, add_data_dir, add_kafka
from stream.errors import ConfigError

MODES = ("classifier", "novelty", "ood")


def add_mode_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "label-free modes",
        "--mode novelty learns normal news from unlabeled articles (DATA/train, DATA/val, optional "
        "DATA/test with label 1 = anomaly) and scores distance to it; --mode ood learns the normal "
        "categories (a `category` field) and scores the classifier's doubt. Both calibrate the score "
        "so that the threshold gives --target-false-alarm-rate on held-out normal articles.",
    )
    group.add_argument(
        "--mode", choices=MODES, default="classifier", help="what the bundle detects (default classifier)"
    )
    group.add_argument(
        "--target-false-alarm-rate",
        type=float,
        default=0.01,
        help="share of held-out normal articles allowed to alert (default 0.01)",
    )
    group.add_argument(
        "--method",
        choices=["hybrid", "knn", "mahalanobis", "auto"],
        default="hybrid",
        help="novelty: distance to normal (default hybrid: kNN plus a quarter of Mahalanobis; auto: "
        "kNN or Mahalanobis, chosen by a label-free validation)",
    )
    group.add_argument("--k", type=int, default=10, help="novelty kNN: neighbours averaged (default 10)")
    group.add_argument(
        "--bank-size",
        type=int,
        default=8192,
        help="novelty kNN: normal articles' windows kept in the memory bank, at most 65536 (default 8192)",
    )
    group.add_argument(
        "--encoder",
        choices=["frozen", "adapted"],
        default="frozen",
        help="novelty: the base encoder as is, or adapted to the normal articles first (default frozen, "
        "which won on `wirewatch bench-ad`)",
    )
    group.add_argument(
        "--adapt-steps", type=int, default=60, help="novelty --encoder adapted: optimizer steps (default 60)"
    )
    group.add_argument(
        "--from-topic", metavar="TOPIC", help="novelty: learn normal from this topic's newest articles"
    )
    group.add_argument(
        "--limit", type=int, default=5000, help="--from-topic: how many of the newest messages (default 5000)"
    )
    add_bootstrap_servers(group, prefix="--from-topic: ")
    add_kafka(group)
    group.add_argument(
        "--category-field",
        default="category",
        help="ood: the field naming an article's category (default category)",
    )
    group.add_argument(
        "--outliers", type=Path, help="ood: JSONL/CSV of outlier articles for outlier exposure"
    )
    group.add_argument(
        "--ood-score",
        choices=["auto", "msp", "energy"],
        default="auto",
        help="ood: anomaly statistic (default auto: by validation on held-out outliers, else energy)",
    )


def train_unlabeled(args: argparse.Namespace) -> int:
    from stream.kafka.config import parse_kafka_pairs
    from training.cli import train_config, windowing  # train's flags, which these modes share
    from training.labelfree.base import UnlabeledOptions

    if args.from_topic is not None and args.mode != "novelty":
        raise ConfigError("--from-topic builds a normal set for --mode novelty only")
    options = UnlabeledOptions(
        mode=args.mode,
        out=args.out,
        data=args.data,
        base_model=args.base_model,
        name=args.name,
        version=args.bundle_version,
        windowing=windowing(args, default_windows=8),
        target_false_alarm_rate=args.target_false_alarm_rate,
        method=args.method,
        k=args.k,
        bank_size=args.bank_size,
        encoder=args.encoder,
        adapt_steps=args.adapt_steps,
        from_topic=args.from_topic,
        limit=args.limit,
        bootstrap_servers=args.bootstrap_servers,
        kafka=parse_kafka_pairs(args.kafka or []),
        category_field=args.category_field,
        outliers=args.outliers,
        ood_score=args.ood_score,
        train=train_config(args),
        quantize=not args.no_quantize,
        force=args.force,
        threads=args.threads,
    )
    if args.mode == "novelty":
        from training.labelfree.novelty import train_novelty

        bundle = train_novelty(options)
    else:
        from training.labelfree.ood import train_ood

        bundle = train_ood(options)
    m = bundle.manifest
    method = m.method.name if m.method else "?"
    print(
        f"bundle {bundle.path} ({m.mode}, {method}, {m.precision}, threshold {m.threshold:.4f}); "
        f"report: {bundle.path / 'report.md'}"
    )
    for split, systems in m.metrics.items():
        for system, metrics in systems.items():
            far = metrics.confusion.fp / max(1, metrics.confusion.fp + metrics.confusion.tn)
            print(
                f"  {split:6} {system:12} AUROC {metrics.auroc or 0:.4f}  AUPRC {metrics.auprc or 0:.4f}  "
                f"recall {metrics.recall:.4f}  false alarms {far:.2%}"
            )
    return 0


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "bench-ad",
        description=(
            "Run the one-class anomaly detection protocols of CVDD/DATE (AG News, Reuters-21578) and "
            "NLP-ADBench (BBC News) on the corpora in --data-dir: wirewatch novelty (frozen and "
            "adapted encoder), ood where the normal data has categories, and TF-IDF one-class "
            "baselines, all on the same splits. Prints a table and writes JSON to bench/results/."
        ),
    )
    add_data_dir(p)
    p.add_argument(
        "--datasets", nargs="+", choices=["ag_news", "bbc", "reuters"], default=["ag_news", "bbc", "reuters"]
    )
    p.add_argument(
        "--out", type=Path, default=Path("bench/results"), help="folder for the JSON (default bench/results)"
    )
    p.add_argument(
        "--cache", type=Path, default=Path("runs/bench-ad"), help="embedding cache (default runs/bench-ad)"
    )
    p.add_argument(
        "--no-adapted", action="store_true", help="skip the adapted-encoder rows (the slowest part)"
    )
    p.add_argument("--no-ood", action="store_true", help="skip the ood rows")
    p.add_argument(
        "--no-throughput", action="store_true", help="skip the novelty vs classifier serving throughput"
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from training.bench.ad import BenchOptions, run_bench

    run_bench(
        BenchOptions(
            data_dir=args.data_dir,
            datasets=args.datasets,
            out=args.out,
            cache=args.cache,
            adapted=not args.no_adapted,
            ood=not args.no_ood,
            throughput=not args.no_throughput,
            threads=args.threads,
        )
    )
    return 0
