"""Serving throughput of a novelty bundle against a classifier bundle of the same encoder.

Both graphs are built here from the same base weights and exported the same way (fp32, and int8
with the encoder quantized); the novelty graph carries a full memory bank (the default bound,
filled with real normal windows), the classifier graph the classifier's linear head. Each is
scored by stream.scoring.scorer.Scorer, the service's own scoring code, on the same articles, in
alternating rounds; the best round of each counts, since other work on the machine only ever
slows a round down.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from stream.scoring.bundle import (
    MANIFEST,
    BaseModelInfo,
    Calibration,
    LongText,
    Manifest,
    Method,
    load_bundle,
    sha256_file,
)
from stream.scoring.encoding import Encoder
from stream.scoring.scorer import Scorer
from stream.scoring.text import PREPROCESSING_VERSION
from training.embedding import build_pooler
from training.labelfree import detectors
from training.labelfree.base import UnlabeledOptions, head_nodes
from training.labelfree.novelty import novelty_graph
from training.model import build_classifier, calibrated, import_torch
from training.ship import export

BANK_SIZE = UnlabeledOptions.bank_size  # the worst case of the default bound


@dataclass
class Throughput:
    precision: str
    classifier: float  # articles/s
    novelty: float

    @property
    def ratio(self) -> float:
        return self.novelty / self.classifier


def _bundle(
    folder: Path, graph: Any, encoder: Encoder, example: list[str], precision: str, mode: str
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    batch = next(encoder.batches(encoder.encode(example), 8))
    fp32 = folder / "fp32.onnx"
    export.export_onnx(graph, fp32, batch)
    if precision == "int8":
        export.quantize_int8(
            fp32,
            folder / "model.onnx",
            nodes_to_exclude=head_nodes(fp32, ("normal_bank_t", "normal_mean", "normal_whitening")),
        )
        fp32.unlink()
    else:
        fp32.rename(folder / "model.onnx")
    w = encoder.windowing
    manifest = Manifest(
        name=f"{mode}-throughput",
        version="0",
        created_at=datetime.now(UTC),
        mode=mode,
        method=Method(name="hybrid", bank_size=BANK_SIZE, bank_bound=BANK_SIZE)
        if mode == "novelty"
        else None,
        base_model=BaseModelInfo(name="bench"),
        labels=["normal", "anomaly"],
        max_length=w.max_length,
        long_text=LongText(
            strategy="chunk_mean_logit" if mode == "novelty" else "chunk_max",
            stride=w.stride,
            max_windows=w.max_windows,
        ),
        preprocessing_version=PREPROCESSING_VERSION,
        threshold=0.5,
        threshold_rule="benchmark only",
        precision=precision,
        quantization="dynamic" if precision == "int8" else None,
        precision_reason="benchmark",
        calibration=Calibration(temperature=1.0),
    )
    manifest.files = {f: sha256_file(folder / f) for f in ("model.onnx", "tokenizer.json")}
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2))
    return folder


def _rate(scorer: Scorer, texts: list[str]) -> float:
    scorer.score(texts[:8])  # warm-up
    started = time.perf_counter()
    for start in range(0, len(texts), 64):
        scorer.score(texts[start : start + 64])
    return len(texts) / (time.perf_counter() - started)


def measure(
    base_model: Any,
    encoder: Encoder,
    tokenizer_file: Path,
    bank: np.ndarray,
    texts: list[str],
    folder: Path,
    rounds: int = 3,
) -> list[Throughput]:
    import shutil

    torch = import_torch()
    torch.manual_seed(0)
    # The shipped default head (kNN and Mahalanobis); the bank's last eighth sets its units.
    vectors = bank.astype(np.float32)
    hybrid = detectors.fit_hybrid(vectors, vectors[-max(2, len(vectors) // 8) :], k=10, bank_size=BANK_SIZE)
    graphs = {
        "classifier": calibrated(build_classifier(base_model), 1.0, 0.0),
        "novelty": novelty_graph(build_pooler(base_model), hybrid, 1.0, -3.0),
    }
    results = []
    for precision in ("int8", "fp32"):
        scorers = {}
        for mode, graph in graphs.items():
            target = folder / f"{mode}-{precision}"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tokenizer_file, target / "tokenizer.json")
            scorers[mode] = Scorer(
                load_bundle(_bundle(target, graph, encoder, texts[:8], precision, mode)), providers="cpu"
            )
        best = dict.fromkeys(scorers, 0.0)
        for _ in range(rounds):
            for mode, scorer in scorers.items():
                best[mode] = max(best[mode], _rate(scorer, texts))
        results.append(Throughput(precision, best["classifier"], best["novelty"]))
    return results
