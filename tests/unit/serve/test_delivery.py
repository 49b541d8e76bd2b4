"""The default transactional id: distinct for instances on one host, reused by a restarted one."""

from pathlib import Path

import pytest

from stream.errors import ConfigError
from stream.serve.delivery import TransactionalId


def test_two_instances_on_one_host_get_different_ids_and_a_restart_gets_its_slot_back(tmp_path: Path) -> None:
    first = TransactionalId("grp", tmp_path, host="box")
    second = TransactionalId("grp", tmp_path, host="box")
    assert first.claim() == "grp-box-0"
    assert second.claim() == "grp-box-1"  # no fencing between them
    first.release()  # the process exits (or is killed: the kernel drops its lock)
    restarted = TransactionalId("grp", tmp_path, host="box")
    assert restarted.claim() == "grp-box-0"  # fences the zombie of the first, if any
    other_group = TransactionalId("other", tmp_path, host="box")
    assert other_group.claim() == "other-box-0"
    for held in (second, restarted, other_group):
        held.release()


def test_no_writable_lock_folder_asks_for_an_explicit_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pass --transactional-id"):
        TransactionalId("grp", tmp_path / "missing", host="box").claim()
