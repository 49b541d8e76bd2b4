"""Bootstrap intervals: a resample's weights give exactly the figures of the resampled data."""

import numpy as np
import pytest

from stream.scoring.bootstrap import figures, intervals, resample_weights
from stream.scoring.metrics import at_threshold, auprc


def _data(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.1).astype(np.int64)
    labels[:2] = [0, 1]
    # Rounded, so that runs of equal scores (ties) are common.
    scores = np.round(np.clip(rng.normal(0.3 + 0.35 * labels, 0.2), 0, 1), 2)
    return labels, scores


def test_unit_weights_give_the_metrics_of_the_data() -> None:
    labels, scores = _data(500)
    found = figures(labels, scores, 0.5, np.ones((1, len(labels)), dtype=np.float32))
    m = at_threshold(labels, scores, 0.5)
    assert found["precision"][0] == pytest.approx(m.precision)
    assert found["recall"][0] == pytest.approx(m.recall)
    assert found["auprc"][0] == pytest.approx(m.auprc)


def test_a_resample_weighs_each_article_by_how_often_it_was_drawn() -> None:
    labels, scores = _data(300)
    weights = resample_weights(labels, 5, seed=7)
    found = figures(labels, scores, 0.45, weights)
    for row, w in enumerate(weights):
        drawn = np.repeat(np.arange(len(labels)), w.astype(np.int64))
        m = at_threshold(labels[drawn], scores[drawn], 0.45)
        assert found["precision"][row] == pytest.approx(m.precision)
        assert found["recall"][row] == pytest.approx(m.recall)
        assert found["auprc"][row] == pytest.approx(auprc(labels[drawn], scores[drawn]))


def test_resamples_keep_each_class_size() -> None:
    labels, _ = _data(400)
    weights = resample_weights(labels, 50, seed=1)
    assert (weights[:, labels == 1].sum(axis=1) == labels.sum()).all()
    assert (weights[:, labels == 0].sum(axis=1) == (labels == 0).sum()).all()
    # Drawn with replacement: some articles twice or more, some never.
    assert (weights == 0).any()
    assert (weights >= 2).any()


def test_intervals_hold_the_point_and_narrow_with_more_data() -> None:
    small, large = _data(300), _data(6000)
    widths = []
    for labels, scores in (small, large):
        bounds, _ = intervals(labels, {"model": (scores, 0.5)}, resamples=400)
        m = at_threshold(labels, scores, 0.5)
        points = {"precision": m.precision, "recall": m.recall, "auprc": m.auprc}
        for name, value in points.items():
            assert bounds["model"][name].low <= value <= bounds["model"][name].high
        widths.append(bounds["model"]["auprc"].high - bounds["model"]["auprc"].low)
    assert widths[1] < widths[0] / 2


def test_a_margin_is_paired_and_signed() -> None:
    labels, scores = _data(800)
    noisy = np.clip(scores + np.random.default_rng(5).normal(0, 0.3, len(scores)), 0, 1)
    systems = {"model": (scores, 0.5), "same": (scores.copy(), 0.5), "worse": (noisy, 0.5)}
    bounds, margins = intervals(labels, systems, reference="model", resamples=300)
    assert set(margins) == {"same", "worse"}
    same = margins["same"]["auprc"]
    assert (same.difference, same.low, same.high, same.ahead) == (0.0, 0.0, 0.0, 0.0)
    worse = margins["worse"]["auprc"]
    assert worse.difference == pytest.approx(auprc(labels, scores) - auprc(labels, noisy))
    assert 0 < worse.low <= worse.difference <= worse.high
    assert worse.ahead == 1.0
    # Paired: the difference's interval is narrower than the gap the two intervals leave.
    separate = bounds["model"]["auprc"].high - bounds["worse"]["auprc"].low
    assert worse.high - worse.low < separate


def test_the_same_seed_gives_the_same_intervals() -> None:
    labels, scores = _data(200)
    first = intervals(labels, {"model": (scores, 0.4)}, resamples=100, seed=9)
    assert first == intervals(labels, {"model": (scores, 0.4)}, resamples=100, seed=9)
    assert first != intervals(labels, {"model": (scores, 0.4)}, resamples=100, seed=10)


def test_one_class_has_no_interval() -> None:
    with pytest.raises(ValueError, match="both classes"):
        intervals(np.zeros(10, dtype=np.int64), {"model": (np.linspace(0, 1, 10), 0.5)})
