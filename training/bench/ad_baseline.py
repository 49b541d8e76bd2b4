"""TF-IDF one-class baselines: what the label-free modes have to beat with no neural network at all.

Fitted on the normal training texts only, like the models; they score raw (higher = more
anomalous), so their threshold is set on val to the same false-alarm rate.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Kind = Literal["knn", "ocsvm"]


@dataclass
class TfidfOneClass:
    kind: Kind
    vectorizer: Any
    model: Any  # the normalised training matrix (knn) or a fitted OneClassSVM
    k: int = 10

    def raw(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        matrix = self.vectorizer.transform(list(texts))
        if self.kind == "ocsvm":
            return np.asarray(-self.model.decision_function(matrix), dtype=np.float64)
        out = np.empty(matrix.shape[0], dtype=np.float64)
        k = min(self.k, self.model.shape[0])
        for start in range(0, matrix.shape[0], 1024):
            sim = (matrix[start : start + 1024] @ self.model.T).toarray()
            top = -np.partition(-sim, k - 1, axis=1)[:, :k]
            out[start : start + 1024] = 1.0 - top.mean(axis=1)
        return out

    @property
    def label(self) -> str:
        return "TF-IDF + kNN (k=10, cosine)" if self.kind == "knn" else "TF-IDF + OCSVM (linear, nu=0.1)"


def fit_tfidf(texts: Sequence[str], kind: Kind = "knn", k: int = 10) -> TfidfOneClass:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2 if len(texts) >= 50 else 1, stop_words="english")
    matrix = vectorizer.fit_transform(list(texts))
    if kind == "knn":
        return TfidfOneClass(kind, vectorizer, matrix, k)
    from sklearn.svm import OneClassSVM

    return TfidfOneClass(kind, vectorizer, OneClassSVM(kernel="linear", nu=0.1).fit(matrix), k)
