"""Train a tiny BERT on a small real sample, export, validate, quantize, evaluate through ONNX Runtime."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from stream.errors import ConfigError, DataError, ExportError
from stream.scoring.bundle import load_bundle
from stream.scoring.encoding import Windowing
from tests.cli_run import run_cli
from training.classifier.pipeline import TrainOptions, train_bundle
from training.finetune import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
WINDOWING = Windowing(max_length=64, stride=48, max_windows=3)


def _options(data: Path, out: Path, model: Path, **extra: object) -> TrainOptions:
    fields: dict[str, object] = {
        "data": data,
        "out": out,
        "base_model": str(model),
        "windowing": WINDOWING,
        "train": TrainConfig(epochs=2, batch_size=8, max_steps=6, learning_rate=1e-3),
    }
    fields.update(extra)
    return TrainOptions(**fields)  # type: ignore[arg-type]


@pytest.fixture
def bundle_dir(tiny_bundle: Path) -> Path:
    return tiny_bundle


def test_bundle_has_every_file_hashed_and_a_complete_manifest(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    m = bundle.manifest
    names = {p.name for p in bundle_dir.iterdir()}
    assert names == {
        "model.onnx",
        "tokenizer.json",
        "manifest.json",
        "report.md",
        "pr_curve.png",
        "score_hist.png",
        "canary.jsonl",
    }
    assert set(m.files) == names - {"manifest.json"}
    assert m.precision in ("int8", "fp32")
    assert m.precision_reason.startswith("dynamic int8")  # the default way to make int8
    assert m.quantization == ("dynamic" if m.precision == "int8" else None)
    assert {"test", "stream", "validation (threshold)"} <= set(m.metrics)
    assert {"model", "baseline", "description prior"} == set(m.metrics["test"])
    assert {"model", "baseline", "description prior"} == set(m.metrics["stream"])
    assert {"model fp32", "model int8"} == set(m.metrics["validation (threshold)"])
    domains = {k for k in m.metrics if k.startswith("test (")}
    lengths = {"test (<=60 words)", "test (61-300 words)", "test (>300 words)"}
    assert domains <= {"test (MUC)", "test (modern)", "test (full-length)", *lengths}
    assert m.max_length == 64
    assert m.long_text.stride == 48
    # The document head reads the fewest windows (of at most 3) that validation needs.
    assert m.long_text.strategy == "doc_head"
    assert m.long_text.head is not None
    assert m.long_text.head.features == ["lead", "max", "mean"]
    assert 1 <= m.long_text.max_windows <= 3
    assert 0.0 <= m.threshold <= 1.0
    assert m.threshold_rule == "maximum F1 on validation"
    assert m.extra_metrics["export_max_abs_diff"] <= 1e-4
    assert all(len(h) == 64 for h in m.data_files.values())
    assert len(m.data_files) == 4
    assert {"torch", "onnxruntime", "transformers"} <= set(m.packages)
    report = (bundle_dir / "report.md").read_text()
    assert "| test | baseline |" in report
    assert "| test | description prior |" in report
    assert "pr_curve.png" in report
    assert "AG News World" in report
    # Every held-out row carries 95% intervals, and the model's paired margin over TF-IDF.
    for data in ("test", "stream"):
        model = m.metrics[data]["model"]
        assert model.intervals is not None
        for name, value in (("precision", model.precision), ("recall", model.recall), ("auprc", model.auprc)):
            assert model.intervals[name].low <= value <= model.intervals[name].high
        margin = m.extra_metrics["margins"][data]["baseline"]["auprc"]
        assert margin["low"] <= margin["difference"] <= margin["high"]
    assert "### How sure these figures are" in report
    assert "| test | " in report.split("### How sure these figures are")[1]
    # Where the int8 gate's fp32 validation scores came from is on record.
    assert "fp32: reusing training's validation scores" in report
    # Lead first wherever the head reads more than one window: a calm lead's bound, under the threshold.
    bound = m.long_text.read_more_above
    assert (bound is None) == (m.long_text.max_windows == 1 or m.long_text.head.weights[0] == 0)
    if bound is not None:
        assert 0.0 < bound < m.threshold
        assert f"lead first: an article whose lead alone scores below {bound:.4f}" in report


def test_onnx_graph_is_the_documented_contract(bundle_dir: Path) -> None:
    model = onnx.load(str(bundle_dir / "model.onnx"))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    inputs = {i.name: i for i in model.graph.input}
    assert set(inputs) == {"input_ids", "attention_mask"}
    for tensor in inputs.values():
        assert tensor.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in tensor.type.tensor_type.shape.dim] == ["batch_size", "sequence_length"]
    (output,) = model.graph.output
    assert output.name == "score"
    assert output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param for d in output.type.tensor_type.shape.dim] == ["batch_size"]


def test_evaluate_cli_reproduces_the_manifest_without_torch(bundle_dir: Path, sample_data: Path) -> None:
    # Run the real entry point, then report which heavy modules it pulled in.
    result = run_cli(
        "evaluate",
        "--bundle",
        str(bundle_dir),
        "--data",
        str(sample_data / "test.jsonl"),
        "--json",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.heavy == []
    printed = json.loads(result.stdout)
    expected = load_bundle(bundle_dir).manifest.metrics["test"]["model"]
    assert printed["labeled"]["confusion"] == expected.confusion.model_dump()
    assert printed["labeled"]["auroc"] == pytest.approx(expected.auroc)
    assert printed["labeled"]["auprc"] == pytest.approx(expected.auprc)
    # Same labels, same scores, same seed: the same resamples as the report's.
    assert expected.intervals is not None
    for name, interval in expected.intervals.items():
        assert printed["labeled"]["intervals"][name]["low"] == pytest.approx(interval.low)
        assert printed["labeled"]["intervals"][name]["high"] == pytest.approx(interval.high)


def test_evaluate_human_output_and_unlabeled_summary(bundle_dir: Path, sample_data: Path) -> None:
    result = run_cli(
        "evaluate", "--bundle", str(bundle_dir), "--data", str(sample_data.parent / "stream.jsonl")
    )
    assert result.returncode == 0, result.stderr
    assert "AUROC" in result.stdout
    assert "confusion" in result.stdout
    assert "95% intervals (stratified bootstrap): precision " in result.stdout
    assert "unlabeled articles 12" in result.stdout


def test_corrupt_bundle_fails_in_one_line(bundle_dir: Path, sample_data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in bundle_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    with (broken / "model.onnx").open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02")
    result = run_cli("evaluate", "--bundle", str(broken), "--data", str(sample_data / "test.jsonl"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr
    assert "model.onnx does not match the sha256" in result.stderr


def test_existing_output_needs_force(sample_data: Path, tiny_model: Path, bundle_dir: Path) -> None:
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        train_bundle(_options(sample_data, bundle_dir, tiny_model))


def test_one_class_data_fails_and_leaves_nothing(tmp_path: Path, tiny_model: Path, sample_data: Path) -> None:
    data = tmp_path / "terrorism"
    data.mkdir()
    for name in ("train", "val", "test"):
        rows = [json.loads(line) for line in (sample_data / f"{name}.jsonl").read_text().splitlines()]
        keep = rows if name != "train" else [r for r in rows if r["label"] == 0]
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    out = tmp_path / "exports" / "never"
    with pytest.raises(DataError, match=r"train.jsonl: all articles have label 0"):
        train_bundle(_options(data, out, tiny_model))
    assert not out.exists()
    assert not out.parent.exists() or not list(out.parent.iterdir())  # no temporary folder left


def test_cli_errors_are_one_line_without_traceback(tmp_path: Path, sample_data: Path) -> None:
    result = run_cli("train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "b"))
    assert result.returncode == 2
    assert result.stderr.startswith("wirewatch: error:")
    assert "no such folder" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli(
        "train",
        "--data",
        str(sample_data),
        "--out",
        str(tmp_path / "b"),
        "--base-model",
        "nobody/no-such-model",
    )
    assert result.returncode == 2
    assert "unknown base model 'nobody/no-such-model'" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_validation_catches_a_wrong_graph(bundle_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from stream.scoring.encoding import Encoder
    from training.model import build_classifier, calibrated, load_base, resolve_base_model
    from training.ship import export

    encoder_model, _ = load_base(resolve_base_model(str(tiny_model)))
    graph = calibrated(build_classifier(encoder_model), 1.0, 0.0)
    encoder = Encoder(Tokenizer.from_file(str(bundle_dir / "tokenizer.json")), WINDOWING)
    batches = list(encoder.batches(encoder.encode(["a bomb exploded in lima", "markets rose"]), 2))
    export.export_onnx(graph, tmp_path / "ok.onnx", batches[0])
    assert export.validate_onnx(graph, tmp_path / "ok.onnx", batches) < 1e-5
    other = calibrated(build_classifier(encoder_model), 0.05, 3.0)  # another head and calibration
    with pytest.raises(ExportError, match=r"differs from PyTorch by up to \d"):
        export.validate_onnx(other, tmp_path / "ok.onnx", batches)
    assert np.isfinite(export.ATOL)


def test_scores_do_not_depend_on_the_rest_of_the_batch(bundle_dir: Path, sample_data: Path) -> None:
    from stream.scoring.articles import read_articles
    from stream.scoring.scorer import Scorer
    from stream.scoring.text import article_text

    scorer = Scorer(load_bundle(bundle_dir))
    texts = [article_text(a.title, a.text) for a in read_articles(sample_data / "test.jsonl")]
    together = scorer.score(texts).scores
    alone = np.array([scorer.score([t]).scores[0] for t in texts])
    reversed_order = scorer.score(texts[::-1]).scores[::-1]
    assert np.abs(together - alone).max() < 1e-5
    assert np.abs(together - reversed_order).max() < 1e-5


def test_csv_splits_train_too(sample_data: Path, tiny_model: Path, tmp_path: Path) -> None:
    import csv

    data = tmp_path / "mine"
    data.mkdir()
    for name in ("train", "val", "test"):
        rows = [json.loads(line) for line in (sample_data / f"{name}.jsonl").read_text().splitlines()]
        with (data / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["id", "title", "text", "label"])
            writer.writeheader()
            writer.writerows({k: r.get(k) for k in ("id", "title", "text", "label")} for r in rows)
    bundle = train_bundle(_options(data, tmp_path / "csv-bundle", tiny_model, quantize=None))
    assert bundle.manifest.precision == "fp32"
    assert any(p.endswith("train.csv") for p in bundle.manifest.data_files)


def test_static_int8_ships_or_says_why_dynamic_replaced_it(
    tmp_path: Path, tiny_model: Path, sample_data: Path
) -> None:
    m = train_bundle(_options(sample_data, tmp_path / "static", tiny_model, quantize="static")).manifest
    if m.quantization == "static":
        assert m.precision_reason.startswith("int8 within")
    else:
        assert m.precision_reason.startswith("static int8 refused")
    assert {"model fp32", "model int8"} == set(m.metrics["validation (threshold)"])


def test_margins_bench_reproduces_the_report_of_a_bundle(
    tiny_bundle: Path, sample_data: Path, tmp_path: Path
) -> None:
    from training.bench import margins

    out = tmp_path / "margins.json"
    assert margins.main(["--bundle", str(tiny_bundle), "--data", str(sample_data), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {"test", "stream"} <= set(rows)
    manifest = load_bundle(tiny_bundle).manifest
    for data, row in rows.items():
        # The baseline fitted again and the scores through ONNX Runtime are the report's own.
        assert row["reproduces_manifest"], data
        for system in ("model", "baseline"):
            for figure in row[system].values():
                assert figure["low"] <= figure["value"] <= figure["high"]
        shipped = manifest.extra_metrics["margins"][data]["baseline"]
        assert row["model_minus_baseline"]["auprc"]["difference"] == pytest.approx(
            shipped["auprc"]["difference"], abs=1e-4
        )
