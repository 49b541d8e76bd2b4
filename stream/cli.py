"""The serving side's subcommands. The `wirewatch` entry point (training.cli) adds them."""

import argparse
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


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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


def fail(message: str, code: int = 2) -> int:
    print(f"wirewatch: error: {message}", file=sys.stderr)
    return code
