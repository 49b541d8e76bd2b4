"""Partial fine-tuning: an encoder whose embeddings and lower layers are frozen.

The frozen part's output for a window never changes during training, so it is computed once
per window (``FrozenPrefix.states``) and every epoch runs only the trained top layers, the mean
pooling and the head on those cached states (``FrozenPrefix.logits``). The classifier's own
modules do the work, so the trained weights are the classifier's and export as usual.
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.scoring.encoding import Encoder, IntArray
from training.model import import_torch

State = npt.NDArray[np.float16] | npt.NDArray[np.float32]  # [window length, hidden size]


class FrozenPrefix:
    def __init__(self, classifier: Any, encoder: Encoder, train_layers: int) -> None:
        layers = classifier.encoder.encoder.layer
        if not 0 <= train_layers <= len(layers):
            raise ValueError(f"train_layers must be between 0 and {len(layers)}, got {train_layers}")
        self.classifier = classifier
        self.encoder = encoder
        self.frozen = len(layers) - train_layers
        self.top = list(layers[self.frozen :])
        frozen_modules = [classifier.encoder.embeddings, *layers[: self.frozen]]
        for module in frozen_modules:
            for parameter in module.parameters():
                parameter.requires_grad = False
        self.frozen_modules = frozen_modules

    def set_attention_dropout(self, p: float) -> None:
        """Dropout on the attention probabilities of the trained layers (BERT-style modules)."""
        for layer in self.top:
            for name, module in layer.named_modules():
                dropout = getattr(module, "dropout", None)
                if name.endswith("attention.self") and dropout is not None:
                    dropout.p = p

    def trainable(self) -> list[Any]:
        return [p for p in self.classifier.parameters() if p.requires_grad]

    def states(
        self,
        windows: Sequence[IntArray],
        batch_size: int,
        desc: str | None = None,
        dtype: type[np.floating[Any]] = np.float16,
    ) -> list[State]:
        """The frozen part's output for each window (unpadded), in the order given.

        float16 halves the memory of a training set's cache; float32 keeps the top layers'
        output equal to a full forward pass.
        """
        torch = import_torch()
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        out: list[State] = [np.empty((0, 0), np.float16)] * len(windows)
        for module in self.frozen_modules:
            module.eval()
        with torch.inference_mode():
            for start in tqdm(
                range(0, len(order), batch_size), desc=desc, leave=False, disable=desc is None, unit="batch"
            ):
                rows = order[start : start + batch_size]
                batch = self.encoder.pad([windows[i] for i in rows], np.asarray(rows))
                mask = torch.from_numpy(batch.attention_mask)
                hidden = self.classifier.encoder.embeddings(input_ids=torch.from_numpy(batch.input_ids))
                additive = _additive_mask(torch, mask, hidden.dtype)
                for layer in self.frozen_modules[1:]:
                    hidden = layer(hidden, additive)
                hidden = hidden.float().numpy().astype(dtype, copy=False)
                for j, i in enumerate(rows):
                    out[i] = hidden[j, : len(windows[i])].copy()
        return out

    def pooled(self, states: Sequence[State]) -> Any:
        """The mean-pooled output of the top layers for cached states: [windows, hidden size]."""
        torch = import_torch()
        width = max(len(s) for s in states)
        hidden = np.zeros((len(states), width, states[0].shape[1]), dtype=np.float32)
        mask = np.zeros((len(states), width), dtype=np.int64)
        for i, state in enumerate(states):
            hidden[i, : len(state)] = state
            mask[i, : len(state)] = 1
        h = torch.from_numpy(hidden)
        m = torch.from_numpy(mask)
        additive = _additive_mask(torch, m, h.dtype)
        for layer in self.top:
            h = layer(h, additive)
        weights = m.unsqueeze(-1).to(h.dtype)
        return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def logits(self, states: Sequence[State]) -> Any:
        """One logit per window (or one per class) from cached states: the top layers, pooling, the head."""
        return self.classifier.head(self.classifier.dropout(self.pooled(states))).squeeze(-1)

    def embeddings(self, states: Sequence[State], batch_size: int) -> npt.NDArray[np.float32]:
        """Unit-length pooled embeddings of many windows, without gradients, batched by length."""
        normalize = import_torch().nn.functional.normalize
        return self._eval_batches(states, batch_size, lambda s: normalize(self.pooled(s).float(), dim=-1))

    def window_logits(self, states: Sequence[State], batch_size: int) -> npt.NDArray[np.float32]:
        """Logits of many windows ([windows] or [windows, classes]), without gradients, batched by length."""
        return self._eval_batches(states, batch_size, lambda s: self.logits(s).float())

    def _eval_batches(
        self, states: Sequence[State], batch_size: int, compute: Callable[[Sequence[State]], Any]
    ) -> npt.NDArray[np.float32]:
        """``compute`` over length-sorted batches in eval mode, rows back in the order given."""
        torch = import_torch()
        order = sorted(range(len(states)), key=lambda i: len(states[i]))
        out: npt.NDArray[np.float32] | None = None
        self.classifier.eval()
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                values = compute([states[i] for i in rows]).numpy()
                if out is None:
                    out = np.empty((len(states), *values.shape[1:]), dtype=np.float32)
                out[rows] = values
        return out if out is not None else np.empty(0, dtype=np.float32)


def _additive_mask(torch: Any, mask: Any, dtype: Any) -> Any:
    """[batch, 1, 1, length]: 0 where attended, the dtype's minimum on padding (eager attention adds it)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
