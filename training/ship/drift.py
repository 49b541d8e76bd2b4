"""The shipped model's validation score distribution, recorded in the bundle as the reference of drift."""

import numpy as np
import numpy.typing as npt

from stream.scoring.drift import ScoreDistribution, reference_from_scores


def score_distribution(
    scores: npt.NDArray[np.floating], labels: npt.NDArray[np.int64], domain: str | None
) -> ScoreDistribution:
    """The shipped model's scores of the validation articles that are not attacks (see
    stream.scoring.drift for why), as the scorer publishes them: computed when the model was
    chosen, with lead first applied by the caller (training.classifier.doc_head.LeadFirst)."""
    normal = np.asarray(scores)[np.asarray(labels) == 0]
    where = f"validation articles of domain {domain!r}" if domain else "validation articles"
    return reference_from_scores(
        normal.tolist(), f"{where}, label 0, scored by the shipped model", float(np.mean(labels))
    )
