"""Static int8: calibrated at export, and a window's score does not depend on its batch."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from stream.scoring.articles import read_articles
from stream.scoring.bundle import MANIFEST, load_bundle, sha256_file
from stream.scoring.scorer import Scorer
from stream.scoring.text import article_text

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def static_bundle(
    tiny_bundle: Path, tiny_model: Path, sample_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny bundle with a freshly exported model, quantized static int8 on training texts."""
    from training.model import build_classifier, calibrated, load_base, resolve_base_model
    from training.ship import export
    from training.ship import graph as shipping

    folder = tmp_path_factory.mktemp("static") / "bundle"
    shutil.copytree(tiny_bundle, folder)
    bundle = load_bundle(folder)
    encoder = Scorer(bundle, providers="cpu").encoder
    encoder_model, _ = load_base(resolve_base_model(str(tiny_model)))
    graph = calibrated(build_classifier(encoder_model), 1.0, 0.0)
    train = [article_text(a.title, a.text) for a in read_articles(sample_data / "train.jsonl")]
    fp32 = folder / "model.fp32.onnx"
    export.export_onnx(graph, fp32, next(encoder.batches(encoder.encode(train[:4]), 4)))
    calibration = encoder.encode(shipping.calibration_sample(train, 32))
    export.quantize_static_int8(fp32, folder / "model.onnx", list(encoder.batches(calibration, 8)))
    fp32.unlink()
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.update(precision="int8", quantization="static", canary=None)
    (folder / "canary.jsonl").unlink()
    manifest["files"] = {n: sha256_file(folder / n) for n in manifest["files"] if (folder / n).exists()}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


def test_static_int8_graph_has_fixed_scales_and_no_dynamic_quantization(static_bundle: Path) -> None:
    ops = {node.op_type for node in onnx.load(str(static_bundle / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert "DynamicQuantizeLinear" not in ops


def test_static_int8_scores_do_not_change_with_batch_composition(
    static_bundle: Path, sample_data: Path
) -> None:
    bundle = load_bundle(static_bundle)
    texts = [article_text(a.title, a.text) for a in read_articles(sample_data / "test.jsonl")]
    scorer = Scorer(bundle, providers="cpu", sessions=1, token_budget=100_000)
    assert scorer.batch_invariant
    assert scorer.max_rows > 1
    together = scorer.score(texts).scores
    assert len(scorer.batches(scorer.encoder.encode(texts))) < len(texts)  # really batched
    alone = np.array([scorer.score([t]).scores[0] for t in texts])
    reversed_order = scorer.score(texts[::-1]).scores[::-1]
    small_calls = Scorer(bundle, providers="cpu", sessions=2, token_budget=128).score(texts).scores
    assert np.abs(together - alone).max() < 1e-5
    assert np.abs(together - reversed_order).max() < 1e-5
    assert np.abs(together - small_calls).max() < 1e-5


def test_training_fp32_scores_stand_in_only_where_onnx_reproduces_them(
    tiny_bundle: Path, sample_data: Path, tmp_path: Path
) -> None:
    from stream.scoring.evaluate import score_articles
    from training.ship import graph as shipping

    folder = tmp_path / "staging"
    shutil.copytree(tiny_bundle, folder)
    candidate = folder / "candidate.onnx"
    shutil.copyfile(folder / "model.onnx", candidate)
    manifest = load_bundle(folder).manifest
    manifest.canary = None  # as while training: the canary is written after the choice
    staging = shipping.Staging(folder, manifest, threads=1)
    articles = read_articles(sample_data / "val.jsonl", require_label=True)
    val = (articles, np.asarray([a.label for a in articles], dtype=np.int64))
    onnx_scores = score_articles(staging.scorer(candidate, "fp32"), articles).scores
    lines: list[str] = []

    def fp32_with(scores: np.ndarray) -> shipping.Candidate:
        found = shipping.evaluate_candidates(
            staging, {"fp32": candidate}, val, None, lines.append, fp32_scores=scores
        )
        return found["fp32"]

    close = (onnx_scores + 1e-5).astype(np.float32)
    np.testing.assert_array_equal(fp32_with(close).scores, close)
    assert "reusing training's validation scores" in lines[-1]

    off = np.where(onnx_scores < 0.5, onnx_scores + 0.01, onnx_scores - 0.01).astype(np.float32)
    redone = fp32_with(off)
    assert "scoring them all again" in lines[-1]
    np.testing.assert_allclose(redone.scores, onnx_scores, atol=1e-6)
    assert redone.threshold == shipping.choose_threshold(val[1], onnx_scores, None)[0]
