"""Names in a text as a hashed bag of words, to sharpen the embedding for incident grouping.

A sentence embedding says what kind of event a report is about, and two suicide bombings in two
cities read alike to it; the place, the group and the numbers tell them apart. So the grouping
vector is the embedding and this bag of names side by side (``combine``): its cosine is
``weight * cos(embeddings) + (1 - weight) * cos(names)``. Names are the capitalized words (not a
text's first word, nor common sentence starters) and numbers, lowercased, hashed into ``DIMS``
buckets with sublinear counts. Pure numpy; nothing to fit.
"""

import re
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

DIMS = 1024
_WORD = re.compile(r"[A-Za-z][\w'’-]*|\d[\d,.]*")
# Capitalized for grammar, not because they name something.
_STARTERS = frozenset(
    " ".join(
        (
            "a an the this that these those it its he she they we i you his her their our on in at of for",
            "to by with from as after before during when while since until and or but if so no not there",
            "here mr mrs ms dr monday tuesday wednesday thursday friday saturday sunday",
        )
    ).split()
)

Vectors = npt.NDArray[np.float32]


def names(text: str) -> list[str]:
    found = []
    for k, match in enumerate(_WORD.finditer(text)):
        word = match.group(0)
        lower = word.lower().rstrip(".,")
        if word[0].isdigit() or (word[0].isupper() and k > 0 and lower not in _STARTERS):
            found.append(lower)
    return found


def name_vectors(texts: Sequence[str], dims: int = DIMS) -> Vectors:
    out = np.zeros((len(texts), dims), dtype=np.float32)
    for row, text in enumerate(texts):
        for word, count in Counter(names(text)).items():
            out[row, zlib.crc32(word.encode()) % dims] += 1.0 + np.log(count)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    normalized: Vectors = out / np.maximum(norms, 1e-12)
    return normalized


def combine(embeddings: Vectors, lexical: Vectors, weight: float) -> Vectors:
    """Side by side, scaled so that the cosine of two rows is the weighted sum of both cosines."""
    joined: Vectors = np.concatenate([np.sqrt(weight) * embeddings, np.sqrt(1.0 - weight) * lexical], axis=1)
    return joined.astype(np.float32)
