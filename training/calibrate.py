"""Temperature scaling with a bias term, fitted on validation logits.

Class-weighted training shifts logits towards the rarer class, which a temperature alone cannot
undo, hence the bias. Both are monotone, so ranking metrics (AUROC, AUPRC) do not change.
"""

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize


def _nll(
    params: npt.NDArray[np.float64], logits: npt.NDArray[np.float64], labels: npt.NDArray[np.float64]
) -> float:
    log_t, bias = params
    z = logits / np.exp(log_t) + bias
    # log(1 + e^z) - y z, written to stay finite for large |z|.
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def fit_temperature(logits: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[float, float]:
    """(temperature, bias) minimising the log loss of sigmoid(logit / temperature + bias)."""
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    result = minimize(
        _nll, x0=np.array([0.0, 0.0]), args=(x, y), method="L-BFGS-B", bounds=[(-5.0, 5.0), (-20.0, 20.0)]
    )
    log_t, bias = result.x
    return float(np.exp(log_t)), float(bias)


def apply_temperature(logits: npt.ArrayLike, temperature: float, bias: float) -> npt.NDArray[np.float64]:
    z = np.asarray(logits, dtype=np.float64) / temperature + bias
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def expected_calibration_error(probs: npt.ArrayLike, labels: npt.ArrayLike, bins: int = 10) -> float:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(p[in_bin].mean() - y[in_bin].mean())
    return float(error)
