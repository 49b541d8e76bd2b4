"""From a calibrated PyTorch model to the ONNX file a bundle ships: export, validate, quantize, choose.

int8 is dynamic by default (weights int8, activation ranges measured per call, so the scorer runs
it one window per call) or static (QDQ: activation ranges calibrated at export on training windows
and fixed in the graph, so it batches as freely as fp32). Static lost 0.028 validation F1 on the
modern-news model while dynamic stayed within 0.006, and trying static first cost every training
run its calibration and a validation pass; it stays available as `--int8 static`, with dynamic as
its fallback. int8 ships only when its F1 and AUROC on the validation articles that pick the
threshold stay within INT8_TOLERANCE of fp32; each candidate gets its own
threshold there, so the comparison is at each one's best. The choice is made on validation, like
every other choice, and the test split is scored once, by the shipped model.
"""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stream.errors import ConfigError
from stream.scoring.bundle import MANIFEST, Manifest, load_bundle, sha256_file
from stream.scoring.encoding import Encoder
from stream.scoring.evaluate import score_articles
from stream.scoring.metrics import Metrics, at_threshold, best_f1_threshold, precision_threshold
from stream.scoring.scorer import Scorer
from training.ship import export

Precision = Literal["int8", "fp32"]
Quantization = Literal["static", "dynamic"]
INT8_TOLERANCE = 0.01
# Training texts whose windows calibrate the int8 activation ranges: spread over the file.
CALIBRATION_TEXTS = 256
# Validation articles scored through ONNX Runtime to confirm training's fp32 scores before they
# stand in for a full pass, and how far apart the two may be: ten times the export check's, as
# training scores validation with the top layers over cached states of the frozen ones, which
# rounds differently (2.3e-4 at most on the default data's sample).
REUSE_SAMPLE = 64
REUSE_ATOL = 10 * export.ATOL


@dataclass
class Candidate:
    """One exported precision, evaluated."""

    precision: Precision
    path: Path
    threshold: float
    rule: str
    val: Metrics
    quantization: Quantization | None = None
    scores: npt.NDArray[np.float32] | None = None  # on those validation articles


def choose_threshold(
    labels: npt.NDArray[np.int64], scores: npt.NDArray[np.floating], target: float | None
) -> tuple[float, str]:
    if target is None:
        return best_f1_threshold(labels, scores), "maximum F1 on validation"
    threshold = precision_threshold(labels, scores, target)
    if threshold is None:
        raise ConfigError(f"no threshold reaches precision {target} on validation; lower --target-precision")
    return threshold, f"lowest threshold reaching precision {target} on validation"


def choose_precision(
    candidates: dict[Precision, Candidate], where: str = "validation"
) -> tuple[Precision, str]:
    if "int8" not in candidates:
        return "fp32", "int8 quantization disabled"
    fp32, int8 = candidates["fp32"].val, candidates["int8"].val
    d_f1 = abs(int8.f1 - fp32.f1)
    d_auroc = abs((int8.auroc or 0.0) - (fp32.auroc or 0.0))
    diffs = f"F1 diff {d_f1:.4f}, AUROC diff {d_auroc:.4f}"
    if d_f1 <= INT8_TOLERANCE and d_auroc <= INT8_TOLERANCE:
        return "int8", f"int8 within {INT8_TOLERANCE} of fp32 on {where} ({diffs})"
    return "fp32", f"int8 lost too much on {where} ({diffs}, limit {INT8_TOLERANCE})"


class Staging:
    """The bundle folder being built: each candidate is scored through a real load_bundle."""

    def __init__(self, folder: Path, manifest: Manifest, threads: int) -> None:
        self.folder = folder
        self.manifest = manifest
        self.threads = threads

    def scorer(self, model: Path, precision: Precision, quantization: Quantization = "static") -> Scorer:
        """A scorer on `model` as the bundle would ship it; `quantization` says how an int8 file
        was made (the scorer batches static int8 and runs dynamic int8 one window per call)."""
        self.manifest.precision = precision
        self.manifest.quantization = quantization if precision == "int8" else None
        shutil.copyfile(model, self.folder / "model.onnx")
        self.manifest.files = {
            f: sha256_file(self.folder / f) for f in ("model.onnx", self.manifest.tokenizer.file)
        }
        (self.folder / MANIFEST).write_text(self.manifest.model_dump_json(indent=2))
        return Scorer(load_bundle(self.folder), providers="cpu", intra_op_threads=self.threads)


def calibration_sample(texts: list[str], n: int = CALIBRATION_TEXTS) -> list[str]:
    """n texts spread evenly over the list (files are often grouped by source)."""
    step = max(1, len(texts) // n)
    return texts[::step][:n]


def export_candidates(
    graph: Any,
    encoder: Encoder,
    check_texts: list[str],
    folder: Path,
    static_int8: bool,
    log: Callable[[str], None],
    calibration_texts: list[str] | None = None,
) -> tuple[dict[Precision, Path], float, int]:
    """fp32 (validated against PyTorch) and, when asked, static int8 files; the max difference and
    windows checked.

    calibration_texts (training texts, never the split that is evaluated) calibrate int8; the
    check texts stand in when none are given.
    """
    log("exporting to ONNX and validating against PyTorch")
    fp32 = folder / "model.fp32.onnx"
    check = encoder.encode(check_texts)
    batches = list(encoder.batches(check, 16))
    export.export_onnx(graph, fp32, batches[0])
    max_diff = export.validate_onnx(graph, fp32, batches)
    files: dict[Precision, Path] = {"fp32": fp32}
    if static_int8:
        sample = calibration_sample(calibration_texts or check_texts)
        windows = encoder.encode(sample)
        log(
            f"quantizing to int8 (static, calibrated on {len(windows.windows)} windows of {len(sample)} texts)"
        )
        files["int8"] = folder / "model.int8.onnx"
        export.quantize_static_int8(fp32, files["int8"], list(encoder.batches(windows, 16)))
    return files, max_diff, len(check.windows)


def evaluate_candidates(
    staging: Staging,
    files: dict[Precision, Path],
    val: tuple[list[Any], npt.NDArray[np.int64]],
    target_precision: float | None,
    log: Callable[[str], None],
    fp32_scores: npt.NDArray[np.float32] | None = None,
) -> dict[Precision, Candidate]:
    """Each candidate's threshold and metrics on the validation articles that pick thresholds.

    fp32_scores: the PyTorch model's scores of those articles, when training already computed them
    in fp32. The fp32 file was validated against that model, so scoring every article again through
    ONNX Runtime (minutes on 2 cores) only repeats them; a spread sample is scored to confirm it.
    """
    candidates: dict[Precision, Candidate] = {}
    for precision, path in files.items():
        if precision == "fp32" and fp32_scores is not None:
            found = _reuse(staging, path, val, fp32_scores, target_precision, log)
            if found is not None:
                candidates[precision] = found
                continue
        quantization: Quantization | None = "static" if precision == "int8" else None
        candidates[precision] = _evaluate(staging, precision, path, quantization, val, target_precision)
    return candidates


def _reuse(
    staging: Staging,
    path: Path,
    val: tuple[list[Any], npt.NDArray[np.int64]],
    scores: npt.NDArray[np.float32],
    target_precision: float | None,
    log: Callable[[str], None],
) -> Candidate | None:
    """The fp32 candidate from scores already computed, or None where ONNX Runtime disagrees."""
    articles, labels = val
    sample = np.unique(np.linspace(0, len(articles) - 1, min(REUSE_SAMPLE, len(articles))).astype(np.int64))
    onnx = score_articles(staging.scorer(path, "fp32"), [articles[i] for i in sample]).scores
    worst = float(np.abs(onnx - scores[sample]).max())
    if not worst <= REUSE_ATOL:
        log(f"fp32: training's validation scores differ from ONNX by {worst:.2e}; scoring them all again")
        return None
    log(f"fp32: reusing training's validation scores (within {worst:.1e} of ONNX on {len(sample)} articles)")
    return _candidate("fp32", path, None, labels, scores.astype(np.float32), target_precision)


def dynamic_candidate(
    staging: Staging,
    candidates: dict[Precision, Candidate],
    val: tuple[list[Any], npt.NDArray[np.int64]],
    target_precision: float | None,
) -> Candidate:
    """Dynamic int8 from the fp32 file: it runs one window per call, but on CPUs without VNNI it
    is still faster than fp32 in batches."""
    path = candidates["fp32"].path.with_name("model.int8-dynamic.onnx")
    export.quantize_int8(candidates["fp32"].path, path)
    return _evaluate(staging, "int8", path, "dynamic", val, target_precision)


def _evaluate(
    staging: Staging,
    precision: Precision,
    path: Path,
    quantization: Quantization | None,
    val: tuple[list[Any], npt.NDArray[np.int64]],
    target_precision: float | None,
) -> Candidate:
    """One file scored through a real bundle: its threshold, metrics and scores on val."""
    articles, labels = val
    scorer = staging.scorer(path, precision, quantization or "static")
    val_scores = score_articles(scorer, articles).scores
    return _candidate(precision, path, quantization, labels, val_scores, target_precision)


def _candidate(
    precision: Precision,
    path: Path,
    quantization: Quantization | None,
    labels: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    target_precision: float | None,
) -> Candidate:
    threshold, rule = choose_threshold(labels, scores, target_precision)
    metrics = at_threshold(labels, scores, threshold)
    return Candidate(precision, path, threshold, rule, metrics, quantization, scores)
