"""What the label-free modes (novelty, ood) share: the normal data, the false-alarm calibration,
and shipping a graph as a bundle (export, validation, int8, threshold, report, manifest).

The bundle contract is the classifier's: token ids in, one ``score`` in [0, 1] per window out;
the article's score is the mean over its windows in log-odds (``chunk_mean_logit``, see
unlabeled_report). The anomaly statistic (a distance, an uncertainty) is calibrated inside the
graph: score = sigmoid(raw / temperature + bias), so the article's score is the calibration of
its windows' mean statistic. The threshold sits at the quantile of held-out normal articles that
gives the target false-alarm rate, so a score says "more unusual than this share of normal
news", whatever the method.
"""

import math
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.arguments import DEFAULT_BOOTSTRAP_SERVERS
from stream.errors import ConfigError, DataError
from stream.scoring.articles import Article, read_articles
from stream.scoring.bundle import (
    BaseModelInfo,
    Calibration,
    LongText,
    Manifest,
    Method,
    TokenizerInfo,
)
from stream.scoring.encoding import Encoder, Windowing
from stream.scoring.evaluate import score_articles
from stream.scoring.metrics import Metrics, at_threshold
from stream.scoring.text import PREPROCESSING_VERSION, article_text, clean
from training.data.prepare import split_file
from training.finetune import TrainConfig
from training.model import DEFAULT_BASE_MODEL, BaseWeights, load_base, resolve_base_model
from training.ship import export
from training.ship import graph as shipping

FloatArray = npt.NDArray[np.float32]
VAL_SHARE = 0.15  # of the normal articles, held out for the calibration when no val file is given
# Tolerances for shipping int8 without a labeled test set: agreement with fp32 on validation.
INT8_SCORE_TOLERANCE = 0.02
MIN_TEMPERATURE = 2.5e-3  # relative to the statistic's scale; see false_alarm_calibration


@dataclass
class UnlabeledOptions:
    mode: Literal["novelty", "ood"]
    out: Path
    data: Path | None = None
    base_model: str = DEFAULT_BASE_MODEL
    name: str | None = None
    version: str = "1.0.0"
    windowing: Windowing = field(default_factory=Windowing)
    target_false_alarm_rate: float = 0.01
    # novelty
    method: Literal["auto", "knn", "mahalanobis", "hybrid"] = "hybrid"
    k: int = 10
    # 8,192: with int8, where each window is its own ONNX Runtime call, a 16,384-window bank
    # (25 MB read per window) cost 5-14% of serving throughput against a classifier of the same
    # encoder over three runs, 8,192 under 1%.
    bank_size: int = 8192
    encoder: Literal["frozen", "adapted"] = "frozen"
    adapt_steps: int = 60
    # the normal set from a topic's recent history instead of DATA/train
    from_topic: str | None = None
    limit: int = 5000
    bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    kafka: dict[str, str] = field(default_factory=dict)
    # ood
    category_field: str = "category"
    outliers: Path | None = None
    ood_score: Literal["auto", "msp", "energy"] = "auto"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, learning_rate=5e-5))
    quantize: bool = True
    force: bool = False
    threads: int = 0


@dataclass
class Split:
    name: str
    articles: list[Article]
    source: str  # a file path, or topic@bootstrap

    @property
    def texts(self) -> list[str]:
        return [article_text(a.title, a.text) for a in self.articles]

    @property
    def labels(self) -> npt.NDArray[np.int64]:
        return np.asarray([a.label or 0 for a in self.articles], dtype=np.int64)


@dataclass
class NormalData:
    train: Split
    val: Split
    test: Split | None
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def log(message: str) -> None:
    tqdm.write(message)


def _normal_only(articles: list[Article], where: str) -> list[Article]:
    anomalous = [a.id for a in articles if a.label == 1]
    if anomalous:
        raise DataError(
            f"{where}: {len(anomalous)} article(s) have label 1 (anomaly), e.g. id {anomalous[0]!r}; "
            "the normal set holds normal articles only (label 0 or no label)"
        )
    empty = [a.id for a in articles if not clean(a.text)]
    if empty:
        raise DataError(f"{where}: {len(empty)} article(s) have no text after cleaning, e.g. id {empty[0]!r}")
    return articles


def _carve(articles: list[Article], seed: int) -> tuple[list[Article], list[Article]]:
    shuffled = list(articles)
    random.Random(seed).shuffle(shuffled)
    n_val = max(1, round(len(shuffled) * VAL_SHARE))
    return shuffled[n_val:], shuffled[:n_val]


def load_normal(options: UnlabeledOptions, seed: int) -> NormalData:
    """train and val (normal only) and an optional labeled test split, from files or a topic."""
    notes: list[str] = []
    files: list[Path] = []
    if options.data is not None and not options.data.is_dir():
        raise DataError(f"{options.data}: no such folder")
    if options.from_topic is not None:
        from training.data.topic import read_recent

        history = read_recent(
            options.bootstrap_servers, options.from_topic, options.limit, kafka=options.kafka
        )
        source = f"{options.from_topic}@{options.bootstrap_servers}"
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(history.skipped.items()))
        notes.append(
            f"normal set: the newest {history.read} messages of topic {options.from_topic!r} "
            f"({len(history.articles)} articles" + (f"; skipped {skipped}" if skipped else "") + ")"
        )
        if len(history.articles) < 2:
            raise DataError(
                f"topic {options.from_topic!r}: {len(history.articles)} valid article(s) in the newest "
                f"{history.read} messages; need at least 2 (train and val)"
            )
        train, val = _carve(history.articles, seed)
        train_split, val_split = Split("train", train, source), Split("val", val, source)
    else:
        if options.data is None:
            raise ConfigError("give --data DIR (train, val, test files) or --from-topic TOPIC")
        train_path = split_file(options.data, "train")
        if train_path is None:
            raise DataError(f"{options.data}: no train.jsonl or train.csv: no normal data to learn from")
        files.append(train_path)
        train = _normal_only(read_articles(train_path), str(train_path))
        val_path = split_file(options.data, "val")
        if val_path is None:
            train, val = _carve(train, seed)
            notes.append(f"no val file: {len(val)} of the train articles were held out for the calibration")
            val_source = str(train_path)
        else:
            files.append(val_path)
            val = _normal_only(read_articles(val_path), str(val_path))
            val_source = str(val_path)
        train_split, val_split = Split("train", train, str(train_path)), Split("val", val, val_source)
    test_split = None
    test_path = split_file(options.data, "test") if options.data is not None else None
    if test_path is not None:
        files.append(test_path)
        test = read_articles(test_path, require_label=True)
        test_split = Split("test", [a for a in test if clean(a.text)], str(test_path))
    else:
        notes.append("no test file: the bundle carries no held-out metrics")
    needed = math.ceil(1.0 / options.target_false_alarm_rate)
    if len(val_split.articles) < needed:
        # With fewer, the quantile is past the largest val score: an extrapolation the data
        # cannot check (on bench-ad's Reuters ship task, 16 val articles, 54% of the normal
        # test articles alerted).
        notes.append(
            f"warning: val has {len(val_split.articles)} normal articles; a false-alarm rate of "
            f"{options.target_false_alarm_rate:.1%} needs at least {needed} to be measured, so the "
            "threshold is a guess: give more held-out normal articles or a higher rate"
        )
        log(notes[-1])
    return NormalData(train_split, val_split, test_split, notes, files)


# --- calibration -------------------------------------------------------------------------------


def false_alarm_calibration(val_raw: npt.ArrayLike, rate: float) -> tuple[float, float, float]:
    """(temperature, bias, quantile) with sigmoid(raw / temperature + bias) = 0.5 at the quantile.

    The quantile is the raw value that `rate` of the held-out normal articles reach; the
    temperature makes the median normal article score 0.01, so scores spread over [0, 1].
    """
    raw = np.sort(np.asarray(val_raw, dtype=np.float64))
    if not 0.0 < rate < 0.5:
        raise ConfigError("--target-false-alarm-rate must be in (0, 0.5)")
    # The smallest raw value that at most `rate` of the normal articles reach: halfway
    # between the last article below the threshold and the first at or above it.
    n_alarms = math.floor(rate * len(raw))
    upper = raw[len(raw) - n_alarms] if n_alarms else raw[-1] + max(1e-6, float(np.std(raw)) * 0.1)
    lower = raw[len(raw) - n_alarms - 1]
    quantile = (lower + upper) / 2
    spread = quantile - float(np.median(raw))
    # The floor keeps the sigmoid from turning fp32 rounding of the statistic (about 1e-6 of
    # its scale) into visible score noise when normal articles are nearly indistinguishable;
    # it never moves the threshold, which sits at the quantile whatever the temperature.
    temperature = max(spread / math.log(99.0), MIN_TEMPERATURE * max(1.0, abs(quantile)))
    return float(temperature), float(-quantile / temperature), float(quantile)


def far_threshold(val_scores: npt.ArrayLike, rate: float) -> float:
    """The lowest threshold at which at most `rate` of the validation articles alert."""
    scores = np.sort(np.asarray(val_scores, dtype=np.float64))
    n_alarms = math.floor(rate * len(scores))
    if n_alarms == 0:
        return float(np.nextafter(np.float32(scores[-1]), np.float32(np.inf)))
    return float(scores[len(scores) - n_alarms])


def false_alarm_rate(normal_scores: npt.ArrayLike, threshold: float) -> float:
    scores = np.asarray(normal_scores, dtype=np.float64)
    return float((scores >= threshold).mean()) if len(scores) else 0.0


# --- shipping ----------------------------------------------------------------------------------


@dataclass
class Shipped:
    precision: Literal["int8", "fp32"]
    reason: str
    threshold: float
    val_scores: FloatArray
    test_scores: FloatArray | None
    metrics: dict[str, Metrics]  # "model", "model fp32", "model int8" on test
    max_diff: float


def load_base_model(options: UnlabeledOptions) -> tuple[BaseWeights, Any, Any]:
    from training.model import import_torch

    torch = import_torch()
    if options.threads:
        torch.set_num_threads(options.threads)
    base = resolve_base_model(options.base_model)
    model, tokenizer = load_base(base)
    return base, model, tokenizer


def new_manifest(
    options: UnlabeledOptions,
    base: BaseWeights,
    special: TokenizerInfo,
    method: Method,
    temperature: float,
    bias: float,
) -> Manifest:
    w = options.windowing
    return Manifest(
        name=options.name or options.out.name,
        version=options.version,
        created_at=datetime.now(UTC),
        mode=options.mode,
        method=method,
        base_model=BaseModelInfo(name=options.base_model, sha256=base.sha256),
        labels=["normal", "anomaly"],
        max_length=w.max_length,
        long_text=LongText(strategy="chunk_mean_logit", stride=w.stride, max_windows=w.max_windows),
        preprocessing_version=PREPROCESSING_VERSION,
        tokenizer=special,
        threshold=0.5,
        threshold_rule=(
            f"lowest score at which at most {options.target_false_alarm_rate:.2%} of the held-out "
            "normal articles (val) alert"
        ),
        precision="fp32",
        precision_reason="pending",
        calibration=Calibration(
            method="false_alarm_quantile",
            temperature=temperature,
            bias=bias,
            target_false_alarm_rate=options.target_false_alarm_rate,
        ),
    )


def head_nodes(model_path: Path, buffer_names: Sequence[str]) -> list[str]:
    """Names of the graph nodes that read the given buffers: kept in fp32 when quantizing."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    names = {i.name for i in graph.initializer if any(b in i.name for b in buffer_names)}
    return [n.name for n in graph.node if names.intersection(n.input)]


def ship(
    graph: Any,
    encoder: Encoder,
    manifest: Manifest,
    data: NormalData,
    folder: Path,
    options: UnlabeledOptions,
    keep_fp32: Sequence[str],
) -> Shipped:
    """Export, validate, quantize; threshold each precision on val; pick the one to ship."""
    check = encoder.encode((data.val.texts + (data.test.texts if data.test else []))[:48])
    batches = list(encoder.batches(check, 16))
    log("exporting to ONNX and validating against PyTorch")
    files = {"fp32": folder / "model.fp32.onnx"}
    export.export_onnx(graph, files["fp32"], batches[0])
    max_diff = export.validate_onnx(graph, files["fp32"], batches)
    if options.quantize:
        log("quantizing the encoder to int8 (dynamic, per channel; the anomaly head stays fp32)")
        files["int8"] = folder / "model.int8.onnx"
        export.quantize_int8(
            files["fp32"], files["int8"], nodes_to_exclude=head_nodes(files["fp32"], keep_fp32)
        )
    staging = shipping.Staging(folder, manifest, options.threads)
    rate = options.target_false_alarm_rate
    scored: dict[str, tuple[float, FloatArray, FloatArray | None]] = {}
    metrics: dict[str, Metrics] = {}
    for precision, path in files.items():
        scorer = staging.scorer(path, precision, "dynamic")  # type: ignore[arg-type]
        val_scores = score_articles(scorer, data.val.articles).scores
        threshold = far_threshold(val_scores, rate)
        test_scores = score_articles(scorer, data.test.articles).scores if data.test else None
        scored[precision] = (threshold, val_scores, test_scores)
        if data.test is not None and test_scores is not None:
            metrics[f"model {precision}"] = at_threshold(data.test.labels, test_scores, threshold)
    precision, reason = _choose_precision(scored, metrics)
    shutil.copyfile(files[precision], folder / "model.onnx")
    manifest.precision = precision  # type: ignore[assignment]
    manifest.quantization = "dynamic" if precision == "int8" else None
    for path in files.values():
        path.unlink()
    threshold, val_scores, test_scores = scored[precision]
    if data.test is not None:
        metrics["model"] = metrics[f"model {precision}"]
    return Shipped(precision, reason, threshold, val_scores, test_scores, metrics, max_diff)  # type: ignore[arg-type]


def _choose_precision(
    scored: dict[str, tuple[float, FloatArray, FloatArray | None]], metrics: dict[str, Metrics]
) -> tuple[str, str]:
    if "int8" not in scored:
        return "fp32", "int8 quantization disabled"
    if "model int8" in metrics:
        candidates = {
            p: shipping.Candidate(p, Path(), scored[p][0], "", metrics[f"model {p}"])
            for p in ("fp32", "int8")
        }
        # Label-free bundles have anomalies in test only, so the gate reads test.
        return shipping.choose_precision(candidates, where="test")  # type: ignore[arg-type]
    diff = float(np.abs(scored["int8"][1] - scored["fp32"][1]).mean())
    if diff <= INT8_SCORE_TOLERANCE:
        return "int8", f"no labeled test set; int8 scores within {diff:.4f} of fp32 on val (mean |diff|)"
    return "fp32", f"no labeled test set; int8 scores differ from fp32 by {diff:.4f} on val (mean |diff|)"
