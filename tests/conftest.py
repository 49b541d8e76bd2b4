"""Shared fixtures. Tests never download: the hub is switched off before anything imports it."""

import os
from pathlib import Path

import pytest
import structlog

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]

# The broker fixtures (kafka_bootstrap, new_topic) for every test folder that needs them.
pytest_plugins = ["tests.integration.broker_fixtures"]


def _datasets_dir() -> Path:
    return Path(os.environ.get("WIREWATCH_DATA_DIR", ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    path = _datasets_dir()
    if not (path / "muc34-terrorism" / "muc34.tar.gz").is_file():
        pytest.fail(f"the shared datasets are missing at {path}; set WIREWATCH_DATA_DIR")
    return path


@pytest.fixture(autouse=True)
def _fresh_structlog():  # type: ignore[no-untyped-def]
    """A command run in a test configures structlog to print to that test's captured stderr, which
    pytest closes afterwards: later tests would log to a closed file."""
    yield
    structlog.reset_defaults()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The folder under tests/ decides the marker (tests/unit/serve/... is unit), so `-m unit` and
    # `-m integration` select by folder.
    tests = Path(__file__).resolve().parent
    for item in items:
        path = Path(str(item.fspath)).resolve()
        folder = path.relative_to(tests).parts[0] if path.is_relative_to(tests) else None
        if folder in ("unit", "integration"):
            item.add_marker(getattr(pytest.mark, folder))
