"""`wirewatch evaluate`: score a JSONL or CSV file through a bundle and report its metrics.

This runs the serving path (bundle preprocessing, tokenizer.json and ONNX Runtime) with no torch
and no transformers, so its figures are what the scorer service will produce.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel
from tqdm.auto import tqdm

from stream.scoring.articles import Article
from stream.scoring.bootstrap import intervals_of
from stream.scoring.metrics import Metrics, at_threshold
from stream.scoring.scorer import Scorer
from stream.scoring.text import article_text, clean

_CHUNK = 256


class TopArticle(BaseModel):
    id: str
    score: float
    title: str


class Evaluation(BaseModel):
    n: int
    skipped_empty: int = 0  # articles without text, which the scorer dead-letters
    threshold: float
    labeled: Metrics | None
    unlabeled: int
    unlabeled_alerts: int
    unlabeled_alert_rate: float | None
    top_unlabeled: list[TopArticle]


@dataclass
class Scored:
    articles: list[Article]
    scores: npt.NDArray[np.float32]


def scorable(articles: Sequence[Article]) -> tuple[list[Article], int]:
    """The articles the scorer would score, and how many it would dead-letter as empty_text."""
    kept = [a for a in articles if clean(a.text)]
    return kept, len(articles) - len(kept)


def score_articles(scorer: Scorer, articles: Sequence[Article], progress: bool = True) -> Scored:
    texts = [article_text(a.title, a.text) for a in articles]
    scores = np.empty(len(texts), dtype=np.float32)
    with tqdm(total=len(texts), desc="scoring", unit="article", disable=not progress) as bar:
        for start in range(0, len(texts), _CHUNK):
            chunk = texts[start : start + _CHUNK]
            scores[start : start + len(chunk)] = scorer.score(chunk).scores
            bar.update(len(chunk))
    return Scored(list(articles), scores)


def summarize(scored: Scored, threshold: float, top: int = 10) -> Evaluation:
    labels = np.asarray([-1 if a.label is None else a.label for a in scored.articles])
    has_label = labels >= 0
    metrics = (
        at_threshold(labels[has_label], scored.scores[has_label], threshold) if has_label.any() else None
    )
    if metrics is not None:
        metrics.intervals = intervals_of(labels[has_label], scored.scores[has_label], threshold)
    unlabeled = np.flatnonzero(~has_label)
    alerts = int((scored.scores[unlabeled] >= threshold).sum())
    best = unlabeled[np.argsort(-scored.scores[unlabeled], kind="stable")[:top]]
    return Evaluation(
        n=len(labels),
        threshold=threshold,
        labeled=metrics,
        unlabeled=len(unlabeled),
        unlabeled_alerts=alerts,
        unlabeled_alert_rate=alerts / len(unlabeled) if len(unlabeled) else None,
        top_unlabeled=[
            TopArticle(
                id=scored.articles[i].id,
                score=float(scored.scores[i]),
                title=scored.articles[i].title or scored.articles[i].text[:80],
            )
            for i in best
        ],
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_evaluation(evaluation: Evaluation, header: str = "") -> str:
    lines = [header] if header else []
    if evaluation.skipped_empty:
        lines.append(
            f"skipped {evaluation.skipped_empty} articles with empty text (the scorer dead-letters them)"
        )
    m = evaluation.labeled
    if m is not None:
        c = m.confusion
        lines += [
            f"labeled articles  {m.n} ({m.positives} positive), threshold {evaluation.threshold:.4f}",
            f"precision {m.precision:.4f}   recall {m.recall:.4f}   F1 {m.f1:.4f}",
            f"AUROC     {_pct(m.auroc)}   AUPRC  {_pct(m.auprc)}",
        ]
        if m.intervals is not None:
            spans = "   ".join(f"{f} {i.low:.3f}-{i.high:.3f}" for f, i in m.intervals.items())
            lines.append(f"95% intervals (stratified bootstrap): {spans}")
        lines += [
            "confusion          predicted+  predicted-",
            f"  actual+          {c.tp:>10}  {c.fn:>10}",
            f"  actual-          {c.fp:>10}  {c.tn:>10}",
        ]
    if evaluation.unlabeled:
        lines.append(
            f"unlabeled articles {evaluation.unlabeled}: {evaluation.unlabeled_alerts} alerts "
            f"({(evaluation.unlabeled_alert_rate or 0):.2%}); highest scored:"
        )
        lines += [f"  {t.score:.3f}  {t.title}" for t in evaluation.top_unlabeled]
    return "\n".join(lines)


def to_json(evaluation: Evaluation, **extra: Any) -> str:
    return json.dumps({**extra, **evaluation.model_dump()}, indent=2)
