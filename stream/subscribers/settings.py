"""The subscribers' settings (`incidents`, `web`, `notify`): secrets from the environment or files."""

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.errors import ConfigError
from stream.kafka.config import (
    invalid_setting,
    no_protected_keys,
    parse_kafka_pairs,
    read_properties,
    read_settings_file,
)


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
        text = read_settings_file(file, flag).strip()
        if not text:
            raise ConfigError(f"{flag} {file}: the file is empty")
        return text
    text = value.get_secret_value().strip() if value is not None else ""
    return text or None


def load_subscriber_settings(**overrides: Any) -> SubscriberSettings:
    """The environment, with the *_file flags on top; errors name the variable to fix."""
    try:
        return SubscriberSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise invalid_setting(exc) from None
