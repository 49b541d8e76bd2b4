"""Why an article was flagged: sentence occlusion through the same ONNX session.

For each sentence: its contribution, how much the score drops when it is left out, and its score
alone. Leave-one-out alone says little when a report repeats itself (no single sentence is then
needed), so sentences are ranked by the sum of both, the comprehensiveness and sufficiency of
rationale evaluation. With chunk_max the score is the best window's, so only the sentences
overlapping that window are occluded. Sentences are reported as the article has them (its own
casing and punctuation, whitespace collapsed), not in their cleaned form.

Cost. The scorer says which window each score came from, so nothing is scored twice to find
it, and with chunk_max the article's score is that window's, so the window itself is not scored
again. The alerts of a batch are explained together, in one scoring call whatever their number
(each sentence alone, each window without one sentence), so the calls are as full as the scorer
makes them. Identical texts are scored once: wire copies of one story, and in a window of two
sentences each one alone and the window without the other (texts are compared with their
whitespace collapsed, which the tokenizer ignores anyway). The
occluded windows are nearly as long as the window itself and make most of the cost, so in a
window of more than ``occlude`` sentences (OCCLUDE by default) only those that score best alone
are occluded, in a second call (an approximation: a sentence that matters only in context can
then be missed; measured below).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream.schemas import Contribution
from stream.scoring.encoding import Encoded
from stream.scoring.scorer import Scorer
from stream.scoring.text import clean

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SPACES = re.compile(r"\s+")
TOP = 3
# Sentences occluded per alert at most: those that score best alone (0: every sentence). Measured
# on the 294 alerts of the bench feed (`terrorism-v1`, batches of 8, runs/s16/occlude.py): 4 took
# 8.9 s against 14.6 s for every sentence, with the same top sentence for every alert and the same
# top 3 for 98% of them (3: 8.4 s, 96.6%). Long reports make most of the cost: their windows
# without one sentence are nearly full windows.
OCCLUDE = TOP + 1


def _collapsed(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _locate(cleaned: str, raw: list[str]) -> list[tuple[str, int, int]]:
    """(raw sentence, start, stop) in the cleaned text, for the sentences found there in order."""
    found, cursor = [], 0
    for sentence in raw:
        needle = clean(sentence)
        at = cleaned.find(needle, cursor) if needle else -1
        if at >= 0:
            found.append((_SPACES.sub(" ", sentence).strip(), at, at + len(needle)))
            cursor = at + len(needle)
    return found


@dataclass(frozen=True)
class Alerted:
    """An alert to explain: the article as it came, its cleaned text, and its best window."""

    title: str | None
    text: str
    cleaned: str
    best_window: int | None = None  # which window the score came from; None: find it
    score: float | None = None  # the article's score; with chunk_max, its best window's


@dataclass
class _Work:
    inside: list[tuple[str, int, int]]
    window: str
    without: list[str]
    alone: list[str]
    base: float = 0.0
    solo: npt.NDArray[np.float32] | None = None
    drops: npt.NDArray[np.float32] | None = None


class _Texts:
    """Texts to score in one call, each distinct text once, none whose score is known."""

    def __init__(self, known: dict[str, float] | None = None) -> None:
        self.index: dict[str, int] = {}
        self.known: dict[str, float] = dict(known or {})

    def add(self, text: str) -> int:
        return self.index.setdefault(text, len(self.index))

    def know(self, text: str, score: float) -> int:
        self.known.setdefault(text, score)
        return self.add(text)

    def score(self, scorer: Scorer) -> tuple[npt.NDArray[np.float32], int]:
        """Every added text's score, and how many texts went to the model."""
        values = np.zeros(len(self.index), dtype=np.float32)
        todo = [t for t in self.index if t not in self.known]
        if todo:
            values[[self.index[t] for t in todo]] = scorer.score(todo).scores
        for text, i in self.index.items():
            if text in self.known:
                values[i] = self.known[text]
        return values, len(todo)


class Explainer:
    def __init__(self, scorer: Scorer, top: int = TOP, occlude: int = OCCLUDE) -> None:
        self.scorer = scorer
        self.encoder = scorer.encoder
        self.top = top
        self.occlude = occlude
        self.texts_scored = 0  # distinct texts sent to the model, for the benchmark
        # Only then is an article's score the score of the window its explanation occludes.
        self.window_is_score = scorer.bundle.manifest.long_text.strategy == "chunk_max"

    def best_window(self, cleaned: str, index: int | None = None) -> tuple[int, int]:
        """Character span of the window the article's score comes from (index: that window)."""
        text = cleaned[: self.encoder.windowing.char_cap]
        encoding = self.encoder.tokenizer.encode(text, add_special_tokens=False)
        spans = self.encoder.spans(len(encoding.ids))
        if len(spans) == 1:
            return 0, len(text)
        if index is None:
            windows = self.encoder.windows_of(encoding.ids)
            scores = self.scorer.window_scores(Encoded(windows, np.zeros(len(windows), dtype=np.int64), 1))
            index = int(np.argmax(scores))
        start, stop = spans[min(index, len(spans) - 1)]
        return encoding.offsets[start][0], encoding.offsets[stop - 1][1]

    def __call__(self, title: str | None, text: str, cleaned: str) -> list[Contribution]:
        """The top sentences of one article (title included) by how much the score needs them."""
        return self.explain_batch([Alerted(title, text, cleaned)])[0]

    def explain_batch(self, alerts: Sequence[Alerted]) -> list[list[Contribution]]:
        """Explanations of many alerts, in one scoring call (two when a window has more than
        ``occlude`` sentences: its occlusions wait for the scores alone)."""
        work = [self._prepare(a) for a in alerts]
        first = _Texts()
        bases = [self._base(first, w, a) for w, a in zip(work, alerts, strict=True)]
        alone = [[first.add(t) for t in w.alone] for w in work]
        # Windows of few sentences have every one occluded in the first call.
        whole = [not self.occlude or len(w.inside) <= self.occlude for w in work]
        without = [
            [first.add(t) for t in w.without] if all_ else [] for w, all_ in zip(work, whole, strict=True)
        ]
        scores, scored = first.score(self.scorer)
        self.texts_scored += scored
        for w, base, solo in zip(work, bases, alone, strict=True):
            if w.inside:
                w.base, w.solo = float(scores[base]), scores[solo]
        asked = [
            list(range(len(w.inside))) if all_ else self._candidates(w)
            for w, all_ in zip(work, whole, strict=True)
        ]
        # Second call: occlusions of the sentences that score best alone; texts of the first are known.
        second = _Texts(known={text: float(scores[i]) for text, i in first.index.items()})
        later = [
            [] if all_ else [second.add(w.without[i]) for i in keep]
            for w, keep, all_ in zip(work, asked, whole, strict=True)
        ]
        scores2, scored2 = second.score(self.scorer)
        self.texts_scored += scored2
        return [
            self._rank(w, keep, scores[refs] if all_ else scores2[refs2])
            for w, keep, refs, refs2, all_ in zip(work, asked, without, later, whole, strict=True)
        ]

    def _base(self, texts: _Texts, w: _Work, alert: Alerted) -> int:
        if not w.inside:
            return 0
        if self.window_is_score and alert.score is not None:
            return texts.know(w.window, alert.score)
        return texts.add(w.window)

    def _prepare(self, alert: Alerted) -> _Work:
        cleaned = alert.cleaned
        low, high = self.best_window(cleaned, alert.best_window)
        raw = ([alert.title] if alert.title else []) + sentences(alert.text)
        inside = [(s, a, b) for s, a, b in _locate(cleaned, raw) if a < high and b > low]
        without = [
            _collapsed(cleaned[low : max(low, a)] + " " + cleaned[min(high, b) : high]) for _, a, b in inside
        ]
        alone = [_collapsed(cleaned[max(low, a) : min(high, b)]) for _, a, b in inside]
        return _Work(inside, _collapsed(cleaned[low:high]), without, alone)

    def _candidates(self, w: _Work) -> list[int]:
        """The `occlude` sentences that score best alone."""
        if not w.inside or w.solo is None:
            return []
        return sorted(np.argsort(-w.solo, kind="stable")[: self.occlude].tolist())

    def _rank(self, w: _Work, keep: list[int], without: npt.NDArray[np.float32]) -> list[Contribution]:
        if not w.inside or w.solo is None:
            return []
        drops = np.full(len(w.inside), -np.inf, dtype=np.float64)
        drops[keep] = w.base - without.astype(np.float64)
        rank = drops + w.solo
        order = [i for i in np.argsort(-rank, kind="stable")[: self.top] if np.isfinite(rank[i])]
        return [
            Contribution(
                sentence=w.inside[i][0],
                contribution=round(float(drops[i]), 4),
                alone=round(float(w.solo[i]), 4),
            )
            for i in order
        ]
