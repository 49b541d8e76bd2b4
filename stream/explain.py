"""Why an article was flagged: leave-one-sentence-out occlusion through the same ONNX session.

A sentence's contribution is how much the score drops when it is left out. With chunk_max the
score is the best window's, so only the sentences overlapping that window are occluded, in that
window: the cost is one batch of the article's windows plus one window per sentence, paid for
alerts only. Sentences are reported as the article has them (its own casing and punctuation,
whitespace collapsed), not in their cleaned form.
"""

import re

import numpy as np

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
        batch = self.encoder.pad(windows, np.arange(len(windows)))
        start, stop = spans[int(np.argmax(self.scorer.score_windows(batch.input_ids, batch.attention_mask)))]
        return encoding.offsets[start][0], encoding.offsets[stop - 1][1]

    def __call__(self, title: str | None, text: str, cleaned: str) -> list[Contribution]:
        """The top sentences of the article (title included) by how much the score needs them."""
        low, high = self.best_window(cleaned)
        raw = ([title] if title else []) + sentences(text)
        inside = [(s, a, b) for s, a, b in _locate(cleaned, raw) if a < high and b > low]
        if not inside:
            return []
        window = cleaned[low:high]
        variants = [
            _SPACES.sub(" ", cleaned[low : max(low, a)] + " " + cleaned[min(high, b) : high]).strip()
            for _, a, b in inside
        ]
        base, *without = self.scorer.score([window, *variants]).scores
        drops = float(base) - np.asarray(without)
        order = np.argsort(-drops, kind="stable")[: self.top]
        return [Contribution(sentence=inside[i][0], contribution=round(float(drops[i]), 4)) for i in order]
