"""The TF-IDF + logistic regression baseline the fine-tuned model has to beat.

It sees the same cleaned text and the same splits; its regularisation is chosen on validation
AUPRC, as the model's early stopping is, so neither gets an unfair look at the test data.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream.scoring.metrics import auprc, best_f1_threshold

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


@dataclass
class Baseline:
    pipeline: Any
    C: float
    threshold: float

    def score(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        return np.asarray(self.pipeline.predict_proba(list(texts))[:, 1], dtype=np.float64)


def fit_baseline(
    train_texts: Sequence[str],
    train_labels: npt.NDArray[np.int64],
    val_texts: Sequence[str],
    val_labels: npt.NDArray[np.int64],
    seed: int = 13,
    threshold_mask: npt.NDArray[np.bool_] | None = None,
) -> Baseline:
    """C by validation AUPRC; the threshold at maximum F1 on the validation articles of the mask."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    # The vectorizer does not depend on C: fitted once, it leaves only the regressions to the grid.
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True, max_features=200_000
    )
    train_x = vectorizer.fit_transform(list(train_texts))
    val_x = vectorizer.transform(list(val_texts))
    best: tuple[float, Any, float, Any] | None = None
    for c in C_GRID:
        regression = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
        regression.fit(train_x, train_labels)
        val_scores = regression.predict_proba(val_x)[:, 1]
        score = auprc(val_labels, val_scores) or 0.0
        if best is None or score > best[0]:
            best = (score, regression, c, val_scores)
    assert best is not None
    _, regression, c, scores = best
    pipeline = make_pipeline(vectorizer, regression)
    mask = np.ones(len(val_labels), dtype=bool) if threshold_mask is None else threshold_mask
    threshold = best_f1_threshold(val_labels[mask], scores[mask])
    return Baseline(pipeline, c, threshold)
