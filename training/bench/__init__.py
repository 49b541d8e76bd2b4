"""Benchmarks of the trainer's side: scripts that print JSON, run on purpose, never by the tests."""

import json
from pathlib import Path
from typing import Any


def print_result(result: dict[str, Any], out: Path | None) -> None:
    """Prints a benchmark's JSON and, given --out, writes the same text there."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
