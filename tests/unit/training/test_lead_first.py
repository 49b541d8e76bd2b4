"""Lead first: a long article whose lead alone is calm enough is scored without its other windows."""

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from stream.scoring.bundle import DocHead, LongText, load_bundle
from stream.scoring.encoding import HEAD_FEATURES, head_per_owner
from stream.scoring.scorer import Scorer
from tests.unit import toy_bundle
from tests.unit.toy_bundle import text, toy_score
from training.classifier.doc_head import CAP_MARGIN, HeadFit, LeadFirst, lead_first, read_more_above
from training.ship.drift import published_scores

pytestmark = pytest.mark.unit


def _p(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_below_the_bound_no_windows_up_to_the_cap_change_the_decision(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cap, edge = 5.0, -np.inf
    while edge < -15.0:  # heads whose bound lies where float32 scores still tell leads apart
        features = int(rng.integers(1, 5))
        weights = rng.uniform(0.0, 1.0, size=features).tolist()
        weights[0] = max(weights[0], 0.3)  # a lead weight: otherwise there is no bound (tested below)
        head = DocHead(features=list(HEAD_FEATURES[:features]), weights=weights, bias=float(rng.normal()))
        windows, threshold = int(rng.integers(2, 6)), float(rng.uniform(0.2, 0.8))
        bound = read_more_above(head, windows, threshold, cap)
        assert bound is not None
        assert bound < threshold
        edge = (np.log(bound / (1 - bound)) - head.bias) / sum(weights[:3])  # the bound's lead log-odds

    # Articles of 1..windows windows, every one at most `cap` log-odds: leads on both sides of the
    # bound, the other windows at the cap or anywhere below it.
    n = 4000
    counts = rng.integers(1, windows + 1, size=n)
    z = [np.append(rng.uniform(edge - 4.0, cap, size=1), np.full(c - 1, cap)) for c in counts]
    z += [
        np.append(rng.uniform(edge - 4.0, cap, size=1), rng.uniform(-12.0, cap, size=c - 1)) for c in counts
    ]
    values = _p(np.concatenate(z))
    owner = np.repeat(np.arange(len(z)), [len(w) for w in z])
    full = head_per_owner(values, owner, len(z), head.weights, head.bias)
    leads = _p(np.asarray([w[0] for w in z]))
    alone = head_per_owner(leads, np.arange(len(z)), len(z), head.weights, head.bias)
    skipped = alone < bound
    assert skipped.sum() > 100
    assert (full[skipped] < threshold).all()
    assert (alone[skipped] < threshold).all()


def test_the_bound_is_tight_for_a_lead_max_mean_head() -> None:
    head = DocHead(features=list(HEAD_FEATURES[:3]), weights=[0.46, 0.1, 0.54], bias=0.03)
    threshold, cap, windows = 0.43, 5.5, 3
    bound = read_more_above(head, windows, threshold, cap)
    assert bound is not None
    lead = (np.log(bound / (1 - bound)) - head.bias) / sum(head.weights)  # the lead alone's log-odds
    for step, reaches in [(-1e-3, False), (1e-3, True)]:
        z = np.asarray([lead + step, cap, cap])
        score = head_per_owner(_p(z), np.zeros(3, dtype=np.int64), 1, head.weights, head.bias)[0]
        assert (score >= threshold) == reaches


def test_a_head_that_ignores_the_lead_gives_no_bound() -> None:
    by_max = DocHead(features=list(HEAD_FEATURES[:2]), weights=[0.0, 1.0])
    assert read_more_above(by_max, 3, 0.5, 5.0) is None


def test_the_manifest_takes_the_bound_only_with_a_head() -> None:
    head = DocHead(features=list(HEAD_FEATURES[:3]), weights=[1.0, 0.0, 0.5])
    LongText(strategy="doc_head", stride=224, max_windows=3, head=head, read_more_above=0.02)
    with pytest.raises(ValidationError, match="needs the doc_head strategy"):
        LongText(strategy="chunk_max", stride=224, max_windows=3, read_more_above=0.02)
    with pytest.raises(ValidationError, match="less than 1"):
        LongText(strategy="doc_head", stride=224, max_windows=3, head=head, read_more_above=1.5)


def test_the_scorer_reads_the_other_windows_only_of_articles_whose_lead_reaches_the_bound(
    tmp_path: Path,
) -> None:
    head = DocHead(features=list(HEAD_FEATURES[:3]), weights=[1.0, 0.5, 0.5], bias=0.0)

    def scorer(name: str, bound: float | None) -> Scorer:
        long_text = LongText(strategy="doc_head", stride=10, max_windows=4, head=head, read_more_above=bound)
        return Scorer(load_bundle(toy_bundle.build(tmp_path / name, long_text=long_text)), providers="cpu")

    low, high = [5] * 14, [990] * 14
    texts = [
        text(*low, *high, *high, *high),  # a calm lead, alarming later: read by its lead alone
        text(*high, *low, *low, *low),  # an alarming lead: every window read
        text(*low[:6]),  # one window: nothing to skip
    ]
    reads_all = scorer("every", None)
    every = reads_all.score(texts)
    lead_first = scorer("lead", 0.3)
    got = lead_first.score(texts)
    assert (reads_all.calls, lead_first.calls) == (1, 2)  # one pass, against the leads then the rest

    windows = [lead_first.encoder.windows_of(lead_first.encoder.token_ids([t])[0]) for t in texts]
    assert [len(w) for w in windows] == [4, 4, 1]
    assert (every.windows, got.windows) == (9, 1 + 4 + 1)
    assert got.tokens == sum(len(w) for w in [windows[0][0], *windows[1], windows[2][0]])
    lead = np.asarray([toy_score(windows[0][0].tolist())], dtype=np.float32)
    alone = head_per_owner(lead, np.zeros(1, dtype=np.int64), 1, head.weights, head.bias)[0]
    assert got.scores[0] == pytest.approx(float(alone), abs=1e-6)
    assert got.scores[0] < every.scores[0]  # its later windows were never read
    np.testing.assert_allclose(got.scores[1:], every.scores[1:], atol=1e-6)
    assert got.best is not None
    assert got.best.tolist()[0] == 0


# Raw logits of four validation articles; calibrated as logit / 2 + 1, so the most alarming window
# (6.0) has 4.0 log-odds and the leads -9, -9, 0 and 3.
_LOGITS = [np.asarray(w, dtype=np.float32) for w in ([-20.0, 6.0], [-20.0], [-2.0, -8.0, -8.0], [4.0, 0.0])]


def _trainer_lead_first(weights: list[float]) -> tuple[DocHead, LeadFirst]:
    head = DocHead(features=list(HEAD_FEATURES[:3]), weights=weights, bias=0.0)
    found = lead_first(
        HeadFit(windows=3, head=head, score=0.0), _LOGITS, temperature=2.0, bias=1.0, threshold=0.5
    )
    return head, found


def test_the_trainer_bounds_the_lead_at_the_most_alarming_validation_window_plus_a_margin() -> None:
    head, found = _trainer_lead_first([0.5, 0.0, 0.5])
    assert found.cap == pytest.approx(4.0 + CAP_MARGIN)
    assert found.bound == read_more_above(head, 3, 0.5, found.cap)
    # Lead log-odds -9, 0 and 3: only the first article of several windows is below the bound.
    assert found.bound is not None
    assert _p(np.asarray(-9.0)) < found.bound < _p(np.asarray(0.0))
    assert (found.skipped, found.longer) == (1, 3)


def test_the_drift_reference_takes_the_scores_the_scorer_publishes() -> None:
    found = _trainer_lead_first([0.5, 0.0, 0.5])[1]
    # Article 0 is read by its lead alone; article 1 has one window, article 3 a lead above the bound.
    assert found.by_lead is not None
    assert found.by_lead.tolist() == [True, False, False, False]
    mask = np.asarray([True, True, False, True])  # the threshold's articles: 0, 1 and 3
    every_window = np.asarray([0.3, 0.2, 0.1], dtype=np.float32)
    asked: list[list[int]] = []

    def rescore(which: np.ndarray) -> np.ndarray:
        asked.append(which.tolist())
        return np.full(len(which), 0.001, dtype=np.float32)

    published = published_scores(every_window, found.by_lead[mask], rescore)
    assert asked == [[0]]
    np.testing.assert_allclose(published, [0.001, 0.2, 0.1])
    np.testing.assert_allclose(every_window, [0.3, 0.2, 0.1])  # the caller's scores are left alone
    assert published_scores(every_window, np.zeros(3, dtype=bool), rescore) is every_window
    assert asked == [[0]]  # nothing to score again: no call

    off = _trainer_lead_first([0.0, 1.0, 0.0])[1]
    assert (off.bound, off.by_lead, off.skipped) == (
        None,
        None,
        0,
    )  # a head without a lead weight reads every window
