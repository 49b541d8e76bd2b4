"""Score drift: the last hour's score distribution against the bundle's validation distribution.

The statistic is the population stability index over the deciles of the reference,
PSI = sum over bins of (live - ref) * ln(live / ref), with each share floored at 1e-4. The
reference is the shipped model's scores on the validation articles of the threshold domain that
are *not* attacks, or for novelty and ood bundles on their held-out normal articles (recorded at
export as ``score_distribution`` in the manifest): the feed is
overwhelmingly ordinary news, so a real attack and its reports barely move it (2% of scores in
the top decile add about 0.02), while a feed whose ordinary news now scores differently moves
it at once. Drift is flagged at PSI >= 0.25 (the usual "significant shift") once the hour holds
at least 200 scores; at that size the PSI of a sample drawn from the reference itself stays
around (bins - 1) / n = 0.045, well below.

Kafka-free: the service (metrics), `wirewatch web` and `wirewatch tail --stats` feed it.
"""

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

PSI_THRESHOLD = 0.25
MIN_SCORES = 200
HISTOGRAM_BINS = 20
QUANTILE_BINS = 10
FLOOR = 1e-4
WINDOW_S = 3600.0
BUCKET_S = 60.0


class ScoreDistribution(BaseModel):
    """The reference a live score distribution is compared with; recorded in the bundle at export."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="Which scores: e.g. validation articles of domain 'modern', label 0")
    n: int = Field(ge=1)
    edges: list[float] = Field(
        description="Inner bin edges (the reference's minimum, deciles and just above its maximum); bins are [e_i, e_i+1)"
    )
    proportions: list[float] = Field(description="Share of the reference in each bin (len(edges) + 1)")
    histogram: list[float] = Field(
        description=f"Share in each of {HISTOGRAM_BINS} equal bins of [0, 1], for display"
    )
    positive_rate: float | None = Field(None, description="Share of attacks among the validation articles")


def _hist(scores: npt.NDArray[np.float64]) -> list[float]:
    counts, _ = np.histogram(np.clip(scores, 0.0, 1.0), bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return [float(c) / max(len(scores), 1) for c in counts]


def reference_from_scores(
    scores: Iterable[float], source: str, positive_rate: float | None = None
) -> ScoreDistribution:
    values = np.asarray(list(scores), dtype=np.float64)
    if len(values) == 0:
        raise ValueError("no scores to build a reference distribution from")
    quantiles = np.quantile(values, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1])
    # The outer edges give scores below or above anything the reference holds bins of their own.
    # A bundle whose normal articles all score alike has one distinct decile; without them a feed
    # scoring far above it shared that decile's bin and read as no drift at all.
    outer = (round(float(values.min()), 6), round(float(values.max()), 6) + 1e-6)
    edges = sorted({round(float(q), 6) for q in quantiles} | set(outer))
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return ScoreDistribution(
        source=source,
        n=len(values),
        edges=edges,
        proportions=[float(c) / len(values) for c in counts],
        histogram=_hist(values),
        positive_rate=positive_rate,
    )


def psi(reference: list[float], counts: list[int] | npt.NDArray[np.int64]) -> float:
    total = float(np.sum(counts))
    if total <= 0:
        return 0.0
    value = 0.0
    for expected, count in zip(reference, counts, strict=True):
        e, a = max(expected, FLOOR), max(float(count) / total, FLOOR)
        value += (a - e) * math.log(a / e)
    return value


@dataclass
class _Bucket:
    start: float
    histogram: npt.NDArray[np.int64]
    bins: npt.NDArray[np.int64]
    alerts: int = 0


@dataclass
class DriftSnapshot:
    scores: int
    alerts: int
    alerts_per_hour: float
    histogram: list[float]  # shares over HISTOGRAM_BINS
    per_minute: list[tuple[float, int, int]]  # (minute start, scores, alerts), oldest first
    psi: float | None
    drifted: bool
    reference: ScoreDistribution | None

    def as_dict(self) -> dict[str, object]:
        return {
            "scores": self.scores,
            "alerts": self.alerts,
            "alerts_per_hour": round(self.alerts_per_hour, 2),
            "histogram": [round(h, 5) for h in self.histogram],
            "reference_histogram": self.reference.histogram if self.reference else None,
            "per_minute": [[t, n, a] for t, n, a in self.per_minute],
            "psi": None if self.psi is None else round(self.psi, 4),
            "psi_threshold": PSI_THRESHOLD,
            "min_scores": MIN_SCORES,
            "drifted": self.drifted,
        }


@dataclass
class DriftWindow:
    """Scores of the last hour in one-minute buckets; clock() is Unix time (or a test's)."""

    reference: ScoreDistribution | None = None
    clock: Callable[[], float] = time.time
    window_s: float = WINDOW_S
    buckets: deque[_Bucket] = field(default_factory=deque)

    def _bucket(self, at: float) -> _Bucket:
        start = at - at % BUCKET_S
        if self.buckets and self.buckets[-1].start == start:
            return self.buckets[-1]
        for bucket in self.buckets:  # a late score (its own timestamp) lands in its minute
            if bucket.start == start:
                return bucket
        n_bins = len(self.reference.proportions) if self.reference else 1
        bucket = _Bucket(start, np.zeros(HISTOGRAM_BINS, np.int64), np.zeros(n_bins, np.int64))
        self.buckets.append(bucket)
        if len(self.buckets) > 1 and self.buckets[-2].start > start:
            self.buckets = deque(sorted(self.buckets, key=lambda b: b.start))
        return bucket

    def set_reference(self, reference: ScoreDistribution | None) -> None:
        """A new bundle's reference: the bins change, so the window starts over."""
        if reference != self.reference:
            self.reference = reference
            self.buckets.clear()

    def observe(self, score: float, is_alert: bool, at: float | None = None) -> None:
        now = self.clock() if at is None else at
        if now < self.clock() - self.window_s:
            return
        bucket = self._bucket(now)
        bucket.histogram[min(int(score * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
        if self.reference is not None:
            bucket.bins[int(np.searchsorted(self.reference.edges, score, side="right"))] += 1
        bucket.alerts += int(is_alert)

    def _expire(self, now: float) -> None:
        while self.buckets and self.buckets[0].start + BUCKET_S <= now - self.window_s:
            self.buckets.popleft()

    def snapshot(self) -> DriftSnapshot:
        now = self.clock()
        self._expire(now)
        histogram = np.zeros(HISTOGRAM_BINS, np.int64)
        bins = np.zeros(len(self.reference.proportions) if self.reference else 1, np.int64)
        alerts = 0
        for b in self.buckets:
            histogram += b.histogram
            bins += b.bins
            alerts += b.alerts
        n = int(histogram.sum())
        value = psi(self.reference.proportions, bins) if self.reference is not None and n else None
        span_h = self.window_s / 3600.0
        return DriftSnapshot(
            scores=n,
            alerts=alerts,
            alerts_per_hour=alerts / span_h,
            histogram=[float(c) / n for c in histogram] if n else [0.0] * HISTOGRAM_BINS,
            per_minute=[(b.start, int(b.histogram.sum()), b.alerts) for b in self.buckets],
            psi=value,
            drifted=value is not None and n >= MIN_SCORES and value >= PSI_THRESHOLD,
            reference=self.reference,
        )
