"""Service settings: WIREWATCH_* environment variables, with `wirewatch serve` flags on top.

Every field reads from the environment variable of its name, upper case, with the WIREWATCH_
prefix: ``bootstrap_servers`` from ``WIREWATCH_BOOTSTRAP_SERVERS``. ``kafka`` passes librdkafka
settings through (SASL, SSL, tuning): ``WIREWATCH_KAFKA='{"security.protocol": "SASL_SSL"}'`` or
``--kafka sasl.mechanism=PLAIN``; values of keys that look secret are never logged. Keys that
decide the delivery semantics are refused there (see PROTECTED_KAFKA_KEYS).

The field defaults below are the only place defaults are written: `--help` and the README's
configuration table (`python -m stream.settings`) are generated from them, and a test compares.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast, get_args, get_origin

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.errors import ConfigError

# A key with one of these in it has its value shown as *** (sasl.password, ssl.key.password,
# sasl.oauthbearer.config, which holds the client secret, ...).
_SECRET_WORDS = ("password", "secret", "token", "key", "credential", "oauthbearer")
# librdkafka keys the service sets itself because its guarantees rest on them.
PROTECTED_KAFKA_KEYS = {
    "enable.auto.commit": "offsets are committed only after the outputs are delivered",
    "enable.auto.offset.store": "offsets are committed only after the outputs are delivered",
    "isolation.level": "the scorer reads committed input only (read_committed)",
    "enable.idempotence": "retries must never duplicate or reorder outputs",
    "acks": "the idempotent producer needs acks=all",
    "transactional.id": "use --transactional-id",
    "group.id": "use --group-id",
    "bootstrap.servers": "use --bootstrap-servers",
}


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
    shadow_topic: str = Field("article-scores-shadow", description="Topic for the shadow bundle's scores")
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


def no_protected_keys(kafka: dict[str, str]) -> dict[str, str]:
    for key in kafka:
        reason = PROTECTED_KAFKA_KEYS.get(key.strip().lower())
        if reason:
            raise ValueError(f"{key!r} cannot be passed through: the service sets it ({reason})")
    return kafka


def redact_kafka(kafka: dict[str, str]) -> dict[str, str]:
    """librdkafka settings fit for a log line: the value of every secret-looking key is ***."""
    return {k: ("***" if any(w in k.lower() for w in _SECRET_WORDS) else v) for k, v in kafka.items()}


class SubscriberSettings(BaseSettings):
    """What `incidents`, `web` and `notify` read from the environment: secrets, kept off the command line.

    A flag's value is visible to every user of the host (``ps``); these come from WIREWATCH_*
    variables or from files, and the ``*_file`` flags (which name a file, not a secret) win.
    WIREWATCH_KAFKA is the same JSON object `serve` reads.
    """

    model_config = SettingsConfigDict(env_prefix="WIREWATCH_", extra="ignore")

    kafka: dict[str, str] = Field(default_factory=dict, description="librdkafka settings (a JSON object)")
    kafka_file: Path | None = Field(
        None, description="librdkafka settings, one key=value a line (a Java-style properties file)"
    )
    webhook: SecretStr | None = Field(None, description="The URL notify posts to (it is the credential)")
    webhook_file: Path | None = Field(None, description="A file holding the webhook URL")
    web_token: SecretStr | None = Field(None, description="The token the live page asks for")
    web_token_file: Path | None = Field(None, description="A file holding the live page's token")

    @field_validator("kafka")
    @classmethod
    def _no_protected_keys(cls, kafka: dict[str, str]) -> dict[str, str]:
        return no_protected_keys(kafka)

    def kafka_config(self, pairs: list[str]) -> dict[str, str]:
        """WIREWATCH_KAFKA, then the properties file, then --kafka pairs on top."""
        config = {**self.kafka, **(read_properties(self.kafka_file) if self.kafka_file else {})}
        config.update(parse_kafka_pairs(pairs))
        try:
            return no_protected_keys(config)
        except ValueError as exc:
            raise ConfigError(f"invalid librdkafka setting: {exc}") from None

    def webhook_url(self) -> str | None:
        return _secret(self.webhook, self.webhook_file, "WIREWATCH_WEBHOOK", "--webhook-file")

    def token(self) -> str | None:
        return _secret(self.web_token, self.web_token_file, "WIREWATCH_WEB_TOKEN", "--token-file")


def _secret(value: SecretStr | None, file: Path | None, env: str, flag: str) -> str | None:
    """A secret from its variable or its file (one of them), trimmed; None when neither is set."""
    if value is not None and value.get_secret_value().strip() and file is not None:
        raise ConfigError(f"both {env} and {flag} are set; pass the secret one way")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{flag} {file}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
            ) from None
        if not text:
            raise ConfigError(f"{flag} {file}: the file is empty")
        return text
    text = value.get_secret_value().strip() if value is not None else ""
    return text or None


def read_properties(path: Path) -> dict[str, str]:
    """key=value lines; blank lines and lines starting with # or ! are skipped.

    Errors name the file and line, never the line's content: it may hold a password.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"--kafka-file {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    config = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--kafka-file {path}, line {number}: expected key=value (a librdkafka setting)"
            )
        config[key.strip()] = value.strip()
    return config


def load_subscriber_settings(**overrides: Any) -> SubscriberSettings:
    """The environment, with the *_file flags on top; errors name the variable to fix."""
    try:
        return SubscriberSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError, prefix: str = "WIREWATCH_") -> ConfigError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "settings"
    env = f"{prefix}{field.upper()}" if field != "settings" else "settings"
    return ConfigError(f"invalid setting {field} (--{field.replace('_', '-')} / {env}): {err['msg']}")


class _WithKafka(Protocol):
    kafka: dict[str, str]


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_with_kafka(
    cls: type[SettingsT], kafka_extra: dict[str, str] | None = None, **overrides: Any
) -> SettingsT:
    """Environment first, explicit overrides (CLI flags) on top; errors name the variable to fix.

    kafka_extra adds librdkafka settings to those of the environment's `kafka` rather than
    replacing them.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = cls(**given)
        if kafka_extra:
            settings = cls(**{**given, "kafka": {**cast(_WithKafka, settings).kafka, **kafka_extra}})
        return settings
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix") or "WIREWATCH_")
        raise _invalid(exc, prefix) from None


def load_settings(kafka_extra: dict[str, str] | None = None, **overrides: Any) -> ServeSettings:
    return load_with_kafka(ServeSettings, kafka_extra, **overrides)


DEFAULT_DATA_DIR = "../shared/datasets"


def default_data_dir() -> Path:
    """The corpora for `data prepare` and `demo`: $WIREWATCH_DATA_DIR, else ../shared/datasets."""
    return Path(os.environ.get("WIREWATCH_DATA_DIR", DEFAULT_DATA_DIR))


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
    """The README's configuration table, from the fields: one source for names, defaults and meaning."""
    rows = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
    for name, field in ServeSettings.model_fields.items():
        meaning = (field.description or name).replace("|", "\\|")
        if get_origin(field.annotation) is Literal:
            meaning += ": " + ", ".join(f"`{c}`" for c in get_args(field.annotation))
        rows.append(f"| `WIREWATCH_{name.upper()}` | {_flag(name)} | {_default(name)} | {meaning} |")
    return "\n".join(rows) + "\n"


def parse_kafka_pairs(pairs: list[str]) -> dict[str, str]:
    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--kafka expects key=value (a librdkafka setting), got {pair!r}")
        config[key.strip()] = value
    return config


TABLE_START = "<!-- settings table: generated from stream/settings.py by `make settings-table` -->"
TABLE_END = "<!-- end of the settings table -->"


def update_readme(path: Path) -> bool:
    """Rewrite the table between the markers of a README; True when it changed."""
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
