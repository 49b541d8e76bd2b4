"""The shipped model's validation score distribution, recorded in the bundle as the reference of drift."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from stream.articles import Article
from stream.drift import ScoreDistribution, reference_from_scores
from stream.evaluate import score_articles
from stream.scorer import Scorer


def score_distribution(
    scorer: Scorer, articles: Sequence[Article], labels: npt.NDArray[np.int64], domain: str | None
) -> ScoreDistribution:
    """The scores of the validation articles that are not attacks (see stream.drift for why)."""
    scores = score_articles(scorer, list(articles)).scores
    normal = np.asarray(scores)[np.asarray(labels) == 0]
    where = f"validation articles of domain {domain!r}" if domain else "validation articles"
    return reference_from_scores(
        normal.tolist(), f"{where}, label 0, scored by the shipped model", float(np.mean(labels))
    )
