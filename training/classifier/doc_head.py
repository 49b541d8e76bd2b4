"""The document-level decision: a small logistic head over an article's window scores.

A window model scores each window of an article; ``chunk_max`` then makes the article an alert as
soon as one window reads like an attack report, so a policy feature that recalls last year's
bombing is one. The head weighs the lead window (headline and first paragraphs, where a report
states its main subject) against the best window and the mean (the first three of stream.scoring.encoding.HEAD_FEATURES), with weights
fitted by logistic regression on the validation articles the threshold is chosen on: those
labelled by the guide's main-subject definition (modern items and full-length articles). MUC's
"relevant" means an incident template anywhere in the report, which would teach the head to
trust the best window over the lead. The length itself is left out: how often long articles
are attack reports is a property of a corpus (0.5% of AllSides, over half of MUC), not of news.
The fit also picks how many windows are read at all: the fewest whose validation score is within
``tolerance`` of the best, since every window read costs a model call.

The weights are kept non-negative: a window that reads more like an attack report never lowers
an article's score. Unconstrained, the fit can learn to subtract the best window where its
validation articles reward it (after `--label-balance domain` training: lead 0.64, max -0.31,
mean 0.71), which buries any report whose incident is not in its lead, as MUC's often are: MUC
validation AUROC 0.813 and recall 0.50, against 0.834 and 0.72 for the default bundle.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream.scoring.bundle import DocHead
from stream.scoring.encoding import HEAD_FEATURES, read_by_lead, window_features
from training.finetune import selection_score

WINDOW_CHOICES = (1, 2, 3, 4, 6, 8)


@dataclass
class HeadFit:
    windows: int  # windows read per article
    head: DocHead
    score: float  # mean validation AUPRC over domains, in sample
    tried: dict[int, float] = field(default_factory=dict)  # windows -> that score
    scores: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0))


def calibrated_windows(
    logits: list[npt.NDArray[np.float32]], temperature: float, bias: float, windows: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The calibrated scores of each document's first `windows` windows, flat, and their owners."""
    kept = [w[:windows] for w in logits]
    z = np.concatenate(kept).astype(np.float64) / temperature + bias
    owner = np.repeat(np.arange(len(kept)), [len(w) for w in kept])
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32), owner.astype(np.int64)


def fit_head(
    logits: list[npt.NDArray[np.float32]],
    labels: npt.NDArray[np.int64],
    temperature: float,
    bias: float,
    groups: dict[str, npt.NDArray[np.bool_]],
    max_windows: int,
    fit_on: npt.NDArray[np.bool_] | None = None,
    features: int = 3,
    tolerance: float = 0.003,
) -> HeadFit:
    """groups: the validation domains the choice of windows averages over (those with articles in
    fit_on); fit_on: the validation articles the weights are fitted on (default all)."""
    fit_on = np.ones(len(labels), dtype=bool) if fit_on is None else fit_on
    fitted_groups = {name: mask & fit_on for name, mask in groups.items() if (mask & fit_on).any()}
    fits: dict[int, HeadFit] = {}
    for k in [c for c in WINDOW_CHOICES if c <= max_windows]:
        values, owner = calibrated_windows(logits, temperature, bias, k)
        x = window_features(values, owner, len(logits))[:, :features]
        weights, intercept = fit_logistic(x[fit_on], labels[fit_on])
        scores = 1.0 / (1.0 + np.exp(-(x @ weights + intercept)))
        score, _ = selection_score(labels, scores, fitted_groups)
        head = DocHead(
            features=list(HEAD_FEATURES[:features]),
            weights=[round(float(w), 6) for w in weights],
            bias=round(float(intercept), 6),
        )
        fits[k] = HeadFit(k, head, score, scores=scores)
    best = max(f.score for f in fits.values())
    chosen = min(k for k, f in fits.items() if f.score >= best - tolerance)
    fit = fits[chosen]
    fit.tried = {k: round(f.score, 4) for k, f in fits.items()}
    return fit


# Log-odds added to the most alarming validation window for the windows the lead-first bound
# assumes an article may hold: int8 scores move by about 1e-3 against the fp32 windows it is
# computed on, and new articles may read a little more alarming than any validation window did.
CAP_MARGIN = 1.0


def read_more_above(head: DocHead, windows: int, threshold: float, cap: float) -> float | None:
    """The score of an article's lead alone (through the head, as a one-window text) below which
    its other windows need not be read: with none of them above `cap` log-odds, they could lift
    neither the lead alone nor the whole article to `threshold`. None where no lead is that low.

    With non-negative weights a (lead), b (max), c (mean), e (windows) and bias d, an article of
    k windows whose lead has log-odds L <= cap scores at most
    a L + b cap + c (L + (k - 1) cap) / k + e (k - 1) + d, rising with k; so the bound takes the
    head's own window count, solves for L at the threshold, and gives the lead alone's score there.
    """
    weights = dict.fromkeys(HEAD_FEATURES, 0.0) | dict(zip(head.features, head.weights, strict=True))
    a, b, c, e = (weights[f] for f in HEAD_FEATURES)
    d, k = head.bias, windows
    if min(a, b, c) < 0 or a + c / k <= 0 or a + b + c <= 0:
        return None  # the lead does not bound the score
    target = float(np.log(threshold) - np.log1p(-threshold))
    lead = (target - d - b * cap - c * (k - 1) * cap / k - max(0.0, e * (k - 1))) / (a + c / k)
    lead = min(lead, cap, (target - d) / (a + b + c))
    bound = float(1.0 / (1.0 + np.exp(-((a + b + c) * lead + d))))
    if not 0.0 < bound < 1.0:
        return None
    return float(f"{bound * (1.0 - 1e-6):.6g}")  # six digits, never above the exact bound


@dataclass(frozen=True)
class LeadFirst:
    bound: float | None  # long_text.read_more_above
    cap: float  # the log-odds the bound allows any other window
    longer: int  # validation articles of more than one window
    # Per validation article, whether its lead alone scores it (by the fp32 logits; None without a bound).
    by_lead: npt.NDArray[np.bool_] | None = None

    @property
    def skipped(self) -> int:
        """Validation articles of more than one window scored by their lead alone."""
        return 0 if self.by_lead is None else int(self.by_lead.sum())


def lead_first(
    fit: HeadFit, logits: list[npt.NDArray[np.float32]], temperature: float, bias: float, threshold: float
) -> LeadFirst:
    """The lead-first bound of a fitted head at the shipped threshold, from the validation windows'
    raw logits (the cap is the most alarming of them, calibrated, plus CAP_MARGIN)."""
    cap = float(np.concatenate(logits).max()) / temperature + bias + CAP_MARGIN
    bound = read_more_above(fit.head, fit.windows, threshold, cap)
    counts = np.asarray([len(w) for w in logits])
    if bound is None:
        return LeadFirst(bound, cap, int((counts > 1).sum()))
    leads, _ = calibrated_windows(logits, temperature, bias, 1)
    by_lead = read_by_lead(leads, counts, fit.head.weights, fit.head.bias, bound)[1]
    return LeadFirst(bound, cap, int((counts > 1).sum()), by_lead)


def fit_logistic(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    c: float = 1.0,
    floors: Sequence[float] | None = None,
) -> tuple[npt.NDArray[np.float64], float]:
    """L2-regularised logistic regression with non-negative weights and a free intercept.

    floors: a lower bound per weight (default 0), for heads that must keep a feature such as the
    best window (training/bench/heads.py).

    The objective is scikit-learn's LogisticRegression(C=c) (0.5 |w|^2 + C * log loss summed over
    rows), solved to a tighter tolerance than its default: the window features are nearly collinear
    (lead, max and mean are one number for a short text), where its default stops short of the
    optimum. Where the unconstrained optimum has non-negative weights, this is that optimum."""
    from scipy.optimize import minimize

    target = y.astype(np.float64)

    def objective(params: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        w, b = params[:-1], params[-1]
        z = x @ w + b
        # log(1 + e^z) - y z, computed without overflow
        loss = float(np.sum(np.logaddexp(0.0, z) - target * z))
        residual = 1.0 / (1.0 + np.exp(-z)) - target
        gradient = np.append(w + c * (x.T @ residual), c * residual.sum())
        return 0.5 * float(w @ w) + c * loss, gradient

    lower = [0.0] * x.shape[1] if floors is None else [float(f) for f in floors]
    if len(lower) != x.shape[1] or min(lower) < 0.0:
        raise ValueError(f"floors: one non-negative bound per feature ({x.shape[1]}), got {floors}")
    start = np.append(np.asarray(lower, dtype=np.float64), 0.0)
    bounds: list[tuple[float | None, float | None]] = [(f, None) for f in lower] + [(None, None)]
    found = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 10000, "ftol": 1e-14, "gtol": 1e-9},
    )
    return np.asarray(found.x[:-1], dtype=np.float64), float(found.x[-1])
