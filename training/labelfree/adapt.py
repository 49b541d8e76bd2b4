"""Adapting the encoder to the normal articles, with no labels: mean-shifted contrastive learning.

The loss is the mean-shifted contrastive loss of Reiss and Hoshen (2023), made for one-class
anomaly detection with a pre-trained encoder: embeddings are compared by their angles around
the centre of the normal data (not around the origin, where all of one class sit close
together), two random crops of the same article are pulled together and other articles pushed
apart, and an angular term keeps the normal data around its centre. Plain contrastive
fine-tuning spreads the normal data over the sphere and forgets what made anomalies stand out;
compactness losses alone collapse everything onto the centre. Few steps, a small learning
rate and only the top layers trained (``train_layers``, as the classifier) keep the pre-trained
geometry, and make a window's frozen lower-layer output reusable by every adapted copy of the
encoder (the benchmark computes it once per corpus).
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream.scoring.encoding import Encoder, IntArray
from training.finetune import set_seed
from training.frozen import FrozenPrefix
from training.model import import_torch


@dataclass(frozen=True)
class AdaptConfig:
    steps: int = 60
    batch_size: int = 16
    learning_rate: float = 2e-5
    temperature: float = 0.25
    crop: float = 0.7  # share of a window's tokens each view keeps
    max_tokens: int = 128  # per view: the head of the article carries its topic
    seed: int = 13
    train_layers: int = 2  # top encoder layers adapted; the embeddings and the layers below stay frozen


def _crop(window: IntArray, share: float, max_tokens: int, rng: np.random.Generator) -> IntArray:
    body = window[1:-1][: max_tokens - 2]
    n = max(4, int(len(body) * share)) if len(body) > 8 else len(body)
    start = int(rng.integers(0, len(body) - n + 1))
    return np.concatenate([window[:1], body[start : start + n], window[-1:]]).astype(np.int64)


def adapt(
    pooler: Any,
    encoder: Encoder,
    texts: Sequence[str],
    config: AdaptConfig,
    centre: npt.NDArray[np.float32] | None = None,
) -> tuple[FrozenPrefix, str]:
    """Fine-tune the pooler's top layers in place; returns its frozen prefix and a line for the report.

    ``centre`` is the mean of the texts' first-window embeddings by the encoder as given (computed
    here when not passed).
    """
    torch = import_torch()
    functional = torch.nn.functional
    set_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    started = time.monotonic()
    layers = len(pooler.encoder.encoder.layer)
    prefix = FrozenPrefix(pooler, encoder, min(config.train_layers, layers))
    first_windows = [w[0] for w in (encoder.windows_of(ids) for ids in encoder.token_ids(texts))]
    if centre is None:
        centre = prefix.embeddings(prefix.states(first_windows, 32), 32).mean(0)
    centre_t = functional.normalize(torch.from_numpy(np.asarray(centre, dtype=np.float32)), dim=0)
    batch_size = min(config.batch_size, len(first_windows))
    optimizer = torch.optim.AdamW(prefix.trainable(), lr=config.learning_rate, weight_decay=0.0)
    pooler.train()
    losses = []
    for _ in range(config.steps):
        rows = rng.choice(len(first_windows), size=batch_size, replace=False)
        views = []
        for _view in range(2):
            crops = [_crop(first_windows[i], config.crop, config.max_tokens, rng) for i in rows]
            views.append(
                functional.normalize(prefix.pooled(prefix.states(crops, batch_size)).float(), dim=-1)
            )
        shifted = [functional.normalize(v - centre_t, dim=-1) for v in views]
        logits = shifted[0] @ shifted[1].T / config.temperature
        targets = torch.arange(batch_size)
        contrastive = (
            functional.cross_entropy(logits, targets) + functional.cross_entropy(logits.T, targets)
        ) / 2
        angular = -((views[0] @ centre_t).mean() + (views[1] @ centre_t).mean()) / 2
        loss = contrastive + angular
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
    pooler.eval()
    return prefix, (
        f"encoder adapted: mean-shifted contrastive loss on the top {layers - prefix.frozen} of {layers} layers, "
        f"{config.steps} steps of {batch_size} articles (two crops of {config.crop:.0%} of the first "
        f"{config.max_tokens} tokens), lr {config.learning_rate:g}; "
        f"loss {np.mean(losses[:5]):.3f} -> {np.mean(losses[-5:]):.3f} in {time.monotonic() - started:.0f} s"
    )
