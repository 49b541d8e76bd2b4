"""The numpy metrics agree with scikit-learn's, and thresholds are chosen as documented."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from stream.scoring.metrics import at_threshold, auprc, auroc, best_f1_threshold, precision_threshold


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_auprc_match_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) * 0.6 + labels * 0.3, 2)  # many ties
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert auprc(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_one_class_gives_no_ranking_metrics() -> None:
    assert auroc([1, 1, 1], [0.1, 0.5, 0.9]) is None
    assert auprc([0, 0], [0.1, 0.2]) is None


def test_at_threshold_counts_ge_as_positive() -> None:
    m = at_threshold([1, 1, 0, 0, 1], [0.9, 0.5, 0.5, 0.1, 0.2], 0.5)
    assert (m.confusion.tp, m.confusion.fp, m.confusion.tn, m.confusion.fn) == (2, 1, 1, 1)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(f1_score([1, 1, 0, 0, 1], [1, 1, 1, 0, 0]))


def test_best_f1_threshold_is_optimal_over_all_cuts() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 200)
    scores = rng.random(200) + labels * 0.4
    threshold = best_f1_threshold(labels, scores)
    best = max(f1_score(labels, scores >= t) for t in np.unique(scores))
    assert f1_score(labels, scores >= threshold) == pytest.approx(best)


def test_precision_threshold_is_the_lowest_reaching_the_target() -> None:
    labels = np.array([1, 1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    assert precision_threshold(labels, scores, 1.0) == pytest.approx(0.8)
    assert precision_threshold(labels, scores, 0.75) == pytest.approx(0.6)
    assert precision_threshold(np.array([0, 1]), np.array([0.9, 0.1]), 1.0) is None
    assert precision_threshold(np.array([0, 0]), np.array([0.9, 0.1]), 0.5) is None
