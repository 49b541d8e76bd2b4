"""Service settings: WIREWATCH_* environment variables, with `wirewatch serve` flags on top.

Every field reads from the environment variable of its name, upper case, with the WIREWATCH_
prefix: ``bootstrap_servers`` from ``WIREWATCH_BOOTSTRAP_SERVERS``. ``kafka`` passes librdkafka
settings through (SASL, SSL, tuning): ``WIREWATCH_KAFKA='{"security.protocol": "SASL_SSL"}'`` or
``--kafka sasl.mechanism=PLAIN``; values of keys that look secret are never logged.
"""

import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.errors import ConfigError

_SECRET_WORDS = ("password", "secret", "token", "key")


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WIREWATCH_", extra="forbid", validate_default=True)

    bundle: Path = Field(description="Model bundle folder")
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    input_topic: str = "articles"
    scores_topic: str = "article-scores"
    alerts_topic: str = "article-alerts"
    dlq_topic: str = "articles-dlq"
    group_id: str = "wirewatch"
    batch_size: int = Field(32, ge=1, le=4096, description="Articles per micro-batch at most")
    max_wait_ms: int = Field(
        100, ge=0, le=60_000, description="Close a batch this long after its first article"
    )
    inference_batch_size: int = Field(8, ge=1, le=512, description="Windows per ONNX Runtime call")
    providers: Literal["auto", "cpu", "cuda"] = "auto"
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime threads (0: all cores)")
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
    metrics_host: str = "0.0.0.0"
    log_format: Literal["json", "console"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
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


def parse_kafka_pairs(pairs: list[str]) -> dict[str, str]:
    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--kafka expects key=value (a librdkafka setting), got {pair!r}")
        config[key.strip()] = value
    return config
