"""Loss weights: per domain (a small domain is not drowned by a large one) and per class (overall or within each domain)."""

import numpy as np
import pytest

from training.finetune import domain_weights, label_weights


def _shares(domains: list[str], weights: np.ndarray) -> dict[str, float]:
    total = float(weights.sum())
    return {d: float(weights[np.asarray(domains) == d].sum()) / total for d in sorted(set(domains))}


def test_square_root_balance_gives_each_domain_a_share_as_the_root_of_its_size() -> None:
    domains = ["modern"] * 900 + ["muc"] * 100
    weights = domain_weights(domains, 0.5)
    assert weights.mean() == pytest.approx(1.0)
    assert _shares(domains, weights) == pytest.approx({"modern": 30 / 40, "muc": 10 / 40})


def test_the_ends_of_the_scale_are_off_and_equal_shares() -> None:
    domains = ["modern"] * 900 + ["muc"] * 100 + ["ordinary"] * 50
    assert np.allclose(domain_weights(domains, 0.0), 1.0)
    equal = _shares(domains, domain_weights(domains, 1.0))
    assert equal == pytest.approx({"modern": 1 / 3, "muc": 1 / 3, "ordinary": 1 / 3})


def test_one_domain_or_none_leaves_every_weight_at_one() -> None:
    assert np.allclose(domain_weights([""] * 7, 0.5), 1.0)


def _class_shares(labels: np.ndarray, weights: np.ndarray, mask: np.ndarray) -> list[float]:
    total = float(weights[mask].sum())
    return [float(weights[mask & (labels == c)].sum()) / total for c in (0, 1)]


def test_class_balance_over_the_whole_set_ignores_domains() -> None:
    labels = np.asarray([1] * 10 + [0] * 90 + [1] * 60 + [0] * 40)
    domains = ["long"] * 100 + ["muc"] * 100
    weights = label_weights(labels, domains, [1] * 200, within_domain=False)
    everything = np.ones(200, dtype=bool)
    assert _class_shares(labels, weights, everything) == pytest.approx([0.5, 0.5])
    assert weights.mean() == pytest.approx(1.0)
    long = np.asarray(domains) == "long"
    assert _class_shares(labels, weights, long)[1] < 0.5  # the long domain's attacks stay rare in its loss


def test_class_balance_within_domains_gives_each_domain_s_attacks_half_of_its_loss() -> None:
    labels = np.asarray([1] * 10 + [0] * 90 + [1] * 60 + [0] * 40 + [0] * 50)
    domains = ["long"] * 100 + ["muc"] * 100 + ["ordinary"] * 50
    weights = label_weights(labels, domains, [1] * 250, within_domain=True)
    for domain in ("long", "muc"):
        mask = np.asarray(domains) == domain
        assert _class_shares(labels, weights, mask) == pytest.approx([0.5, 0.5])
        assert float(weights[mask].sum()) == pytest.approx(100.0)  # a domain keeps its share of the loss
    assert np.allclose(weights[200:], 1.0)  # one class only: nothing to balance


def test_examples_per_document_count_as_the_loss_sees_them() -> None:
    labels = np.asarray([1, 0])
    weights = label_weights(labels, ["", ""], [1, 3], within_domain=False)  # the negative gives 3 windows
    assert weights[1] * 3 == pytest.approx(weights[0])


def test_an_unknown_label_balance_fails_before_any_model_work() -> None:
    from training.finetune import TrainConfig, fine_tune

    config = TrainConfig(label_balance="per-outlet")  # type: ignore[arg-type]
    empty = np.zeros(0, dtype=np.int64)
    # No model, encoder or documents: the check must come before anything touches them.
    with pytest.raises(ValueError, match="label_balance must be one of"):
        fine_tune(None, None, [], empty, [], empty, config)  # type: ignore[arg-type]
