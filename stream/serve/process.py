"""The scoring stage over one micro-batch: validate, score, and build every output.

Kafka-free: it takes Incoming records and returns Outputs, so it runs in a worker thread while
the service keeps polling, and tests drive it with a fake scorer.

Failure policy. A problem with one message is that message's: it ends as a dead letter with
the reason, and the batch goes on (bad input, a model error or a non-finite score on one
article, an explainer error, a bug while building its outputs). A problem with the model is
everyone's: when the batch fails and a text the model is known to score (the canary's, or a
smoke text) fails too, or when ``max_consecutive_failures`` articles in a row fail, the batch
raises SystemicError instead, so the service stops without publishing or committing it and a
restart (or a rollback of the bundle) loses nothing.
"""

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from stream.errors import SystemicError
from stream.kafka.deadletter import dead_letter
from stream.kafka.records import Incoming, Output
from stream.schemas import Alert, Contribution, ModelRef, Score, SourceRef
from stream.scoring import canary
from stream.scoring.bundle import Bundle, load_bundle
from stream.scoring.drift import ScoreDistribution
from stream.scoring.explain import Alerted, Explainer
from stream.scoring.scorer import Scorer, Scores
from stream.scoring.text import clean
from stream.scoring.validate import Rejected, Valid, parse
from stream.serve.settings import ServeSettings

SNIPPET_CHARS = 280
# An alert carries at most this much of one sentence: a report without full stops is one sentence.
MAX_SENTENCE_CHARS = 1000
ExplainFn = Callable[[str | None, str, str], list[Contribution]]


class TextScorer(Protocol):
    def score(self, texts: Sequence[str]) -> Scores: ...


@dataclass
class BatchResult:
    outputs: list[Output] = field(default_factory=list)
    model: ModelRef | None = None
    scored: int = 0
    alerts: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    windows: int = 0
    tokens: int = 0
    inference_s: float = 0.0
    explain_s: float = 0.0
    shadow_agree: int = 0
    shadow_disagree: int = 0
    shadow_diffs: list[float] = field(default_factory=list)
    shadow_failed: int = 0
    scores: list[float] = field(default_factory=list)  # of the articles scored, for drift
    # Articles scored whose lang the bundle was not trained on, by that lang.
    unsupported_langs: Counter[str] = field(default_factory=Counter)


def _snippet(text: str) -> str:
    if len(text) <= SNIPPET_CHARS:
        return text
    cut = text.rfind(" ", 0, SNIPPET_CHARS)
    return text[: cut if cut > SNIPPET_CHARS // 2 else SNIPPET_CHARS] + "…"


def _capped(parts: list[Contribution]) -> list[Contribution]:
    return [
        p.model_copy(update={"sentence": p.sentence[:MAX_SENTENCE_CHARS]})
        if len(p.sentence) > MAX_SENTENCE_CHARS
        else p
        for p in parts
    ]


def _explain_one(
    explain: Callable[[Alerted], list[Contribution]], alert: Alerted
) -> list[Contribution] | Rejected:
    try:
        return explain(alert)
    except Exception as exc:
        return Rejected("explain_failed", _describe(exc))


def base_lang(value: str | None) -> str | None:
    """'en-GB' and 'EN' are 'en', the part a bundle's languages are compared on; None when untagged.

    The input's lang is whatever its producer wrote: anything that is no language code is
    'other', so that a metric labelled by it stays small.
    """
    if not value or not value.strip():
        return None
    code = value.strip().lower().replace("_", "-").split("-")[0]
    return code if 2 <= len(code) <= 3 and code.isascii() and code.isalpha() else "other"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


class BatchProcessor:
    """One bundle's scoring stage. Not shared between threads: the service has one worker."""

    def __init__(
        self,
        scorer: TextScorer,
        settings: ServeSettings,
        model: ModelRef,
        threshold: float,
        *,
        explainer: Explainer | ExplainFn | None = None,
        probe: str = canary.SMOKE_TEXTS[0],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        reference: ScoreDistribution | None = None,
        languages: Sequence[str] | None = None,
    ) -> None:
        # A bundle that names no languages was trained on English news.
        self.languages = frozenset(base_lang(x) for x in (languages or ["en"]))
        self.reference = reference  # the bundle's validation score distribution, for drift
        self.scorer = scorer
        self.settings = settings
        self.model = model
        self.threshold = threshold
        self.explainer = explainer
        self.probe = probe
        self._now = now
        self._failures_in_a_row = 0

    @property
    def label(self) -> str:
        return f"{self.model.name}@{self.model.version}"

    def process(self, batch: list[Incoming], shadow: "BatchProcessor | None" = None) -> BatchResult:
        result = BatchResult(model=self.model)
        outcomes = [self._parse(m) for m in batch]
        valid = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, Valid)]
        values, best = self._score([v.text for _, v in valid], result)
        scored: list[tuple[Incoming, Valid, float]] = []
        windows: list[int | None] = []
        for (i, item), value, window in zip(valid, values, best, strict=True):
            if isinstance(value, Rejected):
                outcomes[i] = value
            else:
                scored.append((batch[i], item, value))
                windows.append(window)
        explained = self._explain_alerts(scored, windows, result)
        for message, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Rejected):
                self._reject(message, outcome, result)
        for message, item, value in scored:
            explanation = explained[id(message)]
            try:
                outputs = self._outputs(message, item, value, explanation)
            except Exception as exc:  # a bug on one article must not sink the stream
                self._failed(message, Rejected("processing_failed", _describe(exc)), result)
                continue
            result.outputs.extend(outputs)
            result.scored += 1
            result.scores.append(value)
            result.alerts += int(value >= self.threshold)
            lang = base_lang(item.article.lang)
            if lang and lang not in self.languages:
                result.unsupported_langs[lang] += 1
            if isinstance(explanation, Rejected):
                result.dead_letters[explanation.reason] += 1
        if shadow is not None:
            shadow.compare(scored, self.threshold, result)
        return result

    def _parse(self, message: Incoming) -> Valid | Rejected:
        try:
            return parse(message.value, self.settings.max_message_bytes)
        except Exception as exc:  # parse is total by design; this is the net under it
            return Rejected("processing_failed", _describe(exc))

    # Scoring and the systemic check -------------------------------------------------------

    def _score(
        self, texts: list[str], result: BatchResult
    ) -> tuple[list[float | Rejected], list[int | None]]:
        started = time.perf_counter()
        best: list[int | None] = [None] * len(texts)
        try:
            scores = self.scorer.score(texts)
            out = [self._checked(float(s)) for s in scores.scores]
            result.windows, result.tokens = scores.windows, scores.tokens
            if scores.best is not None:
                best = [int(b) for b in scores.best]
        except Exception:
            # One bad article must not sink the batch: retry one by one, dead-letter the failures.
            out = [self._one(text) for text in texts]
        result.inference_s = time.perf_counter() - started
        if texts and all(isinstance(v, Rejected) for v in out):
            self._probe(out)
        for value in out:
            if isinstance(value, Rejected):
                self._failures_in_a_row += 1
                if self._failures_in_a_row >= self.settings.max_consecutive_failures:
                    raise SystemicError(
                        f"{self._failures_in_a_row} articles in a row failed to score with {self.label} "
                        f"(last: {value.detail}); stopped without committing them"
                    )
            else:
                self._failures_in_a_row = 0
        return out, best

    def _one(self, text: str) -> float | Rejected:
        try:
            return self._checked(float(self.scorer.score([text]).scores[0]))
        except Exception as exc:
            return Rejected("scoring_failed", _describe(exc))

    @staticmethod
    def _checked(value: float) -> float | Rejected:
        if math.isfinite(value) and 0.0 <= value <= 1.0:
            return value
        return Rejected("scoring_failed", f"the model returned {value!r}, not a probability")

    def _probe(self, failures: list[float | Rejected]) -> None:
        """Every article failed: is it them or the model? A text it is known to score decides."""
        value = self._one(self.probe)
        if isinstance(value, Rejected):
            first = next(v.detail for v in failures if isinstance(v, Rejected))
            raise SystemicError(
                f"the model {self.label} fails on a text it is known to score ({value.detail}; the "
                f"batch failed with: {first}); stopped without committing the batch"
            )

    # Outputs ------------------------------------------------------------------------------

    def _explain_alerts(
        self, scored: list[tuple[Incoming, Valid, float]], windows: list[int | None], result: BatchResult
    ) -> dict[int, list[Contribution] | Rejected | None]:
        """Explanations of the batch's alerts, by id of their message; all in one call when it can."""
        explained: dict[int, list[Contribution] | Rejected | None] = {id(m): None for m, _, _ in scored}
        todo = [
            (m, Alerted(v.article.title, v.article.text, v.text, window, value))
            for (m, v, value), window in zip(scored, windows, strict=True)
            if value >= self.threshold
        ]
        if self.explainer is None or not todo:
            return explained
        started = time.perf_counter()
        explainer = self.explainer
        alerted = [a for _, a in todo]
        parts: list[list[Contribution] | Rejected]
        if isinstance(explainer, Explainer):
            try:
                parts = list(explainer.explain_batch(alerted))
            except Exception:
                # One bad article must not cost the others their explanations: one by one.
                parts = [_explain_one(lambda a: explainer.explain_batch([a])[0], a) for a in alerted]
        else:
            function = explainer
            parts = [_explain_one(lambda a: function(a.title, a.text, a.cleaned), a) for a in alerted]
        for (message, _), part in zip(todo, parts, strict=True):
            explained[id(message)] = part if isinstance(part, Rejected) else _capped(part)
        result.explain_s += time.perf_counter() - started
        return explained

    def _outputs(
        self, message: Incoming, item: Valid, value: float, explained: list[Contribution] | Rejected | None
    ) -> list[Output]:
        article, s = item.article, self.settings
        score = Score(
            id=article.id,
            score=value,
            is_alert=value >= self.threshold,
            threshold=self.threshold,
            model=self.model,
            scored_at=self._now(),
            source=SourceRef(topic=message.topic, partition=message.partition, offset=message.offset),
            lang=article.lang,
        )
        key = article.id.encode()
        outputs = [Output(s.scores_topic, key, score.model_dump_json().encode(), message.headers, message)]
        if not score.is_alert:
            return outputs
        alert = Alert(
            **score.model_dump(),
            title=article.title,
            snippet=_snippet(clean(article.text, lower=False)),
            publisher=article.source,
            url=article.url,
            published_at=article.published_at,
            explanation=None if isinstance(explained, Rejected) else explained,
        )
        body = alert.model_dump_json().encode()
        outputs.append(Output(s.alerts_topic, key, body, message.headers, message, "alert"))
        if isinstance(explained, Rejected):
            # The alert goes out unexplained; the dead letter records why, for a replay later.
            outputs.append(dead_letter(message, explained.reason, explained.detail, s.dlq_topic))
        return outputs

    def _reject(self, message: Incoming, rejected: Rejected, result: BatchResult) -> None:
        result.outputs.append(dead_letter(message, rejected.reason, rejected.detail, self.settings.dlq_topic))
        result.dead_letters[rejected.reason] += 1

    def _failed(self, message: Incoming, rejected: Rejected, result: BatchResult) -> None:
        self._reject(message, rejected, result)
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= self.settings.max_consecutive_failures:
            raise SystemicError(
                f"{self._failures_in_a_row} articles in a row failed with {self.label} (last: "
                f"{rejected.detail}); stopped without committing them"
            )

    # Shadow scoring -----------------------------------------------------------------------

    def compare(
        self, scored: list[tuple[Incoming, Valid, float]], primary_threshold: float, result: BatchResult
    ) -> None:
        """As the shadow: score what the primary scored, publish to the shadow topic, count agreement.

        Nothing here may hurt the primary: a failure costs the shadow scores of this batch only.
        """
        if not scored:
            return
        try:
            values = self.scorer.score([item.text for _, item, _ in scored]).scores.tolist()
        except Exception:
            result.shadow_failed += len(scored)
            return
        now = self._now()
        for (message, item, primary), raw in zip(scored, values, strict=True):
            value = self._checked(float(raw))
            if isinstance(value, Rejected):
                result.shadow_failed += 1
                continue
            shadow = Score(
                id=item.article.id,
                score=value,
                is_alert=value >= self.threshold,
                threshold=self.threshold,
                model=self.model,
                scored_at=now,
                source=SourceRef(topic=message.topic, partition=message.partition, offset=message.offset),
            )
            body, key = shadow.model_dump_json().encode(), item.article.id.encode()
            result.outputs.append(
                Output(self.settings.shadow_topic, key, body, message.headers, message, "shadow")
            )
            agree = (primary >= primary_threshold) == shadow.is_alert
            result.shadow_agree += int(agree)
            result.shadow_disagree += int(not agree)
            result.shadow_diffs.append(abs(value - primary))


def model_ref(bundle: Bundle) -> ModelRef:
    return ModelRef(name=bundle.manifest.name, version=bundle.manifest.version, digest=bundle.digest)


def _scores_of(scorer: Scorer) -> Callable[[Sequence[str]], npt.NDArray[np.float32]]:
    return lambda texts: scorer.score(texts).scores


def load_processor(
    settings: ServeSettings, path: Path, *, explain: bool = True
) -> tuple[BatchProcessor, canary.GateResult]:
    """The validation gate: load and verify the bundle, open the model, check the canary set.

    Raises BundleError (or ConfigError) on any failure; used at startup and for every reload.
    """
    bundle = load_bundle(path)
    scorer = Scorer(
        bundle,
        providers=settings.providers,
        intra_op_threads=settings.intra_op_threads,
        sessions=settings.sessions,
        batch_size=settings.inference_batch_size,
        token_budget=settings.inference_tokens,
    )
    gate = canary.check(bundle, _scores_of(scorer))
    processor = BatchProcessor(
        scorer,
        settings,
        model_ref(bundle),
        bundle.manifest.threshold,
        explainer=Explainer(scorer) if explain and settings.explain else None,
        probe=gate.probe,
        reference=bundle.manifest.score_distribution,
        languages=bundle.manifest.languages,
    )
    return processor, gate


def processor_for(settings: ServeSettings) -> BatchProcessor:
    """The scoring stage as the settings ask for it (used by the benchmark's in-process ceiling)."""
    return load_processor(settings, settings.bundle)[0]
