"""The documentation holds together: its links lead somewhere, and the commands it shows run."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# Every page whose relative links must resolve.
LINKED_PAGES = sorted({ROOT / "README.md", ROOT / "exports" / "README.md", *(ROOT / "docs").rglob("*.md")})
# The pages whose fenced `wirewatch ... --help` lines must run.
COMMAND_PAGES = sorted({ROOT / "README.md", *(ROOT / "docs").glob("*.md")})
# The commands a newcomer meets first: each must show its --help somewhere in the docs.
MAIN_COMMANDS = ("serve", "train", "incidents", "web", "notify", "feed", "demo")

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = ("http://", "https://", "mailto:")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def relative_links(text: str) -> list[str]:
    """The relative link targets of a Markdown text, anchors stripped (code is not Markdown)."""
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    targets = []
    for target in LINK.findall(prose):
        if target.startswith(EXTERNAL):
            continue
        path = target.split("#", 1)[0]
        if path:
            targets.append(path)
    return targets


def fenced_help_lines(text: str) -> list[str]:
    """Lines of fenced code blocks that run `wirewatch ... --help` (a trailing comment dropped)."""
    lines = []
    for block in FENCE.finditer(text):
        for line in block.group(0).splitlines()[1:-1]:
            line = line.strip()
            if line.startswith("wirewatch ") and "--help" in line:
                lines.append(line.split(" #", 1)[0].strip())
    return lines


def _help_lines() -> list[str]:
    found: dict[str, None] = {}
    for page in COMMAND_PAGES:
        for line in fenced_help_lines(page.read_text(encoding="utf-8")):
            found[line] = None
    return list(found)


HELP_LINES = _help_lines()


def test_the_link_finder_reads_markdown_not_code() -> None:
    text = (
        'See [a](docs/a.md#part), ![img](b.png "title"), [web](https://x.org/y.md), '
        "[top](#top), [mail](mailto:a@b.c) and `[not](code.md)`.\n"
        "```\n[nor](fenced.md)\n```\n"
    )
    assert relative_links(text) == ["docs/a.md", "b.png"]


def test_the_help_finder_reads_fenced_code_only() -> None:
    text = (
        "Run `wirewatch serve --help` inline.\n"
        "```bash\nwirewatch feed --help    # the flags\n.venv/bin/wirewatch web --help\nwirewatch tail\n```\n"
    )
    assert fenced_help_lines(text) == ["wirewatch feed --help"]


@pytest.mark.parametrize("page", LINKED_PAGES, ids=_rel)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = [
        target
        for target in relative_links(page.read_text(encoding="utf-8"))
        if not (page.parent / target).exists()
    ]
    assert broken == [], f"{_rel(page)} links to missing files: {broken}"


def test_the_main_commands_show_their_help_in_the_docs() -> None:
    shown = {shlex.split(line)[1] for line in HELP_LINES if len(shlex.split(line)) > 2}
    missing = [command for command in MAIN_COMMANDS if command not in shown]
    assert missing == [], f"no fenced `wirewatch COMMAND --help` line in README.md or docs/ for {missing}"


@pytest.mark.parametrize("line", HELP_LINES)
def test_every_documented_help_command_runs(line: str) -> None:
    args = shlex.split(line)[1:]
    result = subprocess.run(
        [sys.executable, "-m", "wirewatch", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, f"`{line}` exited {result.returncode}: {result.stderr[-2000:]}"
