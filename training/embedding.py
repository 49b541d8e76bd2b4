"""Window embeddings: the mean-pooled, L2-normalised encoder output the label-free modes build on.

Mean pooling, because all-MiniLM-L6-v2 was trained to make its mean-pooled output a sentence
embedding; unit length, because its training compared embeddings by cosine.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.scoring.encoding import Encoder
from training.finetune import autocast
from training.model import import_torch

FloatArray = npt.NDArray[np.float32]


def build_pooler(encoder: Any) -> Any:
    """input_ids, attention_mask -> one unit-length embedding per window."""
    torch = import_torch()

    class MeanPooledEmbedding(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            return torch.nn.functional.normalize(pooled.float(), dim=-1)

    return MeanPooledEmbedding()


@dataclass
class Windows:
    """Embeddings of the windows of some texts: ``vectors[i]`` belongs to text ``owner[i]``."""

    vectors: FloatArray
    owner: npt.NDArray[np.int64]
    n_texts: int

    def first(self) -> FloatArray:
        """Each text's first window (the first max_length tokens)."""
        index = np.r_[0, np.flatnonzero(np.diff(self.owner)) + 1]
        return self.vectors[index]

    def select(self, texts: Sequence[int]) -> "Windows":
        """The windows of the given texts, renumbered 0..len(texts)-1 in that order."""
        rows, owner = windows_of(self.owner, texts)
        return Windows(self.vectors[rows], owner, len(texts))


def windows_of(
    owner: npt.NDArray[np.int64], texts: Sequence[int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The rows of the given texts' windows (``owner`` sorted), and each row's text, renumbered."""
    starts = np.searchsorted(owner, texts, side="left")
    stops = np.searchsorted(owner, texts, side="right")
    rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
    return rows, np.repeat(np.arange(len(texts)), stops - starts)


def embed(
    pooler: Any,
    encoder: Encoder,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    bf16: bool = False,
    desc: str | None = "embedding",
) -> Windows:
    """Embeddings of every window of every text (the windows the scorer would score)."""
    torch = import_torch()
    encoded = encoder.encode(texts)
    out = np.empty((len(encoded.windows), _width(pooler)), dtype=np.float32)
    batches = list(encoder.batches(encoded, batch_size))
    pooler.eval()
    with torch.inference_mode(), autocast(bf16):
        for batch in tqdm(batches, desc=desc, unit="batch", leave=False, disable=desc is None):
            vectors = pooler(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask))
            out[batch.rows] = vectors.float().numpy()
    return Windows(out, encoded.owner, encoded.n_texts)


def _width(pooler: Any) -> int:
    return int(pooler.encoder.config.hidden_size)
