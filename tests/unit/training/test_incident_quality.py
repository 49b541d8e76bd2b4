"""The quality measure of incident grouping: pairwise precision and recall."""

import numpy as np

from training.bench.incident_quality import candidate_pairs, pairwise


def test_pairwise_precision_and_recall_count_pairs_within_the_truth_window() -> None:
    days = np.asarray([0, 0, 1, 5, 5], dtype=np.int64)
    pairs = candidate_pairs(days)
    assert sorted(zip(*(p.tolist() for p in pairs), strict=True)) == [(0, 1), (0, 2), (1, 2), (3, 4)]
    truth = ["x", "x", "y", None, None]  # no header: an incident of its own
    predicted = ["1", "1", "1", "2", "2"]
    scored = pairwise(predicted, truth, pairs)
    assert scored.predicted_pairs == 4
    assert scored.true_pairs == 1
    assert scored.precision == 0.25
    assert scored.recall == 1.0
