"""The bundle's canary set: a spread of test texts and the scores the shipped model gives them.

The scorer re-scores them before it serves the bundle, at startup and on every hot reload, and
refuses it when a score moved by more than the tolerance (see stream.scoring.canary).
"""

from pathlib import Path

import numpy as np

from stream.scoring.bundle import CanaryInfo
from stream.scoring.canary import write_canary
from stream.scoring.scorer import Scorer

SIZE = 16
# Long enough for several windows of most bundles, short enough to keep the check cheap.
MAX_CHARS = 4000


def add_canary(folder: Path, scorer: Scorer, texts: list[str], size: int = SIZE) -> CanaryInfo:
    """Texts at evenly spaced ranks of the shipped model's scores (low, middle, high), and their scores."""
    capped = [t[:MAX_CHARS] for t in texts if t.strip()]
    ranked = np.argsort(scorer.score(capped).scores, kind="stable")
    spots = np.linspace(0, len(ranked) - 1, min(size, len(ranked))).round().astype(int)
    picks = sorted({int(ranked[i]) for i in spots})
    chosen = [capped[i] for i in picks]
    return write_canary(folder, chosen, scorer.score(chosen).scores.tolist())
