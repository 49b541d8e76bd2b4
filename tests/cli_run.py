"""The one harness for running the real entry point, `wirewatch.cli.main`, in a fresh interpreter."""

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sklearn")
# At exit (a return, an argparse exit or an error alike) the child writes which heavy modules
# the command loaded, so a test can check that serving commands stay torch-free.
_CODE = f"""
import atexit, os, sys
from wirewatch.cli import main
def _report():
    with open(os.environ["CLI_RUN_MODULES"], "w") as out:
        out.write(",".join(m for m in {HEAVY!r} if m in sys.modules))
atexit.register(_report)
sys.exit(main(sys.argv[1:]))
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    heavy: list[str]  # the modules of HEAVY the command loaded


def run_cli(*args: str, timeout: float = 120.0, env: dict[str, str] | None = None) -> Run:
    """`wirewatch ARGS...` with the environment plus `env`, from the repository root."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "modules"
        result = subprocess.run(
            [sys.executable, "-c", _CODE, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=timeout,
            env={**os.environ, **(env or {}), "CLI_RUN_MODULES": str(report)},
        )
        heavy = report.read_text().split(",") if report.exists() else ["<not reported>"]
    return Run(result.returncode, result.stdout, result.stderr, [m for m in heavy if m])
