"""Service settings: WIREWATCH_* environment variables, with `wirewatch serve` flags on top.

Every field reads from the environment variable of its name, upper case, with the WIREWATCH_
prefix: ``bootstrap_servers`` from ``WIREWATCH_BOOTSTRAP_SERVERS``. ``kafka`` passes librdkafka
settings through (SASL, SSL, tuning): ``WIREWATCH_KAFKA='{"security.protocol": "SASL_SSL"}'`` or
``--kafka sasl.mechanism=PLAIN``; values of keys that look secret are never logged.
"""

import argparse
import os
import socket
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.errors import ConfigError

_SECRET_WORDS = ("password", "secret", "token", "key")


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WIREWATCH_", extra="forbid", validate_default=True)

    bundle: Path = Field(description="Model bundle folder")
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    input_topic: str = Field("articles", description="Topic to read articles from")
    scores_topic: str = Field("article-scores", description="Topic for every score")
    alerts_topic: str = Field("article-alerts", description="Topic for alerts (score >= threshold)")
    dlq_topic: str = Field("articles-dlq", description="Dead-letter topic for malformed input")
    group_id: str = Field(
        "wirewatch", description="Consumer group; scorers in one group share the partitions"
    )
    batch_size: int = Field(32, ge=1, le=4096, description="Articles per micro-batch at most")
    max_wait_ms: int = Field(
        100, ge=0, le=60_000, description="Close a batch this long after its first article"
    )
    inference_batch_size: int = Field(8, ge=1, le=512, description="Windows per ONNX Runtime call")
    providers: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="ONNX Runtime execution provider; auto: CUDA when available"
    )
    sessions: int = Field(
        0,
        ge=0,
        description="ONNX Runtime sessions scoring side by side (0: one per core on CPU, one on CUDA)",
    )
    intra_op_threads: int = Field(
        0, ge=0, description="Threads per ONNX Runtime session (0: cores / sessions)"
    )
    max_message_bytes: int = Field(1_000_000, ge=1024, description="Larger inputs go to the DLQ as too_large")
    max_in_flight: int = Field(512, ge=1, description="Pause consuming above this many unfinished messages")
    explain: bool = Field(True, description="Attach the sentences that drove the score to each alert")
    exactly_once: bool = Field(False, description="Read-process-write in Kafka transactions")
    transactional_id: str | None = Field(
        None, description="Stable per instance; default <group_id>-<hostname>"
    )
    create_topics: bool = Field(False, description="Create missing topics at startup")
    topic_partitions: int = Field(3, ge=1, description="Partitions of topics created with create_topics")
    metrics_port: int = Field(
        9308, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz (0: off)"
    )
    metrics_host: str = Field("0.0.0.0", description="Address of the metrics server")
    log_format: Literal["json", "console"] = Field("console", description="Log format")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level")
    startup_timeout_s: float = Field(15.0, gt=0, description="How long to wait for Kafka at startup")
    # Kafka's pre-3.0 default; also keeps the embedded broker's first group join short (~5 s).
    session_timeout_ms: int = Field(10_000, ge=1000, description="Consumer group session timeout")
    kafka: dict[str, str] = Field(default_factory=dict, description="librdkafka settings passed through")

    @model_validator(mode="after")
    def _distinct_topics(self) -> "ServeSettings":
        topics = [self.input_topic, self.scores_topic, self.alerts_topic, self.dlq_topic]
        if len(set(topics)) != len(topics):
            raise ValueError(f"input, scores, alerts and dead-letter topics must differ: {topics}")
        return self

    @property
    def effective_transactional_id(self) -> str:
        return self.transactional_id or f"{self.group_id}-{socket.gethostname()}"

    def redacted_kafka(self) -> dict[str, str]:
        return {
            k: ("***" if any(w in k.lower() for w in _SECRET_WORDS) else v) for k, v in self.kafka.items()
        }


def load_settings(kafka_extra: dict[str, str] | None = None, **overrides: Any) -> ServeSettings:
    """Environment first, explicit overrides (CLI flags) on top; errors name the variable to fix.

    kafka_extra adds librdkafka settings to those of WIREWATCH_KAFKA rather than replacing them.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = ServeSettings(**given)
        if kafka_extra:
            settings = ServeSettings(**{**given, "kafka": {**settings.kafka, **kafka_extra}})
        return settings
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        env = f"WIREWATCH_{field.upper()}" if field != "settings" else "settings"
        raise ConfigError(
            f"invalid setting {field} (--{field.replace('_', '-')} / {env}): {err['msg']}"
        ) from None


def default_data_dir() -> Path:
    """The corpora for `data prepare` and `demo`: $WIREWATCH_DATA_DIR, else ../shared/datasets."""
    return Path(os.environ.get("WIREWATCH_DATA_DIR", "../shared/datasets"))


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


def parse_kafka_pairs(pairs: list[str]) -> dict[str, str]:
    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--kafka expects key=value (a librdkafka setting), got {pair!r}")
        config[key.strip()] = value
    return config
