"""`wirewatch train --mode ood`: a classifier of the normal categories whose doubt is the anomaly.

The normal articles carry a category (a news section, say; the `category` field, or the one
named by ``--category-field``). A window classifier learns them (its top ``--train-layers``
layers and a head, as the attack classifier does); an article that fits none of them gets a
flat softmax. Two statistics read that: 1 - the maximum softmax probability (MSP, Hendrycks and
Gimpel 2017) and the energy -logsumexp(logits) (Liu et al. 2020). With
``--outliers FILE`` (articles known not to be normal, of any kind) training adds outlier
exposure (Hendrycks et al. 2019): the cross-entropy of the outliers' softmax to the uniform
distribution, i.e. their KL divergence to uniform up to a constant, weighted by OE_WEIGHT.
A fifth of the outliers is held out to choose MSP or energy on validation; without outliers
the energy score is used, which separates at least as well as MSP in the literature above.
"""

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.errors import DataError
from stream.scoring.articles import read_articles
from stream.scoring.bundle import Bundle, Method, load_bundle
from stream.scoring.encoding import Encoder, IntArray, mean_per_owner
from stream.scoring.metrics import auroc
from stream.scoring.text import article_text, clean
from training.finetune import autocast, set_seed
from training.frozen import FrozenPrefix, State
from training.labelfree import base as unlabeled
from training.labelfree.base import Split, UnlabeledOptions, log
from training.model import calibrated, import_torch
from training.ship.publish import publishing, save_tokenizer

OE_WEIGHT = 0.5
SCORES: tuple[str, ...] = ("msp", "energy")


def categories_of(split: Split, field: str) -> list[str]:
    values = []
    for a in split.articles:
        value = a.get(field)
        if value is None or str(value).strip() == "":
            raise DataError(
                f"{split.source}: article {a.id!r} has no {field!r}; --mode ood needs the category of "
                "every normal article (name the field with --category-field)"
            )
        values.append(str(value))
    return values


def build_category_classifier(encoder: Any, n_classes: int, dropout: float = 0.1) -> Any:
    torch = import_torch()
    nn = torch.nn

    class CategoryClassifier(nn.Module):  # type: ignore[misc, name-defined]
        """Mean-pooled encoder output to one logit per normal category."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(encoder.config.hidden_size, n_classes)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            return self.head(self.dropout(pooled))

    return CategoryClassifier()


def ood_head(classifier: Any, score: str) -> Any:
    """The raw statistic per window, higher = less like any normal category."""
    torch = import_torch()

    class OodStatistic(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.classifier = classifier

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            logits = self.classifier(input_ids, attention_mask).float()
            if score == "msp":
                return 1.0 - torch.softmax(logits, dim=-1).max(dim=-1).values
            return -torch.logsumexp(logits, dim=-1)

    return OodStatistic()


def statistics(logits: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1))
    msp = np.exp(-log_sum)  # the largest softmax probability
    return {
        "msp": (1.0 - msp).astype(np.float32),
        "energy": (-(log_sum + logits.max(axis=1))).astype(np.float32),
    }


@dataclass
class Trained:
    classifier: Any
    val_accuracy: float
    seconds: float
    steps: int
    prefix: FrozenPrefix


def _windows(encoder: Encoder, texts: Sequence[str]) -> list[list[IntArray]]:
    return [encoder.windows_of(ids) for ids in encoder.token_ids(texts)]


def window_logits(
    classifier: Any, encoder: Encoder, texts: Sequence[str], bf16: bool, batch_size: int = 32
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Logits of every window and the article each belongs to."""
    torch = import_torch()
    encoded = encoder.encode(texts)
    out: npt.NDArray[np.float32] | None = None
    classifier.eval()
    with torch.inference_mode(), autocast(bf16):
        for batch in encoder.batches(encoded, batch_size):
            logits = classifier(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask))
            values = logits.float().numpy()
            if out is None:
                out = np.empty((len(encoded.windows), values.shape[1]), dtype=np.float32)
            out[batch.rows] = values
    assert out is not None
    return out, encoded.owner


StatesOf = Callable[[Sequence[IntArray]], list[State]]


def fine_tune(
    classifier: Any,
    encoder: Encoder,
    texts: Sequence[str],
    targets: npt.NDArray[np.int64],
    val: tuple[Sequence[str], npt.NDArray[np.int64]],
    outliers: Sequence[str],
    options: UnlabeledOptions,
    states_of: StatesOf | None = None,
) -> Trained:
    """Train the top ``train_layers`` layers and the head, as the attack classifier does.

    ``states_of`` gives the frozen lower layers' output for windows (the benchmark passes a
    cache shared by every task of a corpus); by default it is computed batch by batch.
    """
    torch = import_torch()
    config = options.train
    set_seed(config.seed)
    rng = random.Random(config.seed)
    started = time.monotonic()
    prefix = FrozenPrefix(
        classifier, encoder, min(config.train_layers, len(classifier.encoder.encoder.layer))
    )
    prefix.set_attention_dropout(config.attention_dropout)
    if states_of is None:
        states_of = partial(prefix.states, batch_size=config.eval_batch_size)
    docs = _windows(encoder, texts)
    outlier_windows = [w[0] for w in _windows(encoder, outliers)]
    val_encoded = encoder.encode(val[0])
    val_states = states_of(val_encoded.windows)
    optimizer = torch.optim.AdamW(
        prefix.trainable(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    per_epoch = math.ceil(len(docs) / config.batch_size)
    total = (
        per_epoch * config.epochs
        if config.max_steps is None
        else min(per_epoch * config.epochs, config.max_steps)
    )
    warmup = max(1, int(total * config.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup)),
    )
    best: tuple[float, Any] = (-1.0, None)
    steps = 0
    for epoch in range(1, config.epochs + 1):
        # One window per article and epoch: its first in the first epoch, then any of them.
        picks = [(d[0] if epoch == 1 else rng.choice(d), int(t)) for d, t in zip(docs, targets, strict=True)]
        rng.shuffle(picks)
        classifier.train()
        bar = tqdm(
            range(0, len(picks), config.batch_size), desc=f"epoch {epoch}/{config.epochs}", leave=False
        )
        for start in bar:
            chunk = picks[start : start + config.batch_size]
            labels = torch.tensor([t for _, t in chunk])
            states = states_of([w for w, _ in chunk])
            with autocast(config.bf16):
                logits = prefix.logits(states)
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            if outlier_windows:
                sample = rng.sample(outlier_windows, min(len(chunk), len(outlier_windows)))
                with autocast(config.bf16):
                    out_logits = prefix.logits(states_of(sample)).float()
                # Cross-entropy to the uniform distribution: KL(uniform || softmax) + log K.
                loss = loss + OE_WEIGHT * -torch.log_softmax(out_logits, dim=-1).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(prefix.trainable(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if steps >= total:
                break
        bar.close()
        logits = prefix.window_logits(val_states, config.eval_batch_size)
        owner, n = val_encoded.owner, val_encoded.n_texts
        doc_logits = np.stack([mean_per_owner(logits[:, c], owner, n) for c in range(logits.shape[1])], 1)
        accuracy = float((doc_logits.argmax(1) == val[1]).mean())
        log(f"epoch {epoch}: validation category accuracy {accuracy:.4f}")
        if accuracy > best[0]:
            best = (accuracy, copy.deepcopy(classifier.state_dict()))
        if steps >= total:
            break
    classifier.load_state_dict(best[1])
    classifier.eval()
    return Trained(classifier, best[0], time.monotonic() - started, steps, prefix)


def _article_stats(
    classifier: Any, encoder: Encoder, texts: Sequence[str], bf16: bool
) -> dict[str, npt.NDArray[np.float32]]:
    logits, owner = window_logits(classifier, encoder, texts, bf16)
    return {k: mean_per_owner(v, owner, len(texts)) for k, v in statistics(logits).items()}


def train_ood(options: UnlabeledOptions) -> Bundle:
    from training.labelfree import report as unlabeled_report

    seed = options.train.seed
    data = unlabeled.load_normal(options, seed)
    train_categories = categories_of(data.train, options.category_field)
    names = sorted(set(train_categories))
    if len(names) < 2:
        raise DataError(
            f"{data.train.source}: every normal article has {options.category_field} {names[0]!r}; --mode ood "
            "needs at least 2 normal categories (use --mode novelty for one)"
        )
    index = {name: i for i, name in enumerate(names)}
    val_categories = categories_of(data.val, options.category_field)
    unknown = sorted(set(val_categories) - set(names))
    if unknown:
        raise DataError(f"{data.val.source}: categories {unknown} do not occur in train")
    outliers: list[str] = []
    held_out: list[str] = []
    if options.outliers is not None:
        outlier_texts = [
            article_text(a.title, a.text) for a in read_articles(options.outliers) if clean(a.text)
        ]
        if len(outlier_texts) < 2:
            raise DataError(f"{options.outliers}: needs at least 2 outlier articles with text")
        random.Random(seed).shuffle(outlier_texts)
        n_held = max(1, len(outlier_texts) // 5)
        held_out, outliers = outlier_texts[:n_held], outlier_texts[n_held:]
        data.files.append(options.outliers)
    base, encoder_model, hf_tokenizer = unlabeled.load_base_model(options)
    with publishing(options.out, options.force) as folder:
        encoder, special = save_tokenizer(hf_tokenizer, folder, options.windowing)
        set_seed(seed)
        classifier = build_category_classifier(encoder_model, len(names))
        targets = np.asarray([index[c] for c in train_categories], dtype=np.int64)
        val_targets = np.asarray([index[c] for c in val_categories], dtype=np.int64)
        trained = fine_tune(
            classifier, encoder, data.train.texts, targets, (data.val.texts, val_targets), outliers, options
        )
        notes = list(data.notes)
        notes.append(
            f"normal categories ({options.category_field}): "
            + ", ".join(f"{n} {train_categories.count(n)}" for n in names)
            + f"; validation accuracy {trained.val_accuracy:.4f}; {trained.steps} steps in {trained.seconds:.0f} s"
        )
        if outliers:
            notes.append(
                f"outlier exposure: {len(outliers)} outlier articles, weight {OE_WEIGHT} ({options.outliers})"
            )
        bf16 = options.train.bf16
        val_stats = _article_stats(trained.classifier, encoder, data.val.texts, bf16)
        proxy: dict[str, float | None] = {}
        if held_out:
            out_stats = _article_stats(trained.classifier, encoder, held_out, bf16)
            for name in SCORES:
                labels = np.r_[np.zeros(len(data.val.texts)), np.ones(len(held_out))]
                proxy[name] = auroc(labels, np.r_[val_stats[name], out_stats[name]])
        if options.ood_score != "auto":
            score, rule = str(options.ood_score), "named by --ood-score"
        elif proxy:
            score = max(SCORES, key=lambda s: (proxy[s] or 0.0, s == "energy"))
            rule = f"higher AUROC of val against {len(held_out)} held-out outliers"
        else:
            score, rule = "energy", "no outliers to validate on: energy"
        test_auroc: dict[str, float | None] = {}
        if data.test is not None:
            test_stats = _article_stats(trained.classifier, encoder, data.test.texts, bf16)
            test_auroc = {name: auroc(data.test.labels, test_stats[name]) for name in SCORES}
        temperature, bias, quantile = unlabeled.false_alarm_calibration(
            val_stats[score], options.target_false_alarm_rate
        )
        notes.append(f"score: {score} ({rule}); raw {quantile:.5f} maps to 0.5")
        method = Method(
            name=score,
            description=(
                "1 - the largest softmax probability over the normal categories"
                if score == "msp"
                else "energy, -logsumexp of the category logits"
            ),
            encoder="fine-tuned",
            parameters={
                "categories": names,
                "category_field": options.category_field,
                "outlier_exposure": bool(outliers),
                "outlier_exposure_weight": OE_WEIGHT if outliers else 0.0,
                "selection": rule,
                "validation_auroc_by_score": proxy,
                "validation_accuracy": trained.val_accuracy,
            },
        )
        manifest = unlabeled.new_manifest(options, base, special, method, temperature, bias)
        graph = calibrated(ood_head(trained.classifier, score), temperature, bias)
        shipped = unlabeled.ship(graph, encoder, manifest, data, folder, options, keep_fp32=())
        extra = {"test_auroc_by_method": test_auroc} if test_auroc else {}
        unlabeled_report.finish(folder, manifest, options, data, shipped, notes, extra)
    return load_bundle(options.out)
