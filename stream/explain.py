"""Why an article was flagged: leave-one-sentence-out occlusion through the same ONNX session.

A sentence's contribution is how much the score drops when the article is scored without it.
Model-agnostic and exact for what the scorer computes, and only paid for alerts, which are rare.
"""

import re

import numpy as np

from stream.schemas import Contribution
from stream.scorer import Scorer

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
TOP = 3
# An alert with more sentences is explained by its first MAX_SENTENCES: a news report leads
# with its event, and the cost grows with sentences times windows.
MAX_SENTENCES = 32


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


class Explainer:
    def __init__(self, scorer: Scorer, top: int = TOP, max_sentences: int = MAX_SENTENCES) -> None:
        self.scorer = scorer
        self.top = top
        self.max_sentences = max_sentences

    def __call__(self, text: str, score: float) -> list[Contribution]:
        parts = sentences(text)
        if len(parts) <= 1:
            return [Contribution(sentence=text, contribution=round(score, 4))]
        candidates = range(min(len(parts), self.max_sentences))
        variants = [" ".join(p for j, p in enumerate(parts) if j != i) for i in candidates]
        without = self.scorer.score(variants).scores
        drops = score - without
        order = np.argsort(-drops, kind="stable")[: self.top]
        return [Contribution(sentence=parts[i], contribution=round(float(drops[i]), 4)) for i in order]
