"""Fine-tuning a window classifier on documents of any length (multiple-instance learning).

An article's logit is the maximum over its windows (the ``chunk_max`` strategy the scorer
applies). The gradient of a maximum flows through the highest-scoring window only, so each
epoch first finds that window for every multi-window document with a cheap no-grad pass, then
trains on one window per document. The first epoch takes each article's first window instead:
a news report usually leads with its event, and an untrained head would pick windows at random.
"""

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.encoding import Encoder, IntArray
from stream.metrics import auprc, auroc
from training.model import import_torch

Docs = list[list[IntArray]]  # the windows of each document


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4
    batch_size: int = 16
    learning_rate: float = 8e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    patience: int = 2
    seed: int = 13
    eval_batch_size: int = 32
    max_steps: int | None = None  # stop early after this many optimizer steps (tests, smoke runs)
    bf16: bool = False  # bfloat16 autocast; see cpu_has_bf16()
    # Every window of a negative article is negative, so all of them could be trained on; a
    # positive article only vouches for its best window. Measured on MUC test: no gain (AUROC
    # 0.900 vs 0.903) for 1.7x the time, hence off by default.
    all_negative_windows: bool = False


@dataclass
class EpochLog:
    epoch: int
    loss: float
    val_auroc: float | None
    val_auprc: float | None
    seconds: float


@dataclass
class History:
    epochs: list[EpochLog] = field(default_factory=list)
    best_epoch: int = 0
    steps: int = 0
    seconds: float = 0.0


def encode_docs(encoder: Encoder, texts: Sequence[str]) -> Docs:
    return [encoder.windows_of(ids) for ids in encoder.token_ids(texts)]


def cpu_has_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX): 2.6x faster training here.

    Elsewhere autocast emulates bfloat16 and is slower than fp32, so it stays off.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast(enabled: bool) -> Any:
    torch = import_torch()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def set_seed(seed: int) -> None:
    torch = import_torch()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def window_logits(
    model: Any, encoder: Encoder, docs: Docs, batch_size: int, desc: str | None = None, bf16: bool = False
) -> list[npt.NDArray[np.float32]]:
    """Per-document arrays of window logits, in eval mode and without gradients."""
    torch = import_torch()
    flat = [(d, w) for d, windows in enumerate(docs) for w in windows]
    order = sorted(range(len(flat)), key=lambda i: len(flat[i][1]))
    out = np.empty(len(flat), dtype=np.float32)
    model.eval()
    with torch.inference_mode(), autocast(bf16):
        for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=desc is None):
            rows = order[start : start + batch_size]
            batch = encoder.pad([flat[i][1] for i in rows], np.asarray(rows))
            logits = model(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask))
            out[rows] = logits.float().numpy()
    result, start = [], 0
    for windows in docs:
        result.append(out[start : start + len(windows)])
        start += len(windows)
    return result


def doc_logits(
    model: Any, encoder: Encoder, docs: Docs, batch_size: int, desc: str | None = None, bf16: bool = False
) -> npt.NDArray[np.float32]:
    windows = window_logits(model, encoder, docs, batch_size, desc, bf16)
    return np.asarray([w.max() for w in windows], dtype=np.float32)


def _batches(
    examples: list[tuple[IntArray, int]], batch_size: int, rng: random.Random
) -> list[list[tuple[IntArray, int]]]:
    """Shuffled batches of similar lengths, so little compute goes into padding."""
    rng.shuffle(examples)
    pool = batch_size * 32
    batches = []
    for start in range(0, len(examples), pool):
        chunk = sorted(examples[start : start + pool], key=lambda e: len(e[0]))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def fine_tune(
    model: Any,
    encoder: Encoder,
    train_docs: Docs,
    train_labels: npt.NDArray[np.int64],
    val_docs: Docs,
    val_labels: npt.NDArray[np.int64],
    config: TrainConfig,
    log: Callable[[str], None] = tqdm.write,
) -> History:
    torch = import_torch()
    set_seed(config.seed)
    rng = random.Random(config.seed)
    history = History()
    started = time.monotonic()

    counts = np.bincount(train_labels, minlength=2).astype(np.float64)
    if config.all_negative_windows:
        counts[0] = sum(len(d) for d, y in zip(train_docs, train_labels, strict=True) if y == 0)
    # Class weights n / (2 n_c): each class carries half of the loss whatever the imbalance.
    class_weight = torch.tensor(counts.sum() / (2.0 * counts), dtype=torch.float32)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    params = [
        {
            "params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
            "weight_decay": config.weight_decay,
        },
        {
            "params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    steps_per_epoch = math.ceil(int(counts.sum()) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = max(1, int(total * config.warmup_ratio))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    best_auprc, best_state, stale = -1.0, None, 0
    multi = [
        i
        for i, windows in enumerate(train_docs)
        if len(windows) > 1 and (train_labels[i] == 1 or not config.all_negative_windows)
    ]

    for epoch in range(1, config.epochs + 1):
        epoch_start = time.monotonic()
        chosen = [0] * len(train_docs)
        if epoch > 1 and multi:
            logits = window_logits(
                model,
                encoder,
                [train_docs[i] for i in multi],
                config.eval_batch_size,
                desc=f"epoch {epoch} window selection",
                bf16=config.bf16,
            )
            for i, doc_logit in zip(multi, logits, strict=True):
                chosen[i] = int(np.argmax(doc_logit))
        examples = []
        for i, windows in enumerate(train_docs):
            label = int(train_labels[i])
            if label == 0 and config.all_negative_windows:
                examples += [(w, 0) for w in windows]
            else:
                examples.append((windows[chosen[i]], label))
        model.train()
        losses: list[float] = []
        bar = tqdm(
            _batches(examples, config.batch_size, rng), desc=f"epoch {epoch}/{config.epochs}", unit="batch"
        )
        for batch_examples in bar:
            batch = encoder.pad([e[0] for e in batch_examples], np.arange(len(batch_examples)))
            labels = torch.tensor([e[1] for e in batch_examples], dtype=torch.float32)
            with autocast(config.bf16):
                logits = model(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask))
            weights = class_weight[labels.long()]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits.float(), labels, weight=weights
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            history.steps += 1
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
            if history.steps >= total:
                break
        bar.close()

        val_scores = doc_logits(model, encoder, val_docs, config.eval_batch_size, "validation", config.bf16)
        val_auprc, val_auroc = auprc(val_labels, val_scores), auroc(val_labels, val_scores)
        entry = EpochLog(epoch, float(np.mean(losses)), val_auroc, val_auprc, time.monotonic() - epoch_start)
        history.epochs.append(entry)
        log(
            f"epoch {epoch}: loss {entry.loss:.4f}  val AUROC {val_auroc or 0:.4f}  "
            f"val AUPRC {val_auprc or 0:.4f}  ({entry.seconds:.0f}s)"
        )
        if (val_auprc or 0.0) > best_auprc:
            best_auprc, stale, history.best_epoch = val_auprc or 0.0, 0, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                log(f"early stop: validation AUPRC has not improved for {stale} epochs")
                break
        if history.steps >= total:
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.seconds = time.monotonic() - started
    return history
