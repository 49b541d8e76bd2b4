"""Loss weights per domain: a small domain is not drowned by a large one, and the scale stays put."""

import numpy as np
import pytest

from training.finetune import domain_weights


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
