"""Document heads compared on one bundle's validation windows, without retraining.

`python -m training.bench.heads --bundle exports/terrorism-v1 --data data/terrorism` prints JSON.

The head (training/classifier/doc_head.py) is fitted after fine-tuning, on windows the model has
already scored, and it does not change the window model. So its alternatives can be compared by
scoring every validation window once (up to 8 per article, with the bundle's own ONNX graph and
calibration) and refitting each variant on those scores, where a retrain costs 45 minutes on 2
cores. Each variant fixes how many windows are read, a floor on the best window's weight (MUC's
reports often carry their incident outside the lead, which the guide's main-subject rule and the
full-length articles teach the head to discount), and which domains the weights are fitted on.
Its threshold is the maximum-F1 point on the threshold domains, as `wirewatch train` picks it.
Every figure is a validation figure: the test split is never read here.
"""

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.errors import WirewatchError
from stream.scoring.articles import read_articles
from stream.scoring.bundle import Bundle, load_bundle
from stream.scoring.encoding import (
    HEAD_FEATURES,
    head_per_owner,
    max_per_owner,
    read_by_lead,
    window_features,
)
from stream.scoring.metrics import at_threshold, auprc, best_f1_threshold
from stream.scoring.scorer import Scorer
from stream.scoring.text import article_text
from training.bench import print_result
from training.classifier.doc_head import fit_logistic

FEATURES = 3  # lead, max, mean: the shipped head's features
MAX_WINDOWS = 8
_CHUNK = 256


@dataclass(frozen=True)
class Variant:
    windows: int
    max_floor: float  # lower bound on the best window's weight
    fit_on: tuple[str, ...]  # the domains the weights are fitted on

    @property
    def name(self) -> str:
        return f"windows={self.windows} max>={self.max_floor:g} fit={'+'.join(self.fit_on)}"


@dataclass
class Windows:
    """Every article's calibrated window scores, in order, with its label and domain."""

    scores: list[npt.NDArray[np.float32]]
    labels: npt.NDArray[np.int64]
    domains: npt.NDArray[np.str_]


def score_windows(bundle: Bundle, split: Path, max_windows: int = MAX_WINDOWS) -> Windows:
    """Scores of up to `max_windows` windows of every article of a split, by the bundle's model."""
    scorer = Scorer(bundle)
    # The bundle reads only as many windows as its head does; the variants may read more.
    scorer.encoder.windowing = replace(scorer.encoder.windowing, max_windows=max_windows)
    articles = read_articles(split, require_label=True)
    texts = [article_text(a.title, a.text) for a in articles]
    scores: list[npt.NDArray[np.float32]] = []
    with tqdm(total=len(texts), desc="scoring windows", unit="article") as bar:
        for start in range(0, len(texts), _CHUNK):
            encoded = scorer.encoder.encode(texts[start : start + _CHUNK])
            values = scorer.window_scores(encoded)
            counts = np.bincount(encoded.owner, minlength=encoded.n_texts)
            scores += np.split(values, np.cumsum(counts)[:-1])
            bar.update(encoded.n_texts)
    return Windows(
        scores,
        np.asarray([a.label for a in articles], dtype=np.int64),
        np.asarray([str(a.get("domain") or "") for a in articles]),
    )


def first_windows(windows: Windows, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], int]:
    """The first k windows' scores of every article, flat, with their owners: the scorer's layout."""
    kept = [w[:k] for w in windows.scores]
    owner = np.repeat(np.arange(len(kept)), [len(w) for w in kept]).astype(np.int64)
    return np.concatenate(kept), owner, len(kept)


def evaluate(windows: Windows, variant: Variant, threshold_domains: Sequence[str]) -> dict[str, Any]:
    """The variant's fitted weights, its threshold and every domain's figures at it."""
    x = window_features(*first_windows(windows, variant.windows))[:, :FEATURES]
    fit = np.isin(windows.domains, variant.fit_on)
    floors = [variant.max_floor if name == "max" else 0.0 for name in HEAD_FEATURES[:FEATURES]]
    weights, bias = fit_logistic(x[fit], windows.labels[fit], floors=floors)
    scores = 1.0 / (1.0 + np.exp(-(x @ weights + bias)))
    return {
        "variant": variant.name,
        **_head(weights.tolist(), bias),
        **figures(windows, scores, None, threshold_domains),
    }


def shipped(bundle: Bundle, windows: Windows, threshold_domains: Sequence[str]) -> dict[str, Any] | None:
    """The bundle's own head at its own threshold, on the same window scores."""
    long_text = bundle.manifest.long_text
    if long_text.head is None:
        return None
    scores, by_lead = shipped_scores(bundle, windows)
    lead_first = None
    if long_text.read_more_above is not None:
        lead_first = {"read_more_above": long_text.read_more_above, "articles_read_by_lead": by_lead}
    return {
        "windows": long_text.max_windows,
        **_head(long_text.head.weights, long_text.head.bias),
        "lead_first": lead_first,
        **figures(windows, scores, bundle.manifest.threshold, threshold_domains),
    }


def shipped_scores(bundle: Bundle, windows: Windows) -> tuple[npt.NDArray[np.float32], int]:
    """The scores the bundle's scorer gives, from the window scores, and how many articles of more
    than one window it scores by their lead alone (long_text.read_more_above)."""
    long_text = bundle.manifest.long_text
    head = long_text.head
    assert head is not None
    scores = head_per_owner(*first_windows(windows, long_text.max_windows), head.weights, head.bias)
    if long_text.read_more_above is None:
        return scores, 0
    leads, _, _ = first_windows(windows, 1)
    counts = np.asarray([len(w) for w in windows.scores])
    alone, by_lead = read_by_lead(leads, counts, head.weights, head.bias, long_text.read_more_above)
    return np.where(by_lead, alone, scores), int(by_lead.sum())


def best_window(windows: Windows, k: int, threshold_domains: Sequence[str]) -> dict[str, Any]:
    """chunk_max over the first k windows: what the head is compared against."""
    scores = max_per_owner(*first_windows(windows, k))
    return {"windows": k, **figures(windows, scores, None, threshold_domains)}


def figures(
    windows: Windows,
    scores: npt.NDArray[np.floating],
    threshold: float | None,
    threshold_domains: Sequence[str],
) -> dict[str, Any]:
    """Every domain's figures at the threshold; None: the maximum-F1 point on threshold_domains."""
    if threshold is None:
        picks = np.isin(windows.domains, threshold_domains)
        threshold = best_f1_threshold(windows.labels[picks], scores[picks])
    by_domain = {}
    for domain in sorted(set(windows.domains.tolist()) - {""}):
        mask = windows.domains == domain
        m = at_threshold(windows.labels[mask], scores[mask], threshold)
        by_domain[domain] = {
            "articles": m.n,
            "positives": m.positives,
            "auprc": _round(m.auprc),
            "auroc": _round(m.auroc),
            "precision": _round(m.precision),
            "recall": _round(m.recall),
            "alerts": m.confusion.tp + m.confusion.fp,
        }
    return {
        "threshold": round(float(threshold), 4),
        "mean_auprc_threshold_domains": _mean_auprc(windows, scores, threshold_domains),
        "mean_auprc_all_domains": _mean_auprc(windows, scores, sorted(by_domain)),
        "domains": by_domain,
    }


def _head(weights: Sequence[float], bias: float) -> dict[str, Any]:
    return {
        "weights": {name: round(float(w), 4) for name, w in zip(HEAD_FEATURES, weights, strict=False)},
        "bias": round(float(bias), 4),
    }


def _mean_auprc(windows: Windows, scores: npt.NDArray[np.floating], domains: Sequence[str]) -> float:
    values = [auprc(windows.labels[windows.domains == d], scores[windows.domains == d]) for d in domains]
    return round(float(np.mean([v for v in values if v is not None])), 4)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def variants(windows: Sequence[int], floors: Sequence[float], fits: Sequence[Sequence[str]]) -> list[Variant]:
    return [Variant(k, f, tuple(d)) for k in windows for f in floors for d in fits]


def _numbers(kind: type, text: str) -> list[Any]:
    return [kind(part) for part in text.split(",") if part]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.bench.heads",
        description="Refit a bundle's document head on its validation windows, variant by variant; prints JSON.",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="a doc_head bundle folder")
    parser.add_argument("--data", type=Path, required=True, help="the prepared task folder (reads val.jsonl)")
    parser.add_argument("--windows", default="2,3,4,8", help="windows read per article, comma-separated")
    parser.add_argument(
        "--max-floors", default="0,0.1,0.2,0.3", help="lower bounds on the best window's weight"
    )
    parser.add_argument(
        "--fit-on",
        default="modern+long,modern+long+muc",
        help="domain sets the weights are fitted on, comma-separated, domains joined by '+'",
    )
    parser.add_argument(
        "--threshold-domains", default="modern,long", help="domains the threshold is picked on"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    ks = _numbers(int, args.windows)
    if not ks or min(ks) < 1 or max(ks) > MAX_WINDOWS:
        parser.error(f"--windows: between 1 and {MAX_WINDOWS}")
    try:
        bundle = load_bundle(args.bundle)
        windows = score_windows(bundle, args.data / "val.jsonl", max(ks))
    except WirewatchError as exc:  # a missing bundle or split: say which, without a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fits = [tuple(s.split("+")) for s in args.fit_on.split(",") if s]
    threshold_domains = args.threshold_domains.split(",")
    result = {
        "bundle": str(args.bundle),
        "validation_articles": len(windows.labels),
        "shipped": shipped(bundle, windows, threshold_domains),
        "best_window": [best_window(windows, k, threshold_domains) for k in ks],
        "variants": [
            evaluate(windows, v, threshold_domains)
            for v in variants(ks, _numbers(float, args.max_floors), fits)
        ],
    }
    print_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
