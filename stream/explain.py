"""Why an article was flagged: sentence occlusion through the same ONNX session.

For each sentence: its contribution, how much the score drops when it is left out, and its score
alone. Leave-one-out alone says little when a report repeats itself (no single sentence is then
needed), so sentences are ranked by the sum of both, the comprehensiveness and sufficiency of
rationale evaluation. With chunk_max the score is the best window's, so only the sentences
overlapping that window are occluded: the cost is one batch of the article's windows plus two
short windows per sentence, paid for alerts only. Sentences are reported as the article has them
(its own casing and punctuation, whitespace collapsed), not in their cleaned form.
"""

import re

import numpy as np

from stream.encoding import Encoded
from stream.schemas import Contribution
from stream.scorer import Scorer
from stream.text import clean

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SPACES = re.compile(r"\s+")
TOP = 3


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


class Explainer:
    def __init__(self, scorer: Scorer, top: int = TOP) -> None:
        self.scorer = scorer
        self.encoder = scorer.encoder
        self.top = top

    def best_window(self, cleaned: str) -> tuple[int, int]:
        """Character span of the window the article's score comes from."""
        text = cleaned[: self.encoder.windowing.char_cap]
        encoding = self.encoder.tokenizer.encode(text, add_special_tokens=False)
        spans = self.encoder.spans(len(encoding.ids))
        if len(spans) == 1:
            return 0, len(text)
        windows = self.encoder.windows_of(encoding.ids)
        scores = self.scorer.window_scores(Encoded(windows, np.zeros(len(windows), dtype=np.int64), 1))
        start, stop = spans[int(np.argmax(scores))]
        return encoding.offsets[start][0], encoding.offsets[stop - 1][1]

    def __call__(self, title: str | None, text: str, cleaned: str) -> list[Contribution]:
        """The top sentences of the article (title included) by how much the score needs them."""
        low, high = self.best_window(cleaned)
        raw = ([title] if title else []) + sentences(text)
        inside = [(s, a, b) for s, a, b in _locate(cleaned, raw) if a < high and b > low]
        if not inside:
            return []
        window = cleaned[low:high]
        without = [
            _SPACES.sub(" ", cleaned[low : max(low, a)] + " " + cleaned[min(high, b) : high]).strip()
            for _, a, b in inside
        ]
        alone = [cleaned[max(low, a) : min(high, b)] for _, a, b in inside]
        scores = self.scorer.score([window, *without, *alone]).scores
        n = len(inside)
        drops = float(scores[0]) - scores[1 : n + 1]
        solo = scores[n + 1 :]
        order = np.argsort(-(drops + solo), kind="stable")[: self.top]
        return [
            Contribution(
                sentence=inside[i][0], contribution=round(float(drops[i]), 4), alone=round(float(solo[i]), 4)
            )
            for i in order
        ]
