"""`wirewatch`: the console script. Training commands are loaded only when one of them runs.

`wirewatch serve --help` must not import the training package (nor torch); on a serving-only
install, where there is no training package, the training commands say what to install.
"""

import argparse
import signal
import sys

from stream import cli as stream_cli
from stream.errors import DependencyError, WirewatchError

# name -> one-line help, shown in `wirewatch --help` without importing training.
TRAINING_COMMANDS = {
    "data": "prepare training data from the original corpora",
    "train": "fine-tune a classifier and export a validated ONNX bundle",
}
TRAIN_EXTRA = "pip install 'wirewatch[train]' (or `make install` in a clone)"


def _first_command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _training_missing(args: argparse.Namespace) -> int:
    raise DependencyError(f"`wirewatch {args.command}` needs the training package and extra: {TRAIN_EXTRA}")


def _add_training_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", wanted: bool) -> None:
    if wanted:
        try:
            from training.cli import add_commands
        except ModuleNotFoundError as exc:
            if exc.name is None or not exc.name.startswith("training"):
                raise
        else:
            add_commands(sub)
            return
    for name, help_text in TRAINING_COMMANDS.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.set_defaults(handler=_training_missing, command=name)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wirewatch",
        description="Streaming anomaly detection for news: train a model bundle, score a Kafka stream.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    command = _first_command(sys.argv[1:] if argv is None else argv)
    _add_training_commands(sub, wanted=command in TRAINING_COMMANDS)
    stream_cli.add_commands(sub)
    return parser


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
