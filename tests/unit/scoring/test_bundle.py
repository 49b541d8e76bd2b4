"""Manifest schema and bundle verification: every broken bundle fails with a message naming the fix."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream.errors import BundleError
from stream.scoring.bundle import (
    BaseModelInfo,
    Calibration,
    LongText,
    Manifest,
    load_bundle,
    sha256_file,
)
from stream.scoring.text import PREPROCESSING_VERSION


def _manifest(**overrides: object) -> Manifest:
    fields: dict[str, object] = {
        "name": "t",
        "version": "1.0.0",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "base_model": BaseModelInfo(name="tiny"),
        "labels": ["normal", "anomaly"],
        "max_length": 64,
        "long_text": LongText(stride=48, max_windows=3),
        "preprocessing_version": PREPROCESSING_VERSION,
        "threshold": 0.4,
        "threshold_rule": "maximum F1 on validation",
        "precision": "int8",
        "precision_reason": "test",
        "calibration": Calibration(temperature=1.5, bias=-0.2),
    }
    fields.update(overrides)
    return Manifest.model_validate(fields)


def _bundle(tmp_path: Path, manifest: Manifest | None = None) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not really onnx, hashes only")
    (folder / "tokenizer.json").write_text("{}")
    (folder / "report.md").write_text("# report\n")
    manifest = manifest or _manifest()
    manifest.files = {p.name: sha256_file(p) for p in folder.iterdir()}
    (folder / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return folder


def test_a_complete_bundle_loads(tmp_path: Path) -> None:
    bundle = load_bundle(_bundle(tmp_path))
    assert bundle.manifest.windowing.max_length == 64
    assert bundle.label == "t@1.0.0"


def test_manifest_round_trips_through_json() -> None:
    manifest = _manifest()
    assert Manifest.model_validate_json(manifest.model_dump_json()) == manifest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("threshold"), r"invalid manifest at threshold: Field required"),
        (lambda d: d.update(threshold=1.5), r"invalid manifest at threshold"),
        (lambda d: d.update(precision="fp16"), r"invalid manifest at precision"),
        (lambda d: d.update(mode="telepathy"), r"invalid manifest at mode"),
        (lambda d: d.update(surprise=1), r"invalid manifest at surprise: Extra inputs"),
        (lambda d: d.update(schema_version=7), r"schema_version 7 is not supported"),
        (lambda d: d.update(preprocessing_version="0"), r"preprocessing version 0"),
        (lambda d: d["files"].pop("tokenizer.json"), r"no hash for required file tokenizer.json"),
    ],
)
def test_bad_manifests_fail_with_the_field(tmp_path: Path, change: object, message: str) -> None:
    folder = _bundle(tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    change(data)  # type: ignore[operator]
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=message):
        load_bundle(folder)


def test_modified_file_is_detected(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    (folder / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(BundleError, match=r"model.onnx does not match the sha256"):
        load_bundle(folder)


def test_missing_file_is_detected(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match=r"incomplete bundle, tokenizer.json is missing"):
        load_bundle(folder)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle folder"):
        load_bundle(tmp_path / "nope")
    with pytest.raises(BundleError, match=r"not a model bundle \(no manifest.json\)"):
        load_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(tmp_path)
