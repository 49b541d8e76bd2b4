"""Binary classification metrics in numpy alone, so that evaluation needs no scikit-learn.

The definitions follow scikit-learn's (``roc_auc_score``, ``average_precision_score``); the
unit tests check them against it.
"""

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from stream.scoring.bootstrap import Interval


class Confusion(BaseModel):
    tp: int
    fp: int
    tn: int
    fn: int


class Metrics(BaseModel):
    n: int
    positives: int
    threshold: float
    precision: float
    recall: float
    f1: float
    auroc: float | None  # undefined when only one class is present
    auprc: float | None
    confusion: Confusion
    # 95% stratified-bootstrap intervals of precision, recall and AUPRC (stream.scoring.bootstrap),
    # where whoever computed the metrics asked for them.
    intervals: dict[str, Interval] | None = None


def _as_arrays(
    labels: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("labels and scores must be 1-D and of the same length")
    return y, s


def auroc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float | None:
    """Area under the ROC curve via the Mann-Whitney statistic, ties counted half."""
    y, s = _as_arrays(labels, scores)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # Average ranks over runs of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(s)]))
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pr_curve(
    labels: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Precision, recall and threshold at every distinct score, highest threshold first."""
    y, s = _as_arrays(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s) - 1]
    tp = np.cumsum(y_sorted)[last_of_run]
    predicted = last_of_run + 1
    precision = tp / predicted
    recall = tp / max(int(y.sum()), 1)
    return precision, recall, s_sorted[last_of_run]


def auprc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float | None:
    """Average precision: the step-wise area under the precision-recall curve."""
    y, _ = _as_arrays(labels, scores)
    if y.sum() == 0 or y.sum() == len(y):
        return None
    precision, recall, _thresholds = pr_curve(labels, scores)
    steps = np.diff(np.r_[0.0, recall])
    return float((steps * precision).sum())


def at_threshold(labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float) -> Metrics:
    """All metrics, with an article predicted positive when its score is >= threshold."""
    y, s = _as_arrays(labels, scores)
    predicted = s >= threshold
    tp = int((predicted & (y == 1)).sum())
    fp = int((predicted & (y == 0)).sum())
    fn = int((~predicted & (y == 1)).sum())
    tn = int((~predicted & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Metrics(
        n=len(y),
        positives=int(y.sum()),
        threshold=float(threshold),
        precision=precision,
        recall=recall,
        f1=f1,
        auroc=auroc(y, s),
        auprc=auprc(y, s),
        confusion=Confusion(tp=tp, fp=fp, tn=tn, fn=fn),
    )


def best_f1_threshold(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """The threshold (one of the scores) that maximises F1; the highest such on ties."""
    precision, recall, thresholds = pr_curve(labels, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def precision_threshold(labels: npt.ArrayLike, scores: npt.ArrayLike, target: float) -> float | None:
    """The lowest threshold whose precision reaches target, or None when none does."""
    precision, _recall, thresholds = pr_curve(labels, scores)
    reaching = np.flatnonzero(precision >= target)
    if len(reaching) == 0:
        return None
    return float(thresholds[reaching[-1]])
