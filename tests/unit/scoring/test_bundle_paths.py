"""File names in a bundle's manifest stay inside the bundle, at load and at hot reload."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import structlog

from stream.errors import BundleError
from stream.scoring.bundle import MANIFEST, BaseModelInfo, load_bundle, sha256_file
from stream.scoring.embedder import Embedder, EmbedderManifest
from stream.serve.observability import Metrics
from stream.serve.process import load_processor
from stream.serve.reload import Reloader
from tests.unit.fakes import settings as serve_settings
from tests.unit.toy_bundle import build

OUTSIDE = "not part of any bundle\n"


def _edit(folder: Path, change: dict[str, object]) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.update(change)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _listing(folder: Path, name: str, target: Path) -> None:
    """Lists ``name`` in the manifest with the true hash of ``target``: only the path check can refuse it."""
    manifest = json.loads((folder / MANIFEST).read_text())
    _edit(folder, {"files": {**manifest["files"], name: sha256_file(target)}})


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "outside.txt").write_text(OUTSIDE)
    return build(tmp_path / "bundle")


@pytest.mark.parametrize("name", ["../outside.txt", "plots/../../outside.txt", "ABSOLUTE"])
def test_a_listed_file_outside_the_folder_is_refused(bundle: Path, name: str) -> None:
    outside = bundle.parent / "outside.txt"
    name = str(outside) if name == "ABSOLUTE" else name
    (bundle / "plots").mkdir()
    _listing(bundle, name, outside)
    with pytest.raises(BundleError, match="not a plain path inside the bundle"):
        load_bundle(bundle)


def test_a_backslash_name_is_refused_even_where_it_is_a_plain_file_name(bundle: Path) -> None:
    # On Windows this is ..\outside.txt; here it would be a file in the folder: refused either way.
    (bundle / "..\\outside.txt").write_text(OUTSIDE)
    _listing(bundle, "..\\outside.txt", bundle / "..\\outside.txt")
    with pytest.raises(BundleError, match="backslash"):
        load_bundle(bundle)


def test_a_symlink_out_of_the_folder_is_refused_and_one_inside_it_is_not(bundle: Path) -> None:
    (bundle / "notes.txt").symlink_to(bundle.parent / "outside.txt")
    _listing(bundle, "notes.txt", bundle.parent / "outside.txt")
    with pytest.raises(
        BundleError, match=re.escape("notes.txt is a link that leads out of the bundle folder")
    ):
        load_bundle(bundle)
    (bundle / "notes.txt").unlink()
    (bundle / "real.txt").write_text(OUTSIDE)
    (bundle / "notes.txt").symlink_to("real.txt")
    assert load_bundle(bundle).manifest.files["notes.txt"] == sha256_file(bundle / "real.txt")


def test_a_symlinked_bundle_folder_is_still_its_own_inside(bundle: Path) -> None:
    link = bundle.parent / "current"
    link.symlink_to(bundle)
    assert load_bundle(link).manifest.name == "toy"


@pytest.mark.parametrize("field", ["tokenizer", "canary"])
def test_the_tokenizer_and_canary_files_are_checked_even_without_hash_verification(
    bundle: Path, field: str
) -> None:
    outside = bundle.parent / "outside.json"
    shutil.copy(bundle / "tokenizer.json", outside)
    _listing(bundle, "../outside.json", outside)
    _edit(bundle, {field: {"file": "../outside.json", **({"count": 1} if field == "canary" else {})}})
    with pytest.raises(BundleError, match=re.escape("'../outside.json', which is not a plain path")):
        load_bundle(bundle, verify_hashes=False)


def test_hot_reload_refuses_a_bundle_whose_manifest_leaves_the_folder(bundle: Path, tmp_path: Path) -> None:
    link = tmp_path / "current"
    link.symlink_to(bundle)
    bad = build(tmp_path / "bad")
    _listing(bad, "../outside.txt", tmp_path / "outside.txt")
    settings = serve_settings(bundle=link)
    metrics = Metrics()
    reloader = Reloader(link, lambda p: load_processor(settings, p), 1.0, structlog.get_logger("t"), metrics)
    tmp = tmp_path / ".flip"
    tmp.symlink_to(bad)
    os.replace(tmp, link)
    with structlog.testing.capture_logs() as logs:
        reloader.check()
        reloader.check()
    assert reloader.take() is None
    (refused,) = [e for e in logs if e["event"] == "bundle refused, the current one keeps serving"]
    assert "'../outside.txt', which is not a plain path inside the bundle" in refused["reason"]
    assert metrics.reloads.labels("refused")._value.get() == 1


def test_the_embedder_folder_is_held_to_the_same_rule(tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text(OUTSIDE)
    folder = tmp_path / "embedder"
    folder.mkdir()
    manifest = EmbedderManifest(
        name="e",
        created_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        base_model=BaseModelInfo(name="e"),
        max_length=16,
        dim=4,
        files={
            "../outside.txt": sha256_file(tmp_path / "outside.txt"),
            "model.onnx": "0",
            "tokenizer.json": "0",
        },
    )
    (folder / MANIFEST).write_text(manifest.model_dump_json())
    with pytest.raises(BundleError, match=re.escape("'../outside.txt', which is not a plain path")):
        Embedder(folder)
