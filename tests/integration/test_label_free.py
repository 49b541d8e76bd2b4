"""Novelty and ood bundles for real: a tiny BERT, real BBC articles, real ONNX, the real service and broker."""

import json
import uuid
from pathlib import Path

import onnx
import pytest
from confluent_kafka import Producer

from stream.scoring.bundle import load_bundle
from stream.scoring.encoding import Windowing
from tests.cli_run import Run, run_cli
from tests.integration.label_free_data import write_label_free_data
from tests.integration.service_harness import (
    ServiceProcess,
    Topics,
    articles_as_messages,
    consume,
    ids_of,
    produce,
)
from training.finetune import TrainConfig
from training.labelfree.base import UnlabeledOptions
from training.labelfree.novelty import train_novelty
from training.labelfree.ood import train_ood

ROOT = Path(__file__).resolve().parents[2]
WINDOWING = Windowing(max_length=64, stride=48, max_windows=3)
TINY_TRAIN = TrainConfig(epochs=2, batch_size=8, max_steps=6, learning_rate=1e-3)


def _options(mode: str, data: Path | None, out: Path, model: Path, **extra: object) -> UnlabeledOptions:
    fields: dict[str, object] = {
        "mode": mode,
        "out": out,
        "data": data,
        "base_model": str(model),
        "windowing": WINDOWING,
        "train": TINY_TRAIN,
    }
    fields.update(extra)
    return UnlabeledOptions(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lf_data(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_label_free_data(datasets_dir, tmp_path_factory.mktemp("label-free"))


@pytest.fixture(scope="module")
def novelty_bundle(lf_data: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "novelty-v1"
    # The default method (hybrid) on the adapted encoder: the whole path, adaptation included.
    train_novelty(_options("novelty", lf_data, out, tiny_model, encoder="adapted", adapt_steps=2))
    return out


@pytest.fixture(scope="module")
def ood_bundle(lf_data: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "ood-v1"
    outliers = tmp_path_factory.mktemp("outliers") / "outliers.jsonl"
    rows = [json.loads(line) for line in (lf_data / "test.jsonl").read_text().splitlines()]
    outliers.write_text("".join(json.dumps(r) + "\n" for r in rows if r["label"] == 1))
    train_ood(_options("ood", lf_data, out, tiny_model, outliers=outliers))
    return out


def test_novelty_bundle_states_mode_method_bank_and_calibration(novelty_bundle: Path) -> None:
    m = load_bundle(novelty_bundle).manifest
    assert m.mode == "novelty"
    assert m.method is not None
    assert m.method.name == "hybrid"
    assert m.method.encoder == "adapted"
    assert m.method.parameters["k"] == 10
    assert m.method.parameters["mahalanobis_weight"] == 0.25
    assert set(m.extra_metrics["test_auroc_by_method"]) == {"knn", "mahalanobis", "hybrid"}
    assert m.method.bank_size is not None
    assert m.method.bank_bound is not None
    assert 0 < m.method.bank_size <= m.method.bank_bound
    assert set(m.method.parameters["held_out_cluster_auroc"]) == {"knn", "mahalanobis"}
    assert m.long_text.strategy == "chunk_mean_logit"
    assert m.calibration.method == "false_alarm_quantile"
    assert m.calibration.target_false_alarm_rate == 0.01
    assert m.extra_metrics["val_false_alarm_rate"] <= 0.01
    assert {"model", "model fp32", "model int8", "baseline"} <= set(m.metrics["test"])
    assert m.extra_metrics["export_max_abs_diff"] <= 1e-4
    # The reference of drift: the held-out normal articles' scores.
    assert m.score_distribution is not None
    assert m.score_distribution.n == m.training["val_articles"]
    report = (novelty_bundle / "report.md").read_text()
    assert "## Score distributions" in report
    assert "test anomalous" in report
    assert "mean of its windows' log-odds" in report
    assert (novelty_bundle / "score_hist.png").is_file()


def test_label_free_graphs_keep_the_bundle_contract(novelty_bundle: Path, ood_bundle: Path) -> None:
    for bundle in (novelty_bundle, ood_bundle):
        model = onnx.load(str(bundle / "model.onnx"))
        assert {i.name for i in model.graph.input} == {"input_ids", "attention_mask"}
        (output,) = model.graph.output
        assert output.name == "score"
        assert [d.dim_param for d in output.type.tensor_type.shape.dim] == ["batch_size"]
    model = onnx.load(str(novelty_bundle / "model.onnx"))
    bank = [i for i in model.graph.initializer if "normal_bank_t" in i.name]
    assert bank
    assert bank[0].data_type == onnx.TensorProto.FLOAT
    whitening = [i for i in model.graph.initializer if "normal_whitening" in i.name]
    assert [w.data_type for w in whitening] == [onnx.TensorProto.FLOAT]
    manifest = load_bundle(novelty_bundle).manifest
    assert manifest.method is not None
    assert list(bank[0].dims)[1] == manifest.method.bank_size


def test_ood_bundle_records_categories_and_outlier_exposure(ood_bundle: Path) -> None:
    m = load_bundle(ood_bundle).manifest
    assert m.mode == "ood"
    assert m.method is not None
    assert m.method.name in ("msp", "energy")
    assert m.method.parameters["categories"] == ["business", "politics", "sport", "tech"]
    assert m.method.parameters["outlier_exposure"] is True
    assert set(m.method.parameters["validation_auroc_by_score"]) == {"msp", "energy"}
    assert "held-out outliers" in m.method.parameters["selection"]
    assert "test" in m.metrics


@pytest.mark.parametrize("which", ["novelty_bundle", "ood_bundle"])
def test_evaluate_works_for_every_mode_without_torch(
    which: str, request: pytest.FixtureRequest, lf_data: Path
) -> None:
    bundle = request.getfixturevalue(which)
    result = run_cli(
        "evaluate", "--bundle", str(bundle), "--data", str(lf_data / "test.jsonl"), "--json", timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.heavy == []
    printed = json.loads(result.stdout)
    expected = load_bundle(bundle).manifest.metrics["test"]["model"]
    assert printed["labeled"]["confusion"] == expected.confusion.model_dump()
    assert printed["labeled"]["auroc"] == pytest.approx(expected.auroc)


@pytest.mark.parametrize("which", ["novelty_bundle", "ood_bundle"])
def test_the_service_scores_label_free_bundles_unchanged(
    which: str,
    request: pytest.FixtureRequest,
    lf_data: Path,
    kafka_bootstrap: str,
    new_topic: object,
    tmp_path: Path,
) -> None:
    bundle = request.getfixturevalue(which)
    topics = Topics.create(new_topic)  # type: ignore[arg-type]
    messages = articles_as_messages(lf_data / "test.jsonl")
    produce(kafka_bootstrap, topics.input, [(i.encode(), v, None) for i, v in messages])
    process = ServiceProcess(bundle, kafka_bootstrap, topics, f"group-{uuid.uuid4().hex}", tmp_path).start()
    try:
        process.wait_ready()
        scores = consume(kafka_bootstrap, topics.scores, lambda ms: len(ms) >= len(messages))
        assert sorted(ids_of(scores)) == sorted(i for i, _ in messages)
        manifest = load_bundle(bundle).manifest
        records = [json.loads(m.value()) for m in scores]
        assert all(r["model"]["name"] == manifest.name for r in records)
        assert all(0.0 <= r["score"] <= 1.0 for r in records)
        assert all(r["is_alert"] == (r["score"] >= manifest.threshold) for r in records)
        expected = {r["id"] for r in records if r["is_alert"]}
        alerts = consume(kafka_bootstrap, topics.alerts, lambda ms: len(ms) >= len(expected), timeout=30)
        assert set(ids_of(alerts)) == expected
    finally:
        process.stop()


def _publish(bootstrap: str, topic: str, rows: list[dict[str, object]], extra: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for row in rows:
        producer.produce(topic, key=str(row["id"]).encode(), value=json.dumps(row).encode())
    for value in extra:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0


def test_novelty_learns_normal_from_a_topics_recent_history(
    lf_data: Path, tiny_model: Path, kafka_bootstrap: str, new_topic: object, tmp_path: Path
) -> None:
    topic = new_topic(2)  # type: ignore[operator]
    rows = [json.loads(line) for line in (lf_data / "train.jsonl").read_text().splitlines()]
    _publish(kafka_bootstrap, topic, rows, [b"not json", json.dumps({"id": "e", "text": " "}).encode()])
    out = tmp_path / "from-topic"
    bundle = train_novelty(
        _options(
            "novelty",
            lf_data,
            out,
            tiny_model,
            method="knn",
            from_topic=topic,
            limit=30,
            bootstrap_servers=kafka_bootstrap,
            quantize=False,
        )
    )
    report = (out / "report.md").read_text()
    assert f"the newest 30 messages of topic {topic!r}" in report
    assert "skipped 1 empty_text, 1 invalid_json" in report
    normal = bundle.manifest
    assert normal.mode == "novelty"
    assert "test" in normal.metrics  # DATA/test still evaluates
    assert not any("train.jsonl" in f for f in normal.data_files)


def _one_line_error(result: Run, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("wirewatch: error:")
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr


def test_bad_input_fails_in_one_line_with_exit_code_2(
    lf_data: Path, tiny_model: Path, kafka_bootstrap: str, new_topic: object, tmp_path: Path
) -> None:
    common = ["--base-model", str(tiny_model), "--max-length", "64", "--stride", "48", "--max-windows", "3"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.jsonl").write_text("")
    _one_line_error(
        run_cli("train", "--mode", "novelty", "--data", str(empty), "--out", str(tmp_path / "a"), *common),
        "no articles in the file",
    )
    _one_line_error(
        run_cli("train", "--mode", "novelty", "--data", str(tmp_path), "--out", str(tmp_path / "b"), *common),
        "no normal data",
    )
    _one_line_error(
        run_cli(
            "train", "--mode", "novelty", "--data", str(lf_data), "--out", str(tmp_path / "c"),
            "--bank-size", "100000", *common,
        ),
        "--bank-size 100000 is outside",
    )  # fmt: skip
    missing = f"missing-{uuid.uuid4().hex}"
    _one_line_error(
        run_cli(
            "train", "--mode", "novelty", "--from-topic", missing, "--bootstrap-servers", kafka_bootstrap,
            "--out", str(tmp_path / "d"), *common,
        ),
        f"topic {missing!r} does not exist",
    )  # fmt: skip
    empty_topic = new_topic(1)  # type: ignore[operator]
    _one_line_error(
        run_cli(
            "train", "--mode", "novelty", "--from-topic", empty_topic, "--bootstrap-servers", kafka_bootstrap,
            "--out", str(tmp_path / "e"), *common,
        ),
        "is empty",
    )  # fmt: skip
    one_class = tmp_path / "one-class"
    one_class.mkdir()
    for name in ("train", "val"):
        rows = [json.loads(line) for line in (lf_data / f"{name}.jsonl").read_text().splitlines()]
        (one_class / f"{name}.jsonl").write_text(
            "".join(json.dumps({**r, "category": "sport"}) + "\n" for r in rows)
        )
    _one_line_error(
        run_cli("train", "--mode", "ood", "--data", str(one_class), "--out", str(tmp_path / "f"), *common),
        "needs at least 2 normal categories",
    )
    assert {p.name for p in tmp_path.iterdir()}.isdisjoint(set("abcdef"))
