"""`wirewatch feed` settings: WIREWATCH_FEED_* environment variables, flags on top.

The Kafka address and librdkafka settings are shared with the scorer: WIREWATCH_BOOTSTRAP_SERVERS
and WIREWATCH_KAFKA are read too (the WIREWATCH_FEED_* names win).
"""

import argparse
from typing import Any, Literal, get_args, get_origin

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.arguments import DEFAULT_BOOTSTRAP_SERVERS
from stream.kafka.config import load_with_kafka, no_protected_keys, parse_kafka_pairs
from stream.schemas import ARTICLES_TOPIC

DEFAULT_USER_AGENT = "wirewatch-feed/0.1 (news anomaly detector; polite RSS/Atom reader)"


class FeedSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WIREWATCH_FEED_", extra="forbid", validate_default=True, populate_by_name=True
    )

    bootstrap_servers: str = Field(
        DEFAULT_BOOTSTRAP_SERVERS,
        validation_alias=AliasChoices("WIREWATCH_FEED_BOOTSTRAP_SERVERS", "WIREWATCH_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers (also WIREWATCH_BOOTSTRAP_SERVERS)",
    )
    articles_topic: str = Field(ARTICLES_TOPIC, description="Topic the articles go to (the scorer's input)")
    interval_s: float = Field(900.0, gt=0, description="Seconds between two polls of one feed")
    jitter: float = Field(
        0.1, ge=0, le=0.5, description="Each interval and backoff is scaled by 1 +- this, at random"
    )
    backoff_s: float = Field(
        60.0, gt=0, description="First wait after a failed poll; doubles with each failure"
    )
    max_backoff_s: float = Field(
        6 * 3600.0, gt=0, description="Longest wait between retries of a failing feed"
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="Connect timeout of every fetch")
    read_timeout_s: float = Field(10.0, gt=0, description="Longest silence while reading a response")
    fetch_deadline_s: float = Field(30.0, gt=0, description="Longest time one fetch may take in all")
    max_feed_bytes: int = Field(10_000_000, ge=1024, description="Larger feed documents are refused")
    max_page_bytes: int = Field(
        5_000_000, ge=1024, description="Larger article pages are refused (summary used)"
    )
    max_redirects: int = Field(
        5, ge=0, le=20, description="Redirects followed per fetch (http and https only)"
    )
    per_host: int = Field(2, ge=1, le=64, description="Concurrent requests to one host at most")
    workers: int = Field(8, ge=1, le=256, description="Feeds polled side by side")
    max_items_per_feed: int = Field(200, ge=1, description="Entries read from one feed document at most")
    max_text_chars: int = Field(
        100_000, ge=1000, description="An article's text is cut to this many characters"
    )
    min_page_chars: int = Field(
        200,
        ge=0,
        description="Extracted page text shorter than this (and than the summary) loses to the summary",
    )
    fetch_pages: bool = Field(True, description="Fetch each new item's page for its full text")
    robots: bool = Field(True, description="Obey robots.txt for page fetches")
    user_agent: str = Field(DEFAULT_USER_AGENT, min_length=1, description="User-Agent of every request")
    delivery_timeout_s: float = Field(
        60.0, gt=0, description="How long a poll waits for Kafka to acknowledge its articles"
    )
    metrics_port: int = Field(9309, ge=0, le=65535, description="Port of /metrics (0: off)")
    metrics_host: str = Field("0.0.0.0", description="Address of the metrics server")
    log_format: Literal["json", "console"] = Field("console", description="Log format")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level")
    startup_timeout_s: float = Field(30.0, gt=0, description="How long to wait for Kafka at startup")
    kafka: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("WIREWATCH_FEED_KAFKA", "WIREWATCH_KAFKA"),
        description="librdkafka settings passed through (a JSON object; --kafka key=value adds one)",
    )

    @field_validator("kafka")
    @classmethod
    def _no_protected_keys(cls, kafka: dict[str, str]) -> dict[str, str]:
        return no_protected_keys(kafka)

    @field_validator("user_agent")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(c in value for c in "\r\n\x00"):
            raise ValueError("must be one line")
        return value


def load_feed_settings(kafka_extra: dict[str, str] | None = None, **overrides: Any) -> FeedSettings:
    return load_with_kafka(FeedSettings, kafka_extra, **overrides)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, as for `serve`."""
    for name, field in FeedSettings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        value = field.get_default(call_default_factory=True)
        default = "" if value in (None, {}) else f"; default {value}"
        help_text = f"{field.description or name}{default} [WIREWATCH_FEED_{name.upper()}]"
        if name == "kafka":
            parser.add_argument(flag, action="append", metavar="KEY=VALUE", help=f"{help_text}; repeatable")
        elif field.annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif get_origin(field.annotation) is Literal:
            parser.add_argument(flag, choices=get_args(field.annotation), help=help_text)
        else:
            kind = next(
                (t for t in (int, float) if t in (field.annotation, *get_args(field.annotation))), str
            )
            parser.add_argument(flag, dest=name, type=kind, help=help_text)


def from_arguments(args: argparse.Namespace) -> FeedSettings:
    overrides = {name: getattr(args, name, None) for name in FeedSettings.model_fields if name != "kafka"}
    return load_feed_settings(kafka_extra=parse_kafka_pairs(getattr(args, "kafka", None) or []), **overrides)
