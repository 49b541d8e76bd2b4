"""`wirewatch serve` and `wirewatch evaluate`: the scorer service, and a bundle scored on a file.

wirewatch.cli's command table lists them (with their one-line help) and calls register.
"""

import argparse
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    from stream.logs import configure_logging
    from stream.serve.service import serve
    from stream.serve.settings import from_arguments

    settings = from_arguments(args)
    configure_logging(settings.log_format, settings.log_level)
    serve(settings)
    return 0


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


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from stream.serve.settings import add_arguments

    p = sub.add_parser(
        "serve",
        description=(
            "Run the scorer service. Every option also reads from its WIREWATCH_* environment "
            "variable (e.g. --batch-size from WIREWATCH_BATCH_SIZE); flags win. Offsets are "
            "committed only after all outputs of a message are acknowledged (at-least-once), or "
            "in Kafka transactions with --exactly-once."
        ),
    )
    add_arguments(p)
    p.set_defaults(handler=_serve)

    p = sub.add_parser(
        "evaluate",
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
