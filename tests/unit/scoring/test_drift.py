"""Drift of the score distribution: PSI against the bundle's reference, over the last hour."""

import numpy as np
import pytest

from stream.scoring.drift import MIN_SCORES, PSI_THRESHOLD, DriftWindow, psi, reference_from_scores


def test_psi_is_near_zero_for_the_reference_itself_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = reference_from_scores(rng.beta(1, 12, 5000).tolist(), "test")
    assert len(reference.proportions) == len(reference.edges) + 1
    assert sum(reference.proportions) == pytest.approx(1.0)
    same = np.bincount(
        np.searchsorted(reference.edges, rng.beta(1, 12, 2000), side="right"),
        minlength=len(reference.proportions),
    )
    shifted = np.bincount(
        np.searchsorted(reference.edges, rng.beta(3, 8, 2000), side="right"),
        minlength=len(reference.proportions),
    )
    assert psi(reference.proportions, same) < 0.05
    assert psi(reference.proportions, shifted) > PSI_THRESHOLD


def test_a_feed_above_a_reference_of_identical_scores_is_drift() -> None:
    reference = reference_from_scores([0.031] * 400, "every normal article scores alike")
    assert sum(reference.proportions) == pytest.approx(1.0)
    window = DriftWindow(reference, clock=lambda: 1_000_000.0)
    for _ in range(MIN_SCORES):
        window.observe(0.031, False)
    assert not window.snapshot().drifted, "the reference itself is no drift"
    shifted = DriftWindow(reference, clock=lambda: 1_000_000.0)
    for _ in range(MIN_SCORES):
        shifted.observe(0.5, True)
    assert shifted.snapshot().drifted


def test_drift_window_keeps_one_hour_and_needs_enough_scores() -> None:
    now = [1_000_000.0]
    rng = np.random.default_rng(1)
    reference = reference_from_scores(rng.beta(1, 12, 5000).tolist(), "test")
    window = DriftWindow(reference, clock=lambda: now[0])
    for value in rng.beta(4, 4, MIN_SCORES - 1):
        window.observe(float(value), value > 0.5)
    few = window.snapshot()
    assert few.psi is not None
    assert few.psi > PSI_THRESHOLD
    assert not few.drifted, "below the minimum number of scores nothing is flagged"
    window.observe(0.6, True)
    assert window.snapshot().drifted
    assert window.snapshot().alerts == few.alerts + 1
    now[0] += 3601 + 60
    later = window.snapshot()
    assert later.scores == 0
    assert later.psi is None
    assert not later.drifted
