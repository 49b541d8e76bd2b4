"""The scoring stage over one micro-batch: validate, score, and build every output.

Kafka-free: it takes Incoming records and returns Outputs, so it runs in a worker thread while
the service keeps polling, and tests drive it without a broker.
"""

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stream.bundle import load_bundle
from stream.errors import ScoringError
from stream.explain import Explainer
from stream.records import Headers, Incoming, Output
from stream.schemas import (
    DETAIL_HEADER,
    ERROR_HEADER,
    OFFSET_HEADER,
    PARTITION_HEADER,
    TOPIC_HEADER,
    Alert,
    Contribution,
    ModelRef,
    Score,
    SourceRef,
)
from stream.scorer import Scorer
from stream.settings import ServeSettings
from stream.validate import Rejected, Valid, parse

SNIPPET_CHARS = 280
ExplainFn = Callable[[str | None, str, str], list[Contribution]]


@dataclass
class BatchResult:
    outputs: list[Output] = field(default_factory=list)
    scored: int = 0
    alerts: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    windows: int = 0
    tokens: int = 0
    inference_s: float = 0.0
    explain_s: float = 0.0


def _snippet(text: str) -> str:
    if len(text) <= SNIPPET_CHARS:
        return text
    cut = text.rfind(" ", 0, SNIPPET_CHARS)
    return text[: cut if cut > SNIPPET_CHARS // 2 else SNIPPET_CHARS] + "…"


class BatchProcessor:
    def __init__(
        self,
        scorer: Scorer,
        settings: ServeSettings,
        explainer: ExplainFn | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        manifest = scorer.bundle.manifest
        self.scorer = scorer
        self.settings = settings
        self.explainer = explainer
        self.model = ModelRef(name=manifest.name, version=manifest.version)
        self.threshold = manifest.threshold
        self._now = now

    def process(self, batch: list[Incoming]) -> BatchResult:
        result = BatchResult()
        outcomes = [parse(m.value, self.settings.max_message_bytes) for m in batch]
        valid = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, Valid)]
        values: dict[int, float] = {}
        for (i, _), score in zip(valid, self._score([v for _, v in valid], result), strict=True):
            if isinstance(score, Rejected):
                outcomes[i] = score
            else:
                values[i] = score
        for i, (message, outcome) in enumerate(zip(batch, outcomes, strict=True)):
            if isinstance(outcome, Rejected):
                result.outputs.append(self._dead_letter(message, outcome))
                result.dead_letters[outcome.reason] += 1
            else:
                self._scored(message, outcome, values[i], result)
        return result

    def _score(self, valid: list[Valid], result: BatchResult) -> list[float | Rejected]:
        started = time.perf_counter()
        try:
            scores = self.scorer.score([v.text for v in valid])
            out: list[float | Rejected] = [float(s) for s in scores.scores]
            result.windows, result.tokens = scores.windows, scores.tokens
        except ScoringError:
            # One bad article must not sink the batch: retry one by one, dead-letter the failures.
            out = []
            for v in valid:
                try:
                    out.append(float(self.scorer.score([v.text]).scores[0]))
                except ScoringError as exc:
                    out.append(Rejected("scoring_failed", str(exc)))
        result.inference_s = time.perf_counter() - started
        return out

    def _scored(self, message: Incoming, valid: Valid, value: float, result: BatchResult) -> None:
        article = valid.article
        score = Score(
            id=article.id,
            score=min(max(value, 0.0), 1.0),
            is_alert=value >= self.threshold,
            threshold=self.threshold,
            model=self.model,
            scored_at=self._now(),
            source=SourceRef(topic=message.topic, partition=message.partition, offset=message.offset),
        )
        key = article.id.encode()
        result.scored += 1
        result.outputs.append(
            Output(
                self.settings.scores_topic, key, score.model_dump_json().encode(), message.headers, message
            )
        )
        if not score.is_alert:
            return
        explanation = None
        if self.explainer is not None:
            started = time.perf_counter()
            explanation = self.explainer(article.title, article.text, valid.text)
            result.explain_s += time.perf_counter() - started
        alert = Alert(
            **score.model_dump(),
            title=article.title,
            snippet=_snippet(valid.body),
            publisher=article.source,
            url=article.url,
            published_at=article.published_at,
            explanation=explanation,
        )
        result.alerts += 1
        result.outputs.append(
            Output(
                self.settings.alerts_topic, key, alert.model_dump_json().encode(), message.headers, message
            )
        )

    def _dead_letter(self, message: Incoming, rejected: Rejected) -> Output:
        headers: Headers = [
            *message.headers,
            (ERROR_HEADER, rejected.reason.encode()),
            (DETAIL_HEADER, rejected.detail[:1000].encode()),
            (TOPIC_HEADER, message.topic.encode()),
            (PARTITION_HEADER, str(message.partition).encode()),
            (OFFSET_HEADER, str(message.offset).encode()),
        ]
        return Output(self.settings.dlq_topic, message.key, message.value or b"", headers, message)


def processor_for(settings: ServeSettings) -> BatchProcessor:
    """The scoring stage as the settings ask for it: bundle, ONNX Runtime sessions, explanations."""
    scorer = Scorer(
        load_bundle(settings.bundle),
        providers=settings.providers,
        intra_op_threads=settings.intra_op_threads,
        sessions=settings.sessions,
        batch_size=settings.inference_batch_size,
    )
    return BatchProcessor(scorer, settings, Explainer(scorer) if settings.explain else None)
