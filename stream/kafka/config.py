"""librdkafka settings passed through by every command: parsing, the keys refused, redaction.

Every client wirewatch builds takes the user's librdkafka settings (WIREWATCH_KAFKA, --kafka-file,
--kafka key=value) and sets the keys its delivery guarantees rest on itself (PROTECTED_KAFKA_KEYS);
values of keys that look secret are never logged.
"""

from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from pydantic import ValidationError
from pydantic_settings import BaseSettings

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


def no_protected_keys(kafka: dict[str, str]) -> dict[str, str]:
    for key in kafka:
        reason = PROTECTED_KAFKA_KEYS.get(key.strip().lower())
        if reason:
            raise ValueError(f"{key!r} cannot be passed through: the service sets it ({reason})")
    return kafka


def redact_kafka(kafka: dict[str, str]) -> dict[str, str]:
    """librdkafka settings fit for a log line: the value of every secret-looking key is ***."""
    return {k: ("***" if any(w in k.lower() for w in _SECRET_WORDS) else v) for k, v in kafka.items()}


def read_settings_file(path: Path, flag: str) -> str:
    """A file named by a flag, as UTF-8; the error names the flag and file, never the content."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{flag} {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
        ) from None


def read_properties(path: Path) -> dict[str, str]:
    """key=value lines; blank lines and lines starting with # or ! are skipped.

    Errors name the file and line, never the line's content: it may hold a password.
    """
    lines = read_settings_file(path, "--kafka-file").splitlines()
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


def parse_kafka_pairs(pairs: list[str]) -> dict[str, str]:
    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--kafka expects key=value (a librdkafka setting), got {pair!r}")
        config[key.strip()] = value
    return config


def invalid_setting(exc: ValidationError, prefix: str = "WIREWATCH_") -> ConfigError:
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
        raise invalid_setting(exc, prefix) from None
