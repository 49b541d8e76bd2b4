"""Message contracts: what the scorer reads and what it publishes.

The JSON Schema files in ``schemas/`` are generated from these models (``make schemas``) and a
test keeps them in step. Dead letters are the input bytes unchanged, with headers (below).
"""

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, field_validator

MAX_ID_LENGTH = 256

# The topics' default names, where the settings of every command start (docker-compose.yml creates
# them by name).
ARTICLES_TOPIC = "articles"  # the scorer's input, the feed's output
SCORES_TOPIC = "article-scores"
SHADOW_SCORES_TOPIC = "article-scores-shadow"
ALERTS_TOPIC = "article-alerts"
DLQ_TOPIC = "articles-dlq"
INCIDENTS_TOPIC = "article-incidents"  # compacted: the current state of each incident
INCIDENT_ALERTS_TOPIC = "article-incident-alerts"
NOTIFY_DLQ_TOPIC = "article-notify-dlq"
# The scorers' consumer group: `wirewatch web` reads its committed offsets for the lag.
SCORER_GROUP_ID = "wirewatch"

# Input problems first, then what went wrong with a valid article's outputs (see docs/subscribers.md).
DeadLetterReason = Literal[
    "invalid_json",
    "invalid_utf8",
    "schema_violation",
    "empty_text",
    "too_large",
    "scoring_failed",
    "processing_failed",
    "explain_failed",
    "output_too_large",
    "rejected_by_broker",
    # `wirewatch notify`: the webhook refused the notice or failed every retry.
    "webhook_failed",
]
ERROR_HEADER = "wirewatch-error"
DETAIL_HEADER = "wirewatch-error-detail"
TOPIC_HEADER = "wirewatch-source-topic"
PARTITION_HEADER = "wirewatch-source-partition"
OFFSET_HEADER = "wirewatch-source-offset"
# Set when the dead letter carries only the start of the input's value: its full size in bytes.
ORIGINAL_SIZE_HEADER = "wirewatch-original-size"
# `wirewatch notify`'s dead letters: the webhook's scheme and host (never its path: a credential).
WEBHOOK_HEADER = "wirewatch-webhook"


# An http(s) URL with a host and no whitespace or control character anywhere: browsers drop tabs
# and newlines inside a URL ("java\tscript:") and strip leading spaces, so nothing that could turn
# into another scheme on a page passes.
HTTP_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s\x00-\x1f\x7f]+[^\s\x00-\x1f\x7f]*$"
_HTTP_URL = re.compile(HTTP_URL_PATTERN)


def http_url_or_none(value: object) -> str | None:
    """The value when it is an http(s) URL with a host (HTTP_URL_PATTERN), else None.

    An article's url is whatever its feed wrote; scores, alerts and incidents are read by pages
    and chat tools that make it a link, so there any other value (``javascript:``, ``data:``, a
    relative path) is dropped rather than refused: the alert still goes out, without a link.
    """
    if not isinstance(value, str) or not _HTTP_URL.fullmatch(value):
        return None
    try:
        host = urlsplit(value).hostname  # "https://@" or "https://:80" name no host
    except ValueError:  # an unbalanced IPv6 bracket
        return None
    return value if host else None


# Published only when http(s), and dropped to null when read otherwise (see http_url_or_none).
WebUrl = Annotated[
    str | None,
    BeforeValidator(http_url_or_none),
    Field(
        description="The article's http(s) URL; null when the article had none or another kind",
        json_schema_extra={"pattern": HTTP_URL_PATTERN},
    ),
]


class ArticleIn(BaseModel):
    """An article on the input topic. Unknown fields are allowed and ignored."""

    model_config = ConfigDict(extra="allow", title="Article")

    id: StrictStr = Field(
        min_length=1, max_length=MAX_ID_LENGTH, description="Unique article id; the key of every output"
    )
    text: StrictStr = Field(description="Body text; must not be empty")
    title: StrictStr | None = None
    source: StrictStr | None = Field(None, description="Publisher or feed the article came from")
    url: StrictStr | None = Field(
        None, description="Kept as data; only an http(s) URL is carried into the alert (see the alert's url)"
    )
    published_at: StrictStr | None = Field(None, description="ISO 8601 date-time")
    lang: StrictStr | None = None

    @field_validator("published_at")
    @classmethod
    def _iso_8601(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError("must be an ISO 8601 date-time, e.g. 2004-09-17T14:03:00Z") from None
        return value


class ModelRef(BaseModel):
    """The bundle that produced a score; digest tells apart two bundles with one name and version."""

    name: str
    version: str
    digest: str | None = Field(None, description="The first 12 hex digits of the sha256 of its manifest.json")


class SourceRef(BaseModel):
    """Where the scored input sits in Kafka."""

    topic: str
    partition: int
    offset: int


class Score(BaseModel):
    """One per valid input article, on the scores topic, keyed by the article id."""

    model_config = ConfigDict(title="Score")

    id: str
    score: float = Field(ge=0.0, le=1.0, description="The bundle's calibrated probability of an anomaly")
    is_alert: bool
    threshold: float
    model: ModelRef
    scored_at: datetime
    source: SourceRef
    lang: str | None = Field(
        None,
        description="The article's language as its producer tagged it (null: untagged); a score of a language "
        "the bundle was not trained on is counted in wirewatch_articles_unsupported_language",
    )


class Contribution(BaseModel):
    """A sentence of the article, how much the score drops without it, and its score alone."""

    sentence: str
    contribution: float = Field(description="Score of the article minus its score without this sentence")
    alone: float = Field(description="Score of this sentence by itself")


class Alert(Score):
    """One per article scored at or above the threshold, on the alerts topic.

    ``source`` is the Kafka position, as in every score; the input's own ``source`` (the
    publisher) is carried as ``publisher``.
    """

    model_config = ConfigDict(title="Alert")

    title: str | None
    snippet: str = Field(description="The start of the cleaned text, in its own case")
    publisher: str | None
    url: WebUrl
    published_at: str | None
    explanation: list[Contribution] | None = Field(
        None, description="The sentences that drove the score, ranked by contribution plus score alone"
    )


class IncidentBest(BaseModel):
    """The incident's highest-scored report, with its explanation."""

    alert_id: str
    score: float
    title: str | None
    publisher: str | None
    url: WebUrl
    explanation: list[Contribution] | None


class Incident(BaseModel):
    """The current state of one incident, on the compacted incidents topic, keyed by its id.

    Published by `wirewatch incidents` each time a report joins it, and once more when it closes.
    """

    model_config = ConfigDict(title="Incident")

    id: str = Field(description="inc-<16 hex digits>, derived from the id of its first report")
    status: Literal["open", "closed"] = Field(
        description="closed once no report has joined it for the grouping window (event time)"
    )
    first_seen: datetime = Field(
        description="Event time of its earliest report (published_at, else scored_at)"
    )
    last_seen: datetime = Field(description="Event time of its latest report")
    reports: int = Field(ge=1, description="Alerts grouped into it")
    outlets: list[str] = Field(description="Distinct publishers of its reports, sorted")
    title: str | None = Field(
        description="Title of its most central report: as each report joins, it takes over when closer to the centroid"
    )
    best: IncidentBest
    alert_ids: list[str] = Field(description="Ids of its latest reports, oldest first (at most 100)")
    updated_at: datetime


class IncidentAlert(Alert):
    """An alert with the incident it was grouped into, on the incident-alerts topic, keyed by incident id."""

    model_config = ConfigDict(title="IncidentAlert")

    incident_id: str
    similarity: float | None = Field(
        description="Cosine similarity to the incident it joined; null for the report that opened it"
    )


SCHEMAS: dict[str, type[BaseModel]] = {
    "article": ArticleIn,
    "score": Score,
    "alert": Alert,
    "incident": Incident,
    "incident_alert": IncidentAlert,
}


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMAS.items():
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(path)
