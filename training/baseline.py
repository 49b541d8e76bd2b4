"""The TF-IDF + logistic regression baseline the fine-tuned model has to beat.

It sees the same cleaned text and the same splits; its regularisation is chosen on validation
AUPRC, as the model's early stopping is, so neither gets an unfair look at the test data.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream.metrics import auprc, best_f1_threshold

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

    best: tuple[float, Any, float] | None = None
    for c in C_GRID:
        pipeline = make_pipeline(
            TfidfVectorizer(
                ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True, max_features=200_000
            ),
            LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed),
        )
        pipeline.fit(list(train_texts), train_labels)
        score = auprc(val_labels, pipeline.predict_proba(list(val_texts))[:, 1]) or 0.0
        if best is None or score > best[0]:
            best = (score, pipeline, c)
    assert best is not None
    _, pipeline, c = best
    mask = np.ones(len(val_labels), dtype=bool) if threshold_mask is None else threshold_mask
    scores = pipeline.predict_proba(list(val_texts))[:, 1]
    threshold = best_f1_threshold(val_labels[mask], scores[mask])
    return Baseline(pipeline, c, threshold)
