"""Held-out evaluation of a staged bundle against the baseline: test, its MUC part, the stream."""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream.articles import Article
from stream.evaluate import Evaluation, score_articles, summarize
from stream.metrics import Metrics, at_threshold
from stream.scorer import Scorer
from stream.text import article_text
from training.baseline import Baseline

Labels = npt.NDArray[np.int64]
Scores = npt.NDArray[np.floating]


@dataclass
class Assessment:
    metrics: dict[str, dict[str, Metrics]] = field(default_factory=dict)
    curves: dict[str, dict[str, tuple[Labels, Scores]]] = field(default_factory=dict)
    histogram: dict[str, Scores] = field(default_factory=dict)
    histogram_title: str = ""
    unlabeled: Evaluation | None = None


def _pair(
    labels: Labels, model: Scores, base: Scores, threshold: float, baseline: Baseline
) -> dict[str, Metrics]:
    return {
        "model": at_threshold(labels, model, threshold),
        "baseline": at_threshold(labels, base, baseline.threshold),
    }


def assess(
    scorer: Scorer,
    baseline: Baseline,
    test: tuple[list[Article], list[str], Labels, Scores],
    stream: list[Article],
    log: Callable[[str], None],
) -> Assessment:
    """Metrics at the bundle's threshold for the model (test scores given) and the baseline."""
    articles, texts, labels, scores = test
    threshold = scorer.threshold
    base = baseline.score(texts)
    result = Assessment()
    result.metrics["test"] = _pair(labels, scores, base, threshold, baseline)
    result.curves["test"] = {"model": (labels, scores), "baseline": (labels, base)}
    muc = np.asarray([a.get("corpus") == "muc" for a in articles])
    if muc.any() and not muc.all():  # the MUC reports alone: the hard, same-domain part
        result.metrics["test (MUC)"] = _pair(labels[muc], scores[muc], base[muc], threshold, baseline)
    result.histogram = {"test positive": scores[labels == 1], "test negative": scores[labels == 0]}
    result.histogram_title = "Scores on the test split"
    if not stream:
        return result
    log(f"scoring the stream ({len(stream)} articles)")
    scored = score_articles(scorer, stream)
    result.unlabeled = summarize(scored, threshold)
    labeled = np.asarray([a.label is not None for a in stream])
    if not labeled.any():
        return result
    stream_labels = np.asarray([a.label for a in stream if a.label is not None], dtype=np.int64)
    model = scored.scores[labeled]
    base_stream = baseline.score([article_text(a.title, a.text) for a in stream if a.label is not None])
    result.metrics["stream"] = _pair(stream_labels, model, base_stream, threshold, baseline)
    result.curves["stream"] = {"model": (stream_labels, model), "baseline": (stream_labels, base_stream)}
    result.histogram = {
        "stream positive": model[stream_labels == 1],
        "stream negative": model[stream_labels == 0],
        "stream unlabeled": scored.scores[~labeled],
    }
    result.histogram_title = "Scores on the stream"
    return result
