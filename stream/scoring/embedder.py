"""Sentence embeddings through ONNX Runtime, for grouping alerts into incidents.

An embedder is a folder like a bundle: ``model.onnx`` (mean-pooled, L2-normalized sentence
embeddings; inputs ``input_ids`` and ``attention_mask``, output ``embedding``), ``tokenizer.json``
and ``manifest.json`` with the sha256 of each file. `python -m training.ship.embedder` exports one from
all-MiniLM-L6-v2, a model trained for semantic similarity. It is a second model on purpose: the
bundle's encoder is fine-tuned to tell attacks from other news, which pulls every attack report
towards the same place, while incidents need two attacks told apart.

Only the first ``max_length`` tokens are embedded: the title and lead of a report say which
event it is about.
"""

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream.errors import BundleError, ScoringError
from stream.scoring.bundle import BaseModelInfo, TokenizerInfo, contained, sha256_file
from stream.scoring.encoding import Encoder, Windowing
from stream.scoring.providers import usable_cores

MANIFEST = "manifest.json"
OUTPUT = "embedding"
INPUTS = ["input_ids", "attention_mask"]

Vectors = npt.NDArray[np.float32]


class EmbedderManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    kind: Literal["embedder"] = "embedder"
    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    created_at: datetime
    base_model: BaseModelInfo
    max_length: int = Field(ge=8, le=512)
    pooling: Literal["mean"] = "mean"
    normalized: bool = True
    dim: int = Field(ge=1)
    tokenizer: TokenizerInfo = TokenizerInfo()
    precision: Literal["fp32", "int8"] = "fp32"
    export_max_abs_diff: float | None = None
    files: dict[str, str] = {}


def read_embedder_manifest(path: Path) -> EmbedderManifest:
    file = path / MANIFEST
    if not file.is_file():
        raise BundleError(
            f"{path}: not an embedder (no {MANIFEST}); export one with `python -m training.ship.embedder --out {path}`"
        )
    try:
        return EmbedderManifest.model_validate(json.loads(file.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as exc:
        raise BundleError(f"{file}: not an embedder manifest ({str(exc).splitlines()[0]})") from None


class Embedder:
    """Texts to unit vectors; thread-compatible (one ONNX Runtime session)."""

    def __init__(self, path: str | Path, *, threads: int = 0, batch_size: int = 16) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise BundleError(f"{self.path}: no such embedder folder")
        self.manifest = m = read_embedder_manifest(self.path)
        for name in ("model.onnx", m.tokenizer.file):
            if name not in m.files:
                raise BundleError(f"{self.path}: manifest lists no hash for required file {name}")
        for name, expected in m.files.items():
            file = contained(self.path, name)
            if not file.is_file():
                raise BundleError(f"{self.path}: incomplete embedder, {name} is missing")
            if sha256_file(file) != expected:
                raise BundleError(
                    f"{self.path}: {name} does not match the sha256 in {MANIFEST}; re-export it"
                )
        self.encoder = Encoder.from_file(
            self.path / m.tokenizer.file,
            Windowing(m.max_length, m.max_length - 2, 1),
            cls_token=m.tokenizer.cls_token,
            sep_token=m.tokenizer.sep_token,
            pad_token=m.tokenizer.pad_token,
        )
        self.batch_size = batch_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or usable_cores()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types
            raise BundleError(f"{self.path / 'model.onnx'}: ONNX Runtime cannot load it ({exc})") from None
        names = sorted(i.name for i in self.session.get_inputs())
        if names != sorted(INPUTS) or OUTPUT not in [o.name for o in self.session.get_outputs()]:
            raise BundleError(f"{self.path / 'model.onnx'}: expected inputs {INPUTS} and output {OUTPUT!r}")

    @property
    def label(self) -> str:
        return self.manifest.name

    @property
    def dim(self) -> int:
        return self.manifest.dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit vector per text (an empty text gets the embedding of [CLS] [SEP])."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encoded = self.encoder.encode(texts)  # one window per text: the first max_length tokens
        for batch in self.encoder.batches(encoded, self.batch_size):
            feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
            try:
                (vectors,) = self.session.run([OUTPUT], feeds)
            except Exception as exc:
                raise ScoringError(
                    f"the embedder failed on a batch of shape {batch.input_ids.shape}: {exc}"
                ) from exc
            out[encoded.owner[batch.rows]] = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        normalized: Vectors = out / np.maximum(norms, 1e-12)
        return normalized
