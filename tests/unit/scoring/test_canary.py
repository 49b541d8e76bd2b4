"""The canary gate: a bundle serves only if its model scores here as it did at export."""

import json
from pathlib import Path

import numpy as np
import pytest

from stream.errors import BundleError
from stream.scoring.bundle import load_bundle, sha256_file
from stream.scoring.canary import SMOKE_TEXTS, check, write_canary
from tests.unit.scoring.test_bundle import _manifest


def _bundle(tmp_path: Path, with_canary: bool) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"hashes only")
    (folder / "tokenizer.json").write_text("{}")
    manifest = _manifest()
    if with_canary:
        manifest.canary = write_canary(folder, ["alpha text", "beta text", "gamma text"], [0.1, 0.5, 0.9])
    manifest.files = {p.name: sha256_file(p) for p in folder.iterdir()}
    (folder / "manifest.json").write_text(manifest.model_dump_json())
    return folder


def _scores(values: dict[str, float]):  # type: ignore[no-untyped-def]
    return lambda texts: np.asarray([values.get(t.split()[0], 0.2) for t in texts], dtype=np.float32)


def test_a_model_that_reproduces_its_export_scores_passes(tmp_path: Path) -> None:
    bundle = load_bundle(_bundle(tmp_path, with_canary=True))
    result = check(bundle, _scores({"alpha": 0.1, "beta": 0.505, "gamma": 0.9}))
    assert (result.kind, result.texts, result.probe) == ("canary", 3, "alpha text")
    assert result.max_diff == pytest.approx(0.005, abs=1e-6)


@pytest.mark.parametrize("gamma", [0.5, float("nan")])
def test_a_model_that_scores_differently_is_refused_with_the_numbers(tmp_path: Path, gamma: float) -> None:
    bundle = load_bundle(_bundle(tmp_path, with_canary=True))
    with pytest.raises(BundleError, match=r"canary check failed: a text recorded at 0\.9000 scores"):
        check(bundle, _scores({"alpha": 0.1, "beta": 0.5, "gamma": gamma}))


def test_a_tampered_canary_file_fails_the_hash_check(tmp_path: Path) -> None:
    folder = _bundle(tmp_path, with_canary=True)
    (folder / "canary.jsonl").write_text(json.dumps({"text": "alpha text", "score": 0.1}) + "\n")
    with pytest.raises(BundleError, match=r"canary\.jsonl does not match the sha256"):
        load_bundle(folder)


def test_a_bundle_without_a_canary_loads_and_gets_the_smoke_test(tmp_path: Path) -> None:
    bundle = load_bundle(_bundle(tmp_path, with_canary=False))
    assert bundle.manifest.canary is None
    result = check(bundle, _scores({}))
    assert (result.kind, result.texts, result.probe) == ("smoke", len(SMOKE_TEXTS), SMOKE_TEXTS[0])
    with pytest.raises(BundleError, match="outside"):
        check(bundle, lambda texts: np.full(len(texts), np.nan, dtype=np.float32))


def test_the_digest_names_the_exact_bundle(tmp_path: Path) -> None:
    folder = _bundle(tmp_path, with_canary=False)
    first = load_bundle(folder).digest
    data = json.loads((folder / "manifest.json").read_text())
    data["version"] = "2.0.0"
    (folder / "manifest.json").write_text(json.dumps(data))
    assert first
    assert len(first) == 12
    assert load_bundle(folder).digest != first
