"""`wirewatch`: the console script. Training commands are loaded only when one of them runs.

`wirewatch serve --help` must not import the training package (nor torch); on a serving-only
install, where there is no training package, the training commands say what to install. Any
command that is not a serving one is looked up in training.cli, whose parser has them all.
"""

import argparse
import signal
import sys

from stream import cli as stream_cli
from stream.errors import DependencyError, WirewatchError

# Listed in `wirewatch --help` without importing training; training.cli defines them.
TRAINING_COMMANDS = {
    "data": "prepare training data from the original corpora",
    "train": "fine-tune a classifier and export a validated ONNX bundle",
}
TRAIN_EXTRA = "pip install 'wirewatch[train]' (or `make install` in a clone)"
DESCRIPTION = "Streaming anomaly detection for news: train a model bundle, score a Kafka stream."


def _first_command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _training_missing(args: argparse.Namespace) -> int:
    raise DependencyError(f"`wirewatch {args.command}` needs the training package and extra: {TRAIN_EXTRA}")


def serving_parser() -> tuple[argparse.ArgumentParser, set[str]]:
    """The serving commands (and their names), and the training ones as placeholders."""
    parser = argparse.ArgumentParser(prog="wirewatch", description=DESCRIPTION)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name, help_text in TRAINING_COMMANDS.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.set_defaults(handler=_training_missing, command=name)
    stream_cli.add_commands(sub)
    return parser, set(sub.choices) - set(TRAINING_COMMANDS)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser, serving = serving_parser()
    command = _first_command(sys.argv[1:] if argv is None else argv)
    if command is None or command in serving:
        return parser
    try:
        from training.cli import build_parser as full_parser
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("training"):
            raise
        return parser
    full: argparse.ArgumentParser = full_parser()
    return full


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.handler is not _training_missing:  # its arguments are unknown here by design
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    # SIGTERM unwinds like Ctrl-C, so that clean-ups run (`serve` installs its own handlers).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.handler(args))
    except WirewatchError as exc:
        return stream_cli.fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return stream_cli.fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
