"""The bundle watcher: a change is tried once it holds still, refused bundles are not retried, SIGHUP forces."""

import os
import time
from pathlib import Path

import pytest
import structlog

from stream.errors import BundleError
from stream.serve.observability import Metrics
from stream.serve.reload import Reloader, fingerprint


def _folder(root: Path, name: str, version: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "manifest.json").write_text(f'{{"version": "{version}"}}')
    (folder / "model.onnx").write_bytes(b"m" + version.encode())
    return folder


class _Loads:
    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.refuse: set[str] = set()

    def __call__(self, path: Path) -> str:
        self.paths.append(path)
        version = (path / "manifest.json").read_text()
        if any(r in version for r in self.refuse):
            raise BundleError(f"{path}: model.onnx does not match the sha256 in manifest.json")
        return version


def _reloader(link: Path, loads: _Loads) -> tuple["Reloader[str]", Metrics]:
    metrics = Metrics()
    return Reloader(link, loads, interval=1.0, log=structlog.get_logger("t"), metrics=metrics), metrics


def _flip(link: Path, target: Path) -> None:
    tmp = link.with_name(".tmp-link")
    tmp.symlink_to(target)
    os.replace(tmp, link)  # the atomic flip deployment tools do


def test_fingerprint_follows_the_symlink_and_the_files(tmp_path: Path) -> None:
    v1, v2 = _folder(tmp_path, "v1", "1"), _folder(tmp_path, "v2", "2")
    link = tmp_path / "current"
    link.symlink_to(v1)
    first = fingerprint(link)
    assert first == fingerprint(link)
    _flip(link, v2)
    assert fingerprint(link) not in (None, first)
    assert fingerprint(tmp_path / "missing") is None


def test_a_flipped_symlink_is_loaded_once_it_holds_still_and_handed_over_once(tmp_path: Path) -> None:
    v1, v2 = _folder(tmp_path, "v1", "1"), _folder(tmp_path, "v2", "2")
    link = tmp_path / "current"
    link.symlink_to(v1)
    loads = _Loads()
    reloader, _ = _reloader(link, loads)
    reloader.check()
    assert loads.paths == []  # nothing changed
    _flip(link, v2)
    reloader.check()
    assert loads.paths == []  # changed, not yet settled (a copy could be in progress)
    reloader.check()
    assert loads.paths == [v2.resolve()]
    assert reloader.take() == '{"version": "2"}'
    assert reloader.take() is None
    reloader.check()
    assert len(loads.paths) == 1  # the current bundle is not loaded again


def test_a_refused_bundle_is_logged_counted_and_not_tried_again_until_it_changes(tmp_path: Path) -> None:
    v1, bad = _folder(tmp_path, "v1", "1"), _folder(tmp_path, "bad", "corrupt")
    link = tmp_path / "current"
    link.symlink_to(v1)
    loads = _Loads()
    loads.refuse.add("corrupt")
    reloader, metrics = _reloader(link, loads)
    _flip(link, bad)
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            reloader.check()
    assert len(loads.paths) == 1
    assert reloader.take() is None
    refused = [e for e in logs if e["event"] == "bundle refused, the current one keeps serving"]
    assert len(refused) == 1
    assert "does not match the sha256" in refused[0]["reason"]
    assert metrics.reloads.labels("refused")._value.get() == 1
    (bad / "manifest.json").write_text('{"version": "fixed"}')  # fixed in place
    reloader.check()
    reloader.check()
    assert reloader.take() == '{"version": "fixed"}'


def test_sighup_forces_an_attempt_even_without_a_change(tmp_path: Path) -> None:
    v1 = _folder(tmp_path, "v1", "1")
    loads = _Loads()
    reloader, _ = _reloader(v1, loads)
    reloader.request()
    reloader.check()
    assert loads.paths == [v1.resolve()]
    assert reloader.take() == '{"version": "1"}'


@pytest.mark.timeout(30)
def test_the_watch_thread_starts_and_stops(tmp_path: Path) -> None:
    v1 = _folder(tmp_path, "v1", "1")
    loads = _Loads()
    reloader, _ = _reloader(v1, loads)
    reloader.interval = 0.01
    reloader.start()
    reloader.request()
    for _ in range(500):
        if loads.paths:
            break
        time.sleep(0.01)
    reloader.stop()
    assert loads.paths == [v1.resolve()]
