"""The doc_head strategy: window features, the head in the manifest and the scorer, and its fit."""

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from stream.scoring.bundle import DocHead, LongText, load_bundle
from stream.scoring.encoding import HEAD_FEATURES, head_per_owner, window_features
from stream.scoring.scorer import Scorer
from tests.unit import toy_bundle
from tests.unit.toy_bundle import text, toy_score
from training.classifier.doc_head import fit_head

pytestmark = pytest.mark.unit


def _p(z: list[float]) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))).astype(np.float32)


def test_window_features_are_lead_max_mean_and_extra_windows_per_owner() -> None:
    values = _p([-2.0, 3.0, -1.0, 0.5])
    owner = np.asarray([0, 0, 0, 1])
    features = window_features(values, owner, 2)
    assert features.shape == (2, len(HEAD_FEATURES))
    np.testing.assert_allclose(features[0], [-2.0, 3.0, 0.0, 2.0], atol=1e-5)
    np.testing.assert_allclose(features[1], [0.5, 0.5, 0.5, 0.0], atol=1e-5)


def test_the_head_can_prefer_the_lead_over_an_alarming_later_window() -> None:
    # An article whose tenth paragraph recalls a bombing, and a report that leads with one.
    values = _p([-4.0, -4.0, 5.0, 5.0, 1.0, -3.0])
    owner = np.asarray([0, 0, 0, 1, 1, 1])
    by_max = head_per_owner(values, owner, 2, [0.0, 1.0, 0.0, 0.0], 0.0)
    assert by_max[0] == pytest.approx(by_max[1], abs=1e-4)  # chunk_max cannot tell them apart
    by_lead = head_per_owner(values, owner, 2, [1.0, 0.3, 0.0, 0.0], 0.0)
    assert by_lead[0] < 0.2 < 0.9 < by_lead[1]


def test_a_manifest_head_needs_its_strategy_and_one_weight_per_feature() -> None:
    head = DocHead(features=list(HEAD_FEATURES), weights=[1.0, 0.5, 0.0, -0.1], bias=-1.0)
    assert LongText(strategy="doc_head", stride=224, max_windows=3, head=head).head == head
    with pytest.raises(ValidationError, match="head is required"):
        LongText(strategy="doc_head", stride=224, max_windows=3)
    with pytest.raises(ValidationError, match="only with it"):
        LongText(strategy="chunk_max", stride=224, max_windows=3, head=head)
    with pytest.raises(ValidationError, match="weights"):
        DocHead(features=list(HEAD_FEATURES), weights=[1.0], bias=0.0)
    with pytest.raises(ValidationError, match="in this order"):
        DocHead(features=["max", "lead"], weights=[1.0, 1.0])


def test_the_fit_learns_the_lead_and_reads_no_more_windows_than_it_needs() -> None:
    rng = np.random.default_rng(0)
    logits, labels = [], []
    for i in range(600):
        label = int(i % 5 == 0)
        n = int(rng.integers(1, 9))
        windows = rng.normal(-3.0, 1.0, size=n)
        windows[0] += 6.0 * label  # reports lead with their event
        if not label and n > 3 and rng.random() < 0.5:
            windows[3] += 6.0  # a feature that recalls an attack far down
        logits.append(windows.astype(np.float32))
        labels.append(label)
    y = np.asarray(labels)
    groups = {"all": np.ones(len(y), dtype=bool)}
    fit = fit_head(logits, y, 1.0, 0.0, groups, max_windows=8)
    assert fit.windows < 4  # the alarming fourth window is not worth reading
    assert fit.head.features == ["lead", "max", "mean"]
    assert fit.head.weights[0] > 0.5
    assert set(fit.tried) == {1, 2, 3, 4, 6, 8}
    assert fit.score > 0.95


def test_the_head_is_fitted_on_the_articles_it_is_told_to_fit_on() -> None:
    # Two corpora with opposite ideas of relevance: in the first a report leads with its event,
    # in the second (MUC-like) an incident anywhere makes a report relevant.
    rng = np.random.default_rng(1)
    logits, labels, first = [], [], []
    for i in range(800):
        label, modern = int(i % 3 == 0), i % 2 == 0
        windows = rng.normal(-3.0, 0.5, size=3)
        if label:
            windows[0 if modern else 2] += 6.0
        elif modern and rng.random() < 0.5:
            windows[2] += 6.0  # a policy piece that recalls an attack at the end
        logits.append(windows.astype(np.float32))
        labels.append(label)
        first.append(modern)
    y, fit_on = np.asarray(labels), np.asarray(first)
    groups = {"modern": fit_on, "muc": ~fit_on}
    fitted = fit_head(logits, y, 1.0, 0.0, groups, max_windows=3, fit_on=fit_on)
    assert fitted.windows == 1  # the modern corpus: the lead decides, the rest need not be read
    assert set(fitted.tried) == {1, 2, 3}
    everything = fit_head(logits, y, 1.0, 0.0, groups, max_windows=3)
    assert everything.windows == 3  # MUC's relevance needs the whole report


@pytest.mark.parametrize("features", [4, 3])
def test_the_scorer_applies_the_manifests_head_to_the_windows_it_reads(tmp_path: Path, features: int) -> None:
    weights = [1.0, 0.5, 0.25, -0.2][:features]
    head = DocHead(features=list(HEAD_FEATURES[:features]), weights=weights, bias=-0.5)
    path = toy_bundle.build(
        tmp_path / "b", long_text=LongText(strategy="doc_head", stride=10, max_windows=2, head=head)
    )
    scorer = Scorer(load_bundle(path), providers="cpu")
    low, high = [5] * 14, [990] * 14
    texts = [text(*low, *high, *high), text(*high), text(*high, *low)]
    got = scorer.score(texts)
    encoder = scorer.encoder
    for t, score in zip(texts, got.scores, strict=True):
        windows = [w.tolist() for w in encoder.windows_of(encoder.token_ids([t])[0])]
        assert len(windows) <= 2  # max_windows: the tail is never read
        values = np.asarray([toy_score(w) for w in windows], dtype=np.float32)
        z = np.log(values.astype(np.float64)) - np.log1p(-values.astype(np.float64))
        features_of = [z[0], z.max(), z.mean(), len(z) - 1.0][:features]
        expected = 1.0 / (1.0 + np.exp(-(np.dot(weights, features_of) - 0.5)))
        assert score == pytest.approx(float(expected), abs=1e-5)
    assert got.best is not None
    assert got.best.tolist()[1] == 0


def test_the_weights_stay_non_negative_and_are_the_unconstrained_optimum_when_it_is() -> None:
    from sklearn.linear_model import LogisticRegression

    from training.classifier.doc_head import fit_logistic

    rng = np.random.default_rng(2)
    lead = rng.normal(0.0, 2.0, size=2000)
    other = rng.normal(0.0, 2.0, size=2000)
    y = (lead + 0.5 * other + rng.normal(0.0, 1.0, size=2000) > 0).astype(np.int64)
    x = np.stack([lead, other], axis=1)
    weights, bias = fit_logistic(x, y)
    exact = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(weights, exact.coef_[0], atol=1e-4)
    assert bias == pytest.approx(float(exact.intercept_[0]), abs=1e-4)

    # A feature that the labels punish: unconstrained it would get a negative weight.
    punished = np.stack([lead, -other], axis=1)
    assert LogisticRegression(C=1.0).fit(punished, y).coef_[0][1] < -0.1
    weights, _ = fit_logistic(punished, y)
    assert weights[1] == pytest.approx(0.0, abs=1e-8)
    assert weights[0] > 0.5


def test_a_head_never_subtracts_the_most_alarming_window() -> None:
    # Validation articles that reward subtracting the best window: negatives whose second window
    # is alarming, positives whose second window is calmer than their lead. Unconstrained, the fit
    # reads both windows with weights (4.3, -1.9, -2.6); the head may ignore max, not invert it.
    rng = np.random.default_rng(3)
    logits, labels = [], []
    for i in range(800):
        label = int(i % 4 == 0)
        lead = rng.normal(2.0 if label else -1.0, 1.5)
        second = lead - 1.0 if label else rng.normal(3.0, 0.5)
        logits.append(np.asarray([lead, second], dtype=np.float32))
        labels.append(label)
    fit = fit_head(logits, np.asarray(labels), 1.0, 0.0, {"all": np.ones(800, dtype=bool)}, max_windows=2)
    assert min(fit.head.weights) >= 0.0
