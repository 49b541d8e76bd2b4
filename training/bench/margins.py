"""How sure a bundle's held-out figures are, and by how much it beats TF-IDF, without retraining.

`python -m training.bench.margins --bundle exports/terrorism-v1 --data data/terrorism` prints JSON.

Bundles trained since 2026-12-08 carry these intervals in their report ("How sure these figures
are"); this gives them to a bundle built before, by the same assessment: the TF-IDF baseline is
fitted again exactly as `wirewatch train` fits it (same splits, seed and threshold articles), the
test split and the labelled stream are scored through the bundle's ONNX model, and every row (test,
stream, each domain and length bucket) gets its 95% stratified-bootstrap intervals and the model's
paired margin over the baseline. The description prior is left out (it needs the base encoder).
`reproduces_manifest` says whether the point figures equal the bundle's own to 4 decimals, which
shows that the baseline and the scores are the ones the report was written from.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import WirewatchError
from stream.scoring.articles import read_articles
from stream.scoring.bootstrap import FIGURES
from stream.scoring.bundle import load_bundle
from stream.scoring.evaluate import score_articles
from stream.scoring.metrics import Metrics
from stream.scoring.scorer import Scorer
from training.bench import print_result
from training.classifier.assess import MODEL, TFIDF, Systems, assess, domains_of
from training.classifier.baseline import fit_baseline
from training.classifier.pipeline import TrainOptions, load_split
from training.finetune import TrainConfig


def _figures(m: Metrics) -> dict[str, Any]:
    values = {"precision": m.precision, "recall": m.recall, "auprc": m.auprc}
    assert m.intervals is not None
    return {
        f: {
            "value": round(values[f] or 0.0, 4),
            **{k: round(v, 4) for k, v in m.intervals[f].model_dump().items()},
        }
        for f in FIGURES
    }


def _same(found: Metrics, shipped: Metrics | None) -> bool:
    if shipped is None:
        return False
    pairs = [
        (found.precision, shipped.precision),
        (found.recall, shipped.recall),
        (found.auprc, shipped.auprc),
    ]
    return all(abs((a or 0.0) - (b or 0.0)) < 5e-5 for a, b in pairs)


def _say(line: str) -> None:
    print(line, file=sys.stderr)  # stdout is the JSON


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.bench.margins",
        description="A bundle's held-out figures with 95%% intervals and its paired margin over the "
        "TF-IDF baseline, per domain and length bucket, without retraining; prints JSON.",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="a bundle folder")
    parser.add_argument("--data", type=Path, default=Path("data/terrorism"), help="the task's split folder")
    parser.add_argument(
        "--stream", type=Path, help="labelled stream (default: DATA/../stream.jsonl if present)"
    )
    parser.add_argument(
        "--threshold-domain",
        default=TrainOptions.threshold_domain,
        help="validation domains the baseline's threshold is chosen on, as `wirewatch train` does",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    try:
        bundle = load_bundle(args.bundle)
        train, val, test = (
            load_split(args.data / f"{name}.jsonl", name) for name in ("train", "val", "test")
        )
        stream_path = args.stream or args.data.parent / "stream.jsonl"
        stream = read_articles(stream_path) if stream_path.is_file() else []
        mask = np.isin(domains_of(val.articles), args.threshold_domain.split(","))
        seed = int(bundle.manifest.training.get("seed", TrainConfig.seed))
        baseline = fit_baseline(train.texts, train.labels, val.texts, val.labels, seed, mask)
        scorer = Scorer(bundle)
        scores = score_articles(scorer, test.articles).scores
        result = assess(
            scorer, Systems(baseline), (test.articles, test.texts, test.labels, scores), stream, _say
        )
    except WirewatchError as exc:  # a missing bundle or split: say which, without a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows: dict[str, Any] = {}
    for data, systems in result.metrics.items():
        if data not in result.margins:
            continue
        model, tfidf = systems[MODEL], systems[TFIDF]
        rows[data] = {
            "articles": model.n,
            "positives": model.positives,
            MODEL: _figures(model),
            TFIDF: _figures(tfidf),
            "model_minus_baseline": {
                f: {k: round(v, 4) for k, v in m.model_dump().items()}
                for f, m in result.margins[data][TFIDF].items()
            },
            "reproduces_manifest": all(
                _same(found, bundle.manifest.metrics.get(data, {}).get(name))
                for name, found in ((MODEL, model), (TFIDF, tfidf))
            ),
        }
    print_result(
        {"bundle": str(args.bundle), "threshold": round(scorer.threshold, 4), "rows": rows}, args.out
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
