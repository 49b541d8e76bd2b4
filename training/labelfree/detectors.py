"""Distance-based anomaly statistics on unit-length window embeddings, in numpy and as graph heads.

- kNN: the mean cosine distance to the k nearest normal windows in a memory bank. Local: a
  normal class made of several topics stays several tight groups.
- Mahalanobis: the squared distance to the mean of the normal windows under their covariance
  (Ledoit-Wolf shrinkage, since a few hundred articles do not pin down 384 x 384 numbers).
  Global: it sees how far a window lies outside the normal class's overall shape.
- hybrid: kNN plus a quarter of Mahalanobis, each first put in units of its own spread on
  held-out normal windows (z-scores), so neither dominates by its scale. Local and global
  evidence fail on different corpora (on bench-ad, kNN alone lost Reuters, Mahalanobis alone
  lost BBC); the sum lost neither. The weight is one constant for every corpus.

Both exist twice, as numpy (fitting, selection, the benchmark) and as a torch module that
computes the same number inside the exported ONNX graph; tests hold them equal.
"""

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from training.model import import_torch

FloatArray = npt.NDArray[np.float32]
MethodName = Literal["knn", "mahalanobis", "hybrid"]
_CHUNK = 2048  # queries per block: keeps the similarity matrix at a few tens of MB
HYBRID_MAHALANOBIS_WEIGHT = 0.25


@dataclass
class Knn:
    bank: FloatArray  # unit-length normal window embeddings, one per row
    k: int

    name: MethodName = "knn"

    def raw(self, vectors: FloatArray) -> FloatArray:
        out = np.empty(len(vectors), dtype=np.float32)
        bank_t = self.bank.T
        for start in range(0, len(vectors), _CHUNK):
            sim = vectors[start : start + _CHUNK] @ bank_t
            top = -np.partition(-sim, self.k - 1, axis=1)[:, : self.k]
            out[start : start + _CHUNK] = 1.0 - top.mean(axis=1)
        return out

    def head(self) -> Any:
        torch = import_torch()
        bank = torch.from_numpy(np.ascontiguousarray(self.bank.T))
        k = self.k

        class KnnDistance(torch.nn.Module):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("normal_bank_t", bank)

            def forward(self, vectors: Any) -> Any:
                sim = vectors @ self.normal_bank_t
                return 1.0 - torch.topk(sim, k, dim=1).values.mean(dim=1)

        return KnnDistance()

    def parameters(self) -> dict[str, Any]:
        return {"k": self.k, "distance": "mean cosine distance to the k nearest bank windows"}


@dataclass
class Mahalanobis:
    mean: FloatArray
    whitening: FloatArray  # W with W W^T = precision, so distance = |(x - mean) W|^2
    shrinkage: float

    name: MethodName = "mahalanobis"

    def raw(self, vectors: FloatArray) -> FloatArray:
        projected = (vectors - self.mean) @ self.whitening
        return np.asarray((projected**2).sum(axis=1), dtype=np.float32)

    def head(self) -> Any:
        torch = import_torch()
        mean = torch.from_numpy(self.mean.astype(np.float32))
        whitening = torch.from_numpy(self.whitening.astype(np.float32))

        class MahalanobisDistance(torch.nn.Module):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("normal_mean", mean)
                self.register_buffer("normal_whitening", whitening)

            def forward(self, vectors: Any) -> Any:
                projected = (vectors - self.normal_mean) @ self.normal_whitening
                return (projected * projected).sum(dim=1)

        return MahalanobisDistance()

    def parameters(self) -> dict[str, Any]:
        return {"covariance": "Ledoit-Wolf shrinkage", "shrinkage": round(self.shrinkage, 6)}


@dataclass
class Hybrid:
    knn: Knn
    mahalanobis: Mahalanobis
    centre: tuple[float, float]  # mean of each statistic on held-out normal windows
    spread: tuple[float, float]  # and its standard deviation
    weight: float = HYBRID_MAHALANOBIS_WEIGHT

    name: MethodName = "hybrid"

    def raw(self, vectors: FloatArray) -> FloatArray:
        local = (self.knn.raw(vectors) - self.centre[0]) / self.spread[0]
        overall = (self.mahalanobis.raw(vectors) - self.centre[1]) / self.spread[1]
        return np.asarray(local + self.weight * overall, dtype=np.float32)

    def head(self) -> Any:
        torch = import_torch()
        (c_knn, c_maha), (s_knn, s_maha), weight = self.centre, self.spread, self.weight
        knn_head, maha_head = self.knn.head(), self.mahalanobis.head()

        class HybridDistance(torch.nn.Module):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.knn = knn_head
                self.mahalanobis = maha_head

            def forward(self, vectors: Any) -> Any:
                local = (self.knn(vectors) - c_knn) / s_knn
                return local + weight * ((self.mahalanobis(vectors) - c_maha) / s_maha)

        return HybridDistance()

    def parameters(self) -> dict[str, Any]:
        return {
            **self.knn.parameters(),
            **self.mahalanobis.parameters(),
            "mahalanobis_weight": self.weight,
            "standardised_on": "held-out normal windows (val)",
            "centre": [round(v, 6) for v in self.centre],
            "spread": [round(v, 6) for v in self.spread],
        }


Detector = Knn | Mahalanobis | Hybrid


def fit_knn(vectors: FloatArray, k: int, bank_size: int, seed: int = 13) -> Knn:
    """A bank of at most bank_size windows: a uniform random sample when there are more.

    A uniform sample keeps the density of normal news, which the k nearest neighbours
    measure; a coreset would keep the rare corners and lose it.
    """
    if len(vectors) > bank_size:
        rows = np.sort(np.random.default_rng(seed).choice(len(vectors), size=bank_size, replace=False))
        vectors = vectors[rows]
    return Knn(np.ascontiguousarray(vectors, dtype=np.float32), min(k, len(vectors)))


def fit_mahalanobis(vectors: FloatArray) -> Mahalanobis:
    from sklearn.covariance import LedoitWolf

    data = vectors.astype(np.float64)
    fitted = LedoitWolf().fit(data)
    precision = np.linalg.inv(fitted.covariance_)
    whitening = np.linalg.cholesky((precision + precision.T) / 2)
    return Mahalanobis(
        fitted.location_.astype(np.float32), whitening.astype(np.float32), float(fitted.shrinkage_)
    )


def fit_hybrid(vectors: FloatArray, reference: FloatArray, k: int, bank_size: int, seed: int = 13) -> Hybrid:
    """Both detectors on vectors; reference (held-out normal windows) sets their z-score units."""
    if len(reference) < 2:
        raise ValueError("hybrid needs at least two held-out normal windows to standardise on")
    knn, maha = fit_knn(vectors, k, bank_size, seed), fit_mahalanobis(vectors)
    local, overall = knn.raw(reference), maha.raw(reference)
    return Hybrid(
        knn,
        maha,
        (float(local.mean()), float(overall.mean())),
        (max(float(local.std()), 1e-6), max(float(overall.std()), 1e-6)),
    )


def fit(
    name: MethodName,
    vectors: FloatArray,
    k: int,
    bank_size: int,
    seed: int = 13,
    reference: FloatArray | None = None,
) -> Detector:
    if name == "knn":
        return fit_knn(vectors, k, bank_size, seed)
    if name == "mahalanobis":
        return fit_mahalanobis(vectors)
    if reference is None:
        raise ValueError("hybrid needs held-out normal windows (reference) to standardise on")
    return fit_hybrid(vectors, reference, k, bank_size, seed)


def per_article_max(values: FloatArray, owner: npt.NDArray[np.int64], n: int) -> FloatArray:
    out = np.full(n, -np.inf, dtype=np.float32)
    np.maximum.at(out, owner, values)
    return out
