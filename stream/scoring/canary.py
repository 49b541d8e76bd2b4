"""The canary set: texts a bundle's model scored at export, re-scored before the bundle serves.

Hashes prove the files are the ones exported; the canary proves this machine's ONNX Runtime,
tokenizer and preprocessing reproduce the scores they gave then (a wrong provider, a changed
runtime or a mismatched tokenizer shows up here, not in production alerts). ``canary.jsonl`` holds
one ``{"text": <cleaned text>, "score": <float>}`` per line; the manifest's ``canary`` names the
file, the count and the tolerance.

A bundle exported before the canary existed has none: it still loads, through a smoke test
instead (fixed texts score finite, within [0, 1], and the same twice), and the log says so.
"""

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stream.errors import BundleError
from stream.scoring.bundle import Bundle, CanaryInfo

# Plain sentences with no meaning for the task: the smoke test only needs them to score at all.
SMOKE_TEXTS = (
    "the city council met on tuesday to discuss the budget for the coming year.",
    "shares rose in early trading after the company reported higher quarterly earnings.",
    "heavy rain is expected across the region over the weekend, forecasters said.",
)


ScoreTexts = Callable[[Sequence[str]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class GateResult:
    kind: str  # "canary" or "smoke"
    texts: int
    max_diff: float | None  # canary only
    probe: str  # a text the model is known to score: the service's health probe


def read_canary(bundle: Bundle) -> tuple[list[str], list[float]]:
    info = bundle.manifest.canary
    if info is None:
        return [], []
    path = bundle.path / info.file
    texts, scores = [], []
    try:
        for _lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            texts.append(str(record["text"]))
            scores.append(float(record["score"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path}: unreadable canary set ({exc})") from None
    if len(texts) != info.count:
        raise BundleError(f"{path}: {len(texts)} canary texts, the manifest says {info.count}")
    return texts, scores


def check(bundle: Bundle, score: ScoreTexts) -> GateResult:
    """Score the canary set (or the smoke texts) and raise BundleError when the model is off."""
    texts, expected = read_canary(bundle)
    if not texts:
        first = score(SMOKE_TEXTS)
        second = score(SMOKE_TEXTS)
        if not all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in first.tolist()):
            raise BundleError(f"{bundle.path}: the model scores plain text outside [0, 1]: {first.tolist()}")
        if float(np.max(np.abs(first - second))) > 1e-4:
            raise BundleError(f"{bundle.path}: the model gives different scores for the same text")
        return GateResult("smoke", len(SMOKE_TEXTS), None, SMOKE_TEXTS[0])
    assert bundle.manifest.canary is not None
    tolerance = bundle.manifest.canary.tolerance
    got = score(texts)
    diffs = np.abs(got.astype(np.float64) - np.asarray(expected, dtype=np.float64))
    worst = float(np.max(diffs)) if np.all(np.isfinite(diffs)) else math.inf
    if not worst <= tolerance:
        at = int(np.nanargmax(np.where(np.isfinite(diffs), diffs, np.inf)))
        raise BundleError(
            f"{bundle.path}: canary check failed: a text recorded at {expected[at]:.4f} scores "
            f"{float(got[at]):.4f} here (max difference {worst:.4f} over {len(texts)} texts, tolerance "
            f"{tolerance}); the model does not behave here as it did at export"
        )
    return GateResult("canary", len(texts), worst, texts[0])


def write_canary(
    folder: Path, texts: Sequence[str], scores: Sequence[float], tolerance: float = 0.02
) -> CanaryInfo:
    """Write canary.jsonl into a bundle folder being built; the manifest then records the result."""
    info = CanaryInfo(count=len(texts), tolerance=tolerance)
    with (folder / info.file).open("w", encoding="utf-8") as handle:
        for text, score in zip(texts, scores, strict=True):
            handle.write(json.dumps({"text": text, "score": float(score)}, ensure_ascii=False) + "\n")
    return info
