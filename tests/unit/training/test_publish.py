"""Publishing a bundle folder: staged beside the target, renamed into place whole, or not at all."""

import os
from pathlib import Path

import pytest

from stream.errors import ConfigError
from training.ship import publish
from training.ship.publish import publishing


def _old_bundle(out: Path) -> Path:
    out.mkdir(parents=True)
    (out / "manifest.json").write_text("old\n")
    return out


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir())


def test_the_folder_is_built_aside_and_appears_only_when_the_block_succeeds(tmp_path: Path) -> None:
    out = tmp_path / "exports" / "bundle"
    with publishing(out, force=False) as folder:
        assert folder.parent == out.parent
        assert folder.name == f".bundle.tmp-{os.getpid()}"
        assert not out.exists()
        (folder / "manifest.json").write_text("new\n")
    assert (out / "manifest.json").read_text() == "new\n"
    assert _siblings(out) == ["bundle"]


def test_an_existing_folder_is_refused_without_force_and_left_alone(tmp_path: Path) -> None:
    out = _old_bundle(tmp_path / "bundle")
    with pytest.raises(ConfigError, match="already exists; pass --force"), publishing(out, force=False):
        pytest.fail("the block must not run")
    assert (out / "manifest.json").read_text() == "old\n"
    assert _siblings(out) == ["bundle"]


def test_with_force_the_new_folder_replaces_the_old_one_whole(tmp_path: Path) -> None:
    out = _old_bundle(tmp_path / "bundle")
    (out / "only-in-the-old.onnx").write_text("x")
    with publishing(out, force=True) as folder:
        (folder / "manifest.json").write_text("new\n")
        assert (out / "manifest.json").read_text() == "old\n"  # still serving the old one
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert (out / "manifest.json").read_text() == "new\n"
    assert _siblings(out) == ["bundle"]


def test_stale_staging_folders_of_killed_runs_are_removed(tmp_path: Path) -> None:
    out = _old_bundle(tmp_path / "bundle")
    for stale in (".bundle.tmp-1", ".bundle.tmp-2-old"):
        (tmp_path / stale).mkdir()
        (tmp_path / stale / "model.onnx").write_text("half written")
    (tmp_path / ".other.tmp-1").mkdir()  # another folder's staging is not this run's business
    with publishing(out, force=True) as folder:
        (folder / "manifest.json").write_text("new\n")
    assert _siblings(out) == [".other.tmp-1", "bundle"]


def _build_failing(out: Path, error: BaseException) -> None:
    with publishing(out, force=True) as folder:
        (folder / "manifest.json").write_text("half\n")
        raise error


def test_a_failing_build_leaves_the_old_bundle_in_place(tmp_path: Path) -> None:
    out = _old_bundle(tmp_path / "bundle")
    for error in (RuntimeError("export failed"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            _build_failing(out, error)
        assert (out / "manifest.json").read_text() == "old\n"
        assert _siblings(out) == ["bundle"]


def test_a_failing_rename_puts_the_old_bundle_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _old_bundle(tmp_path / "bundle")
    rename = os.rename

    def refuse_staging(src: str | Path, dst: str | Path) -> None:
        if Path(src).name == f".bundle.tmp-{os.getpid()}":
            raise OSError("no space left on device")
        rename(src, dst)

    monkeypatch.setattr(publish.os, "rename", refuse_staging)
    with pytest.raises(OSError, match="no space"), publishing(out, force=True) as folder:
        (folder / "manifest.json").write_text("new\n")
    assert (out / "manifest.json").read_text() == "old\n"
    assert _siblings(out) == ["bundle"]


def test_a_link_at_the_target_is_replaced_and_what_it_points_to_kept(tmp_path: Path) -> None:
    kept = _old_bundle(tmp_path / "v1")
    out = tmp_path / "bundle"
    out.symlink_to(kept)
    with publishing(out, force=True) as folder:
        (folder / "manifest.json").write_text("new\n")
    assert not out.is_symlink()
    assert (out / "manifest.json").read_text() == "new\n"
    assert (kept / "manifest.json").read_text() == "old\n"


def test_packages_records_python_and_the_installed_versions() -> None:
    import platform

    import numpy

    found = publish.packages()
    assert found["python"] == platform.python_version()
    assert found["numpy"] == numpy.__version__
    assert set(found) <= {"python", *publish.PACKAGES}
