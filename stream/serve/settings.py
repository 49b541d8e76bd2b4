"""Service settings: WIREWATCH_* environment variables, with `wirewatch serve` flags on top.

Every field reads from the environment variable of its name, upper case, with the WIREWATCH_
prefix: ``bootstrap_servers`` from ``WIREWATCH_BOOTSTRAP_SERVERS``. ``kafka`` passes librdkafka
settings through (SASL, SSL, tuning): ``WIREWATCH_KAFKA='{"security.protocol": "SASL_SSL"}'`` or
``--kafka sasl.mechanism=PLAIN``; values of keys that look secret are never logged. Keys that
decide the delivery semantics are refused there (see PROTECTED_KAFKA_KEYS).

The field defaults below are the only place defaults are written: `--help` and docs/operating.md's
configuration table (`python -m stream.serve.settings`) are generated from them, and a test compares.
"""

import argparse
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.arguments import DEFAULT_BOOTSTRAP_SERVERS
from stream.errors import ConfigError
from stream.kafka.config import load_with_kafka, no_protected_keys, parse_kafka_pairs, redact_kafka
from stream.kafka.connection import Connection
from stream.schemas import (
    ALERTS_TOPIC,
    ARTICLES_TOPIC,
    DLQ_TOPIC,
    SCORER_GROUP_ID,
    SCORES_TOPIC,
    SHADOW_SCORES_TOPIC,
)


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WIREWATCH_", extra="forbid", validate_default=True)

    bundle: Path = Field(description="Model bundle folder")
    bootstrap_servers: str = Field(DEFAULT_BOOTSTRAP_SERVERS, description="Kafka bootstrap servers")
    input_topic: str = Field(ARTICLES_TOPIC, description="Topic to read articles from")
    scores_topic: str = Field(SCORES_TOPIC, description="Topic for every score")
    alerts_topic: str = Field(ALERTS_TOPIC, description="Topic for alerts (score >= threshold)")
    dlq_topic: str = Field(DLQ_TOPIC, description="Dead-letter topic for malformed input")
    group_id: str = Field(
        SCORER_GROUP_ID, description="Consumer group; scorers in one group share the partitions"
    )
    batch_size: int = Field(32, ge=1, le=4096, description="Articles per micro-batch at most")
    max_wait_ms: int = Field(
        50, ge=0, le=60_000, description="Close a batch this long after its first article"
    )
    inference_batch_size: int = Field(
        256,
        ge=1,
        le=8192,
        description="Windows per ONNX Runtime call at most (length-sorted, padded per call)",
    )
    inference_tokens: int = Field(
        0,
        ge=0,
        description="Padded tokens (windows x longest) per ONNX Runtime call (0: 2048 on CPU, 65536 on CUDA)",
    )
    providers: Literal["auto", "cpu", "cuda", "openvino"] = Field(
        "auto",
        description="ONNX Runtime execution provider; auto: CUDA with a GPU, OpenVINO on AMX/VNNI CPUs, else CPU",
    )
    sessions: int = Field(
        0,
        ge=0,
        description="ONNX Runtime sessions scoring side by side (0: one per usable core on CPU, one on CUDA)",
    )
    intra_op_threads: int = Field(
        0, ge=0, description="Threads per ONNX Runtime session (0: cores / sessions)"
    )
    max_message_bytes: int = Field(1_000_000, ge=1024, description="Larger inputs go to the DLQ as too_large")
    max_in_flight: int = Field(512, ge=1, description="Pause consuming above this many unfinished messages")
    explain: bool = Field(True, description="Attach the sentences that drove the score to each alert")
    max_consecutive_failures: int = Field(
        20, ge=1, description="Stop without committing when this many articles in a row fail to score"
    )
    exactly_once: bool = Field(False, description="Read-process-write in Kafka transactions")
    transactional_id: str | None = Field(
        None,
        description="Stable per instance; default <group_id>-<hostname>-<n>, n the lowest slot free on this host",
    )
    reload: bool = Field(
        True, description="Watch the bundle path (and SIGHUP) and swap in a new bundle that passes the gate"
    )
    reload_interval_s: float = Field(
        2.0, gt=0, description="How often to look at the bundle path for a change"
    )
    shadow_bundle: Path | None = Field(
        None, description="Second bundle that scores every article too, for comparison (no alerts)"
    )
    shadow_topic: str = Field(SHADOW_SCORES_TOPIC, description="Topic for the shadow bundle's scores")
    create_topics: bool = Field(False, description="Create missing topics at startup")
    topic_partitions: int = Field(3, ge=1, description="Partitions of topics created with create_topics")
    metrics_port: int = Field(
        9308, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz (0: off)"
    )
    metrics_host: str = Field("0.0.0.0", description="Address of the metrics server")
    log_format: Literal["json", "console"] = Field("console", description="Log format")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level")
    startup_timeout_s: float = Field(15.0, gt=0, description="How long to wait for Kafka at startup")
    liveness_timeout_s: float = Field(
        60.0, gt=0, description="/healthz fails when the loop or a batch has been stuck this long"
    )
    # Kafka's pre-3.0 default; also keeps the embedded broker's first group join short (~5 s).
    session_timeout_ms: int = Field(10_000, ge=1000, description="Consumer group session timeout")
    kafka: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka settings passed through (a JSON object; --kafka key=value adds one, repeatable)",
    )

    @model_validator(mode="after")
    def _distinct_topics(self) -> "ServeSettings":
        topics = [*self.output_topics, self.input_topic]
        if len(set(topics)) != len(topics):
            raise ValueError(f"input, scores, alerts, dead-letter and shadow topics must differ: {topics}")
        return self

    @field_validator("kafka")
    @classmethod
    def _no_protected_keys(cls, kafka: dict[str, str]) -> dict[str, str]:
        return no_protected_keys(kafka)

    @property
    def output_topics(self) -> list[str]:
        topics = [self.scores_topic, self.alerts_topic, self.dlq_topic]
        return [*topics, self.shadow_topic] if self.shadow_bundle else topics

    def redacted_kafka(self) -> dict[str, str]:
        return redact_kafka(self.kafka)

    @property
    def connection(self) -> Connection:
        return Connection(self.bootstrap_servers, self.kafka)


def load_settings(kafka_extra: dict[str, str] | None = None, **overrides: Any) -> ServeSettings:
    return load_with_kafka(ServeSettings, kafka_extra, **overrides)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, so that flags and WIREWATCH_* variables never drift apart."""
    for name, field in ServeSettings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = f"WIREWATCH_{name.upper()}"
        value = None if field.is_required() else field.get_default(call_default_factory=True)
        default = "" if value in (None, {}) else f"; default {value}"
        help_text = f"{field.description or name}{default} [{env}]"
        if name == "kafka":
            parser.add_argument(
                flag, action="append", metavar="KEY=VALUE", help=f"{help_text}; repeatable, adds to {env}"
            )
        elif field.annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif get_origin(field.annotation) is Literal:
            parser.add_argument(flag, choices=get_args(field.annotation), help=help_text)
        else:
            kind = next(
                (t for t in (int, float, Path) if t in (field.annotation, *get_args(field.annotation))), str
            )
            names = [flag, "--threads"] if name == "intra_op_threads" else [flag]
            parser.add_argument(*names, dest=name, type=kind, help=help_text)


def from_arguments(args: argparse.Namespace) -> ServeSettings:
    overrides = {name: getattr(args, name, None) for name in ServeSettings.model_fields if name != "kafka"}
    return load_settings(kafka_extra=parse_kafka_pairs(getattr(args, "kafka", None) or []), **overrides)


def _flag(name: str) -> str:
    field = ServeSettings.model_fields[name]
    flag = "--" + name.replace("_", "-")
    if field.annotation is bool:
        return f"`{flag}/--no-{flag[2:]}`"
    return "`--threads`" if name == "intra_op_threads" else f"`{flag}`"


def _default(name: str) -> str:
    field = ServeSettings.model_fields[name]
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def settings_table() -> str:
    """docs/operating.md's configuration table, from the fields: one source for names, defaults and meaning."""
    rows = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
    for name, field in ServeSettings.model_fields.items():
        meaning = (field.description or name).replace("|", "\\|")
        if get_origin(field.annotation) is Literal:
            meaning += ": " + ", ".join(f"`{c}`" for c in get_args(field.annotation))
        rows.append(f"| `WIREWATCH_{name.upper()}` | {_flag(name)} | {_default(name)} | {meaning} |")
    return "\n".join(rows) + "\n"


TABLE_START = "<!-- settings table: generated from stream/serve/settings.py by `make settings-table` -->"
TABLE_END = "<!-- end of the settings table -->"


def update_readme(path: Path) -> bool:
    """Rewrite the table between the markers of a Markdown file; True when it changed."""
    text = path.read_text(encoding="utf-8")
    head, start, rest = text.partition(TABLE_START)
    _old, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        raise ConfigError(f"{path}: no settings table markers ({TABLE_START} ... {TABLE_END})")
    new = f"{head}{TABLE_START}\n{settings_table()}{TABLE_END}{tail}"
    path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(f"{sys.argv[1]}: {'updated' if update_readme(Path(sys.argv[1])) else 'already current'}")
    else:
        sys.stdout.write(settings_table())
