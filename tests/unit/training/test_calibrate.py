"""Temperature scaling recovers a known calibration and never changes the ranking."""

import numpy as np
import pytest

from training.calibrate import apply_temperature, expected_calibration_error, fit_temperature


def test_recovers_a_known_temperature_and_bias() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, 20_000)
    true_p = 1 / (1 + np.exp(-(logits / 2.5 - 0.7)))
    labels = (rng.random(20_000) < true_p).astype(int)
    temperature, bias = fit_temperature(logits, labels)
    assert temperature == pytest.approx(2.5, rel=0.08)
    assert bias == pytest.approx(-0.7, abs=0.08)
    calibrated = apply_temperature(logits, temperature, bias)
    raw = apply_temperature(logits, 1.0, 0.0)
    assert expected_calibration_error(calibrated, labels) < expected_calibration_error(raw, labels)
    assert np.array_equal(np.argsort(calibrated), np.argsort(raw))
