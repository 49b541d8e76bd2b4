"""Held-out evaluation of a staged bundle, per domain, against the two baselines.

Every figure is at each system's own threshold, chosen on validation: the bundle's for the model,
the TF-IDF baseline's for it. The description prior needs no training, so its threshold is its
maximum-F1 point on the same validation articles the bundle's threshold comes from.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream.scoring.articles import Article
from stream.scoring.bootstrap import Margin, intervals
from stream.scoring.evaluate import Evaluation, Scored, score_articles, summarize
from stream.scoring.metrics import Metrics, at_threshold
from stream.scoring.scorer import Scorer
from stream.scoring.text import article_text
from training.classifier.baseline import Baseline

Labels = npt.NDArray[np.int64]
Scores = npt.NDArray[np.floating]
MODEL, TFIDF, PRIOR = "model", "baseline", "description prior"
# How each domain is named in the report: the MUC-3/4 reports, modern news, and the rest.
DOMAIN_NAMES = {"muc": "MUC", "modern": "modern", "long": "full-length"}
# Length buckets in words: old MUC reports, short modern items and full articles behave differently.
LENGTHS = {"<=60 words": (0, 60), "61-300 words": (61, 300), ">300 words": (301, None)}


def lengths_of(articles: list[Article]) -> npt.NDArray[np.int64]:
    return np.asarray([len(a.text.split()) for a in articles], dtype=np.int64)


@dataclass
class Systems:
    """The two baselines, and the prior's scores where it ran (it needs the base encoder)."""

    tfidf: Baseline
    prior: Callable[[list[str]], Scores] | None = None
    prior_threshold: float | None = None


@dataclass
class Assessment:
    metrics: dict[str, dict[str, Metrics]] = field(default_factory=dict)
    curves: dict[str, dict[str, tuple[Labels, Scores]]] = field(default_factory=dict)
    histogram: dict[str, Scores] = field(default_factory=dict)
    histogram_title: str = ""
    unlabeled: Evaluation | None = None
    # margins[data][other system][figure]: the model minus that system on the same resamples.
    margins: dict[str, dict[str, dict[str, Margin]]] = field(default_factory=dict)


def domains_of(articles: list[Article]) -> npt.NDArray[np.str_]:
    return np.asarray([str(a.get("domain") or "") for a in articles])


def _evaluate(
    result: Assessment,
    name: str,
    labels: Labels,
    scores: Mapping[str, Scores],
    thresholds: Mapping[str, float],
) -> None:
    result.metrics[name] = {s: at_threshold(labels, scores[s], thresholds[s]) for s in scores}
    if len(set(labels.tolist())) == 2:
        systems = {s: (scores[s], thresholds[s]) for s in scores}
        bounds, result.margins[name] = intervals(labels, systems, reference=MODEL)
        for s, m in result.metrics[name].items():
            m.intervals = bounds[s]
    result.curves[name] = {s: (labels, scores[s]) for s in scores}


def _by_domain(
    result: Assessment,
    split: str,
    labels: Labels,
    articles: list[Article],
    scores: Mapping[str, Scores],
    thresholds: Mapping[str, float],
) -> None:
    """The whole set, then each named domain and each length bucket that has both classes on its own."""
    _evaluate(result, split, labels, scores, thresholds)
    domains, lengths = domains_of(articles), lengths_of(articles)
    parts = {label: domains == domain for domain, label in DOMAIN_NAMES.items()}
    for label, (low, high) in LENGTHS.items():
        parts[label] = (lengths >= low) & (lengths <= (high if high is not None else lengths.max()))
    for label, mask in parts.items():
        if mask.any() and not mask.all() and len(set(labels[mask].tolist())) == 2:
            part = {s: v[mask] for s, v in scores.items()}
            _evaluate(result, f"{split} ({label})", labels[mask], part, thresholds)


def assess(
    scorer: Scorer,
    systems: Systems,
    test: tuple[list[Article], list[str], Labels, Scores],
    stream: list[Article],
    log: Callable[[str], None],
) -> Assessment:
    """Metrics at each system's threshold on test (model scores given) and the stream, per domain."""
    articles, texts, labels, scores = test
    thresholds = {MODEL: scorer.threshold, TFIDF: systems.tfidf.threshold}
    if systems.prior is not None and systems.prior_threshold is not None:
        thresholds[PRIOR] = systems.prior_threshold

    def all_scores(model: Scores, texts: list[str]) -> dict[str, Scores]:
        found = {MODEL: model, TFIDF: systems.tfidf.score(texts)}
        if PRIOR in thresholds and systems.prior is not None:
            log(f"description prior on {len(texts)} articles")
            found[PRIOR] = systems.prior(texts)
        return found

    result = Assessment()
    _by_domain(result, "test", labels, articles, all_scores(scores, texts), thresholds)
    result.histogram = {"test positive": scores[labels == 1], "test negative": scores[labels == 0]}
    result.histogram_title = "Scores on the test split"
    if not stream:
        return result
    # The stream's held-out reports are test articles too: each text is scored once.
    known = dict(zip(texts, scores.tolist(), strict=True))
    stream_texts_all = [article_text(a.title, a.text) for a in stream]
    missing = [a for a, t in zip(stream, stream_texts_all, strict=True) if t not in known]
    log(f"scoring the stream ({len(stream)} articles, {len(missing)} not in the test split)")
    for article, value in zip(missing, score_articles(scorer, missing).scores.tolist(), strict=True):
        known[article_text(article.title, article.text)] = value
    scored = Scored(stream, np.asarray([known[t] for t in stream_texts_all], dtype=np.float32))
    result.unlabeled = summarize(scored, scorer.threshold)
    labeled = np.asarray([a.label is not None for a in stream])
    if not labeled.any():
        return result
    kept = [a for a in stream if a.label is not None]
    stream_labels = np.asarray([a.label for a in kept], dtype=np.int64)
    model = scored.scores[labeled]
    stream_texts = [article_text(a.title, a.text) for a in kept]
    _by_domain(result, "stream", stream_labels, kept, all_scores(model, stream_texts), thresholds)
    result.histogram = {
        "stream positive": model[stream_labels == 1],
        "stream negative": model[stream_labels == 0],
        "stream unlabeled": scored.scores[~labeled],
    }
    result.histogram_title = "Scores on the stream"
    return result
