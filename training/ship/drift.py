"""The shipped model's validation score distribution, recorded in the bundle as the reference of drift."""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from stream.scoring.drift import ScoreDistribution, reference_from_scores


def published_scores(
    scores: npt.NDArray[np.floating],
    by_lead: npt.NDArray[np.bool_],
    rescore: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.floating]],
) -> npt.NDArray[np.floating]:
    """`scores` (every window read) with the articles the scorer reads by their lead alone scored
    again by `rescore` (the shipped scorer, given their indices): the scores it publishes.

    Those scores lie where the reference's lowest deciles are a few 1e-4 wide, so they must come
    from the shipped file itself: the fp32 training pass's leads differ from int8's by enough to
    move many across a bin edge (a PSI of 0.12 against the published scores, measured)."""
    which = np.flatnonzero(by_lead)
    if len(which) == 0:
        return scores
    out = np.array(scores, copy=True)
    out[which] = rescore(which)
    return out


def score_distribution(
    scores: npt.NDArray[np.floating], labels: npt.NDArray[np.int64], domain: str | None
) -> ScoreDistribution:
    """The shipped model's scores of the validation articles that are not attacks (see
    stream.scoring.drift for why), as the scorer publishes them (see `published_scores`)."""
    normal = np.asarray(scores)[np.asarray(labels) == 0]
    where = f"validation articles of domain {domain!r}" if domain else "validation articles"
    return reference_from_scores(
        normal.tolist(), f"{where}, label 0, scored by the shipped model", float(np.mean(labels))
    )
