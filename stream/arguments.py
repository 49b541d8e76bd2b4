"""The flags several commands share, defined once: --bootstrap-servers, --kafka, --data-dir, --seed.

Serving and training commands both add them (training may import stream, not the other way), so
their names, defaults and help read the same wherever they appear. Nothing heavy is imported here.
"""

import argparse
import os
from pathlib import Path

# Where every Kafka client connects when neither a flag nor WIREWATCH_BOOTSTRAP_SERVERS says otherwise.
DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_DATA_DIR = "../shared/datasets"
DEFAULT_SEED = 13


def default_data_dir() -> Path:
    """The corpora for `data prepare` and `demo`: $WIREWATCH_DATA_DIR, else ../shared/datasets."""
    return Path(os.environ.get("WIREWATCH_DATA_DIR", DEFAULT_DATA_DIR))


def add_bootstrap_servers(p: argparse._ActionsContainer, *, prefix: str = "") -> None:
    """--bootstrap-servers, from $WIREWATCH_BOOTSTRAP_SERVERS by default; prefix starts its help."""
    p.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("WIREWATCH_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP_SERVERS),
        help=f"{prefix}Kafka bootstrap servers (default $WIREWATCH_BOOTSTRAP_SERVERS or {DEFAULT_BOOTSTRAP_SERVERS})",
    )


def add_kafka(p: argparse._ActionsContainer, *, more: str = "") -> None:
    """--kafka KEY=VALUE, repeatable (parse with stream.kafka.config.parse_kafka_pairs); more ends its help."""
    p.add_argument(
        "--kafka", action="append", metavar="KEY=VALUE", help=f"librdkafka setting, repeatable{more}"
    )


def add_data_dir(p: argparse._ActionsContainer) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help=f"the datasets folder (default: $WIREWATCH_DATA_DIR or {DEFAULT_DATA_DIR})",
    )


def add_seed(p: argparse._ActionsContainer, what: str) -> None:
    """--seed; what the seed decides starts its help."""
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"{what} (default {DEFAULT_SEED})")
