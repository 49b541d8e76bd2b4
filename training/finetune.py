"""Fine-tuning a window classifier on documents of any length (multiple-instance learning).

While training, an article's logit is the maximum over its windows (the bundle's document head,
fitted after training, then decides how the scorer combines them). The gradient of a maximum
flows through the highest-scoring window only, so each epoch first finds that window for every
multi-window document with a cheap no-grad pass, then trains on one window per document. The
first epoch takes each article's first window instead: a news report usually leads with its
event, and an untrained head would pick windows at random.

Only the top ``train_layers`` encoder layers and the head are trained. The embeddings and the
lower layers keep what the pre-trained encoder knows (fine-tuning every layer on MUC alone
learned 1990 FBIS style and lost modern news), and since they are frozen their output for each
window is computed once and kept: an epoch runs the top layers only, which is what makes
training on tens of thousands of articles fit in minutes on two cores.
"""

import itertools
import math
import random
import time
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.scoring.encoding import Encoder, IntArray
from stream.scoring.metrics import auprc, auroc
from training.frozen import FrozenPrefix
from training.model import import_torch

LabelBalance = Literal["classes", "domain"]
Docs = list[list[IntArray]]  # the windows of each document


@dataclass(frozen=True)
class TrainConfig:
    # Two epochs of the top two layers keep `make train` under 30 minutes on 2 cores; with the
    # lower layers frozen a larger step size and batch are stable.
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-4
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
    train_layers: int = 2  # top encoder layers trained; the embeddings and the layers below stay frozen
    # Training looks for the best window among an article's first few only (scoring reads up to
    # max_windows): reports lead with their event, and the frozen-layer cache stays affordable.
    train_windows: int = 4
    # Dropout on the attention probabilities of the trained layers (the checkpoint's own is 0.1).
    # At 0 the fused attention kernel runs in training too: in make train the epochs took 300 s
    # and 339 s instead of 439 s and 487 s, validation AUPRC modern 0.9527 vs 0.9536, MUC 0.8903
    # vs 0.8906 (hidden-state dropout still regularises).
    attention_dropout: float = 0.0
    # Each domain's share of the loss goes as its size to the power (1 - domain_balance): 0 weighs
    # every example alike, 0.5 as the square root of the domain's size, 1 all domains alike.
    # Measured: 0.5 moved one epoch's validation AUPRC by +0.004 on MUC and +0.002 on modern news
    # (noise at this size), so it stays off.
    domain_balance: float = 0.0
    # "classes": each class carries half of the loss over the whole training set; "domain": half
    # within each domain, so how often a domain's articles are attacks (1.7% of the full-length
    # AllSides articles, over half of MUC) is no cue the model can learn from style or length.
    label_balance: LabelBalance = "classes"


@dataclass
class EpochLog:
    epoch: int
    loss: float
    val_auroc: float | None
    val_auprc: float | None
    seconds: float
    val_auprc_by_group: dict[str, float] = field(default_factory=dict)


@dataclass
class History:
    epochs: list[EpochLog] = field(default_factory=list)
    best_epoch: int = 0
    steps: int = 0
    seconds: float = 0.0
    cache_seconds: float = 0.0  # of which computing the frozen layers' output once
    best_val_logits: npt.NDArray[np.float32] = field(default_factory=lambda: np.empty(0, np.float32))
    # The best epoch's logits of every validation window, per document: what the doc head is fitted on.
    best_val_windows: list[npt.NDArray[np.float32]] = field(default_factory=list)


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


Window = TypeVar("Window", bound=Sized)


def _batches(
    examples: list[tuple[Window, int, float]], batch_size: int, rng: random.Random
) -> list[list[tuple[Window, int, float]]]:
    """Shuffled batches of similar lengths, so little compute goes into padding."""
    rng.shuffle(examples)
    pool = batch_size * 32
    batches = []
    for start in range(0, len(examples), pool):
        chunk = sorted(examples[start : start + pool], key=lambda e: len(e[0]))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _flat(docs: Docs) -> tuple[list[IntArray], list[int]]:
    """All windows in one list, and where each document's windows start."""
    flat = [w for windows in docs for w in windows]
    starts = np.cumsum([0] + [len(windows) for windows in docs]).tolist()
    return flat, starts


def domain_weights(domains: Sequence[str], balance: float) -> npt.NDArray[np.float32]:
    """Per-example loss weights giving each domain a share of the loss proportional to its size
    to the power (1 - balance), normalised to a mean of 1."""
    _, inverse, counts = np.unique(np.asarray(domains), return_inverse=True, return_counts=True)
    share = counts.astype(np.float64) ** (1.0 - balance)
    per_example = (share / share.sum() / (counts / counts.sum()))[inverse]
    return np.asarray(per_example / per_example.mean(), dtype=np.float32)


def label_weights(
    labels: npt.NDArray[np.int64], domains: Sequence[str], examples: Sequence[int], within_domain: bool
) -> npt.NDArray[np.float32]:
    """Per-document loss weights (per training example drawn from it) that give each class half
    of the loss: n / (2 n_c) over the whole set, or n_d / (2 n_dc) within each domain. ``examples``
    counts the training examples each document gives; a domain with one class keeps weight 1."""
    groups = np.asarray(domains) if within_domain else np.full(len(labels), "")
    counts = np.asarray(examples, dtype=np.float64)
    weights = np.ones(len(labels), dtype=np.float64)
    for group in np.unique(groups):
        mask = groups == group
        per_class = np.asarray([counts[mask & (labels == c)].sum() for c in (0, 1)])
        if (per_class > 0).all():
            weights[mask] = per_class.sum() / (2.0 * per_class[labels[mask]])
    return weights.astype(np.float32)


def selection_score(
    labels: npt.NDArray[np.int64], scores: npt.NDArray[np.floating], groups: dict[str, npt.NDArray[np.bool_]]
) -> tuple[float, dict[str, float]]:
    """Mean validation AUPRC over the groups (domains), so a large domain cannot drown a small one."""
    by_group = {}
    for name, mask in groups.items():
        value = auprc(labels[mask], scores[mask]) if mask.any() else None
        if value is not None:
            by_group[name] = value
    if not by_group:
        return auprc(labels, scores) or 0.0, {}
    return float(np.mean(list(by_group.values()))), by_group


def fine_tune(
    model: Any,
    encoder: Encoder,
    train_docs: Docs,
    train_labels: npt.NDArray[np.int64],
    val_docs: Docs,
    val_labels: npt.NDArray[np.int64],
    config: TrainConfig,
    log: Callable[[str], None] = tqdm.write,
    val_groups: dict[str, npt.NDArray[np.bool_]] | None = None,
    train_domains: Sequence[str] | None = None,
) -> History:
    # Checked before the frozen pass, which takes minutes on a CPU.
    if config.label_balance not in get_args(LabelBalance):
        raise ValueError(
            f"label_balance must be one of {get_args(LabelBalance)}, got {config.label_balance!r}"
        )
    torch = import_torch()
    set_seed(config.seed)
    rng = random.Random(config.seed)
    history = History()
    started = time.monotonic()
    groups = val_groups or {}

    # A negative article trains on its first window only, unless all_negative_windows: its other
    # windows never reach the loss, and on full-length articles they were half the tokens of the
    # frozen-layer pass.
    train_docs = [
        windows[: config.train_windows if y == 1 or config.all_negative_windows else 1]
        for windows, y in zip(train_docs, train_labels, strict=True)
    ]
    layers = len(model.encoder.encoder.layer)
    prefix = FrozenPrefix(model, encoder, min(config.train_layers, layers))
    prefix.set_attention_dropout(config.attention_dropout)
    train_flat, train_starts = _flat(train_docs)
    val_flat, val_starts = _flat(val_docs)
    with autocast(config.bf16):
        train_states = prefix.states(train_flat, config.eval_batch_size, "frozen layers, training windows")
        val_states = prefix.states(val_flat, config.eval_batch_size, "frozen layers, validation windows")
    history.cache_seconds = time.monotonic() - started
    log(
        f"frozen: embeddings and {prefix.frozen} layers, computed once for {len(train_flat)} training and "
        f"{len(val_flat)} validation windows; training the top {layers - prefix.frozen} layers and the head"
    )

    examples_of = [
        len(d) if y == 0 and config.all_negative_windows else 1
        for d, y in zip(train_docs, train_labels, strict=True)
    ]
    domains = list(train_domains or [""] * len(train_docs))
    doc_weight = label_weights(
        train_labels, domains, examples_of, config.label_balance == "domain"
    ) * domain_weights(domains, config.domain_balance)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [
        {
            "params": [p for n, p in trainable if not any(k in n for k in no_decay)],
            "weight_decay": config.weight_decay,
        },
        {"params": [p for n, p in trainable if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    steps_per_epoch = math.ceil(sum(examples_of) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = max(1, int(total * config.warmup_ratio))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    best_score, best_state, stale = -1.0, None, 0
    multi = [
        i
        for i, windows in enumerate(train_docs)
        if len(windows) > 1 and (train_labels[i] == 1 or not config.all_negative_windows)
    ]

    def per_doc(states: list[Any], starts: list[int]) -> list[npt.NDArray[np.float32]]:
        with autocast(config.bf16):
            logits = prefix.window_logits(states, config.eval_batch_size)
        return [np.asarray(logits[a:b], dtype=np.float32) for a, b in itertools.pairwise(starts)]

    for epoch in range(1, config.epochs + 1):
        epoch_start = time.monotonic()
        chosen = [0] * len(train_docs)
        if epoch > 1 and multi:
            rows = [j for i in multi for j in range(train_starts[i], train_starts[i + 1])]
            with autocast(config.bf16):
                logits = prefix.window_logits([train_states[j] for j in rows], config.eval_batch_size)
            at = 0
            for i in multi:
                n = train_starts[i + 1] - train_starts[i]
                chosen[i] = int(np.argmax(logits[at : at + n]))
                at += n
        examples = []
        for i in range(len(train_docs)):
            label, first = int(train_labels[i]), train_starts[i]
            if label == 0 and config.all_negative_windows:
                examples += [(train_states[j], 0, doc_weight[i]) for j in range(first, train_starts[i + 1])]
            else:
                examples.append((train_states[first + chosen[i]], label, doc_weight[i]))
        model.train()
        losses: list[float] = []
        bar = tqdm(
            _batches(examples, config.batch_size, rng), desc=f"epoch {epoch}/{config.epochs}", unit="batch"
        )
        for batch_examples in bar:
            labels = torch.tensor([e[1] for e in batch_examples], dtype=torch.float32)
            with autocast(config.bf16):
                logits = prefix.logits([e[0] for e in batch_examples])
            weights = torch.tensor([e[2] for e in batch_examples])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits.float(), labels, weight=weights
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(prefix.trainable(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            history.steps += 1
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
            if history.steps >= total:
                break
        bar.close()

        val_windows = per_doc(val_states, val_starts)
        val_scores = np.asarray([w.max() for w in val_windows], dtype=np.float32)
        score, by_group = selection_score(val_labels, val_scores, groups)
        val_auprc, val_auroc = auprc(val_labels, val_scores), auroc(val_labels, val_scores)
        entry = EpochLog(
            epoch, float(np.mean(losses)), val_auroc, val_auprc, time.monotonic() - epoch_start, by_group
        )
        history.epochs.append(entry)
        groups_text = "".join(f"  {name} AUPRC {value:.4f}" for name, value in by_group.items())
        log(
            f"epoch {epoch}: loss {entry.loss:.4f}  val AUROC {val_auroc or 0:.4f}  "
            f"val AUPRC {val_auprc or 0:.4f}{groups_text}  ({entry.seconds:.0f}s)"
        )
        if score > best_score:
            best_score, stale, history.best_epoch = score, 0, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history.best_val_logits = val_scores
            history.best_val_windows = val_windows
        else:
            stale += 1
            if stale >= config.patience:
                log(f"early stop: the validation score has not improved for {stale} epochs")
                break
        if history.steps >= total:
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.seconds = time.monotonic() - started
    return history
