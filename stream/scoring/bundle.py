"""The model bundle: the contract between training and serving.

A bundle is a folder holding ``model.onnx``, ``tokenizer.json``, ``manifest.json``, ``report.md``,
plots and (since the canary was added) ``canary.jsonl``. ``manifest.json`` (the Manifest below)
says how to turn an article into model input and how to read the output; it records the sha256 of
every other file, and loading verifies them, so a corrupt or half-copied bundle fails at startup
instead of scoring garbage. The canary set (stream.scoring.canary) then checks that the model scores
here as it did at export.
"""

import hashlib
import json
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stream.errors import BundleError
from stream.scoring.drift import ScoreDistribution
from stream.scoring.encoding import HEAD_FEATURES, Windowing
from stream.scoring.metrics import Metrics
from stream.scoring.text import PREPROCESSING_VERSION

MANIFEST = "manifest.json"
SCHEMA_VERSION: Literal[1] = 1
REQUIRED_FILES = ("model.onnx", "tokenizer.json")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class BaseModelInfo(_Strict):
    name: str
    sha256: str | None = None


class DocHead(_Strict):
    """score = sigmoid(weights . features + bias) over an article's window log-odds (stream.scoring.encoding)."""

    features: list[Literal["lead", "max", "mean", "windows"]] = Field(min_length=1)
    weights: list[float] = Field(min_length=1)
    bias: float = 0.0

    @model_validator(mode="after")
    def _one_weight_per_feature(self) -> "DocHead":
        if list(self.features) != list(HEAD_FEATURES[: len(self.features)]):
            raise ValueError(f"features must be {list(HEAD_FEATURES)} in this order (a prefix of it)")
        if len(self.weights) != len(self.features):
            raise ValueError(f"{len(self.features)} features but {len(self.weights)} weights")
        return self


class LongText(_Strict):
    strategy: Literal["chunk_max", "chunk_mean", "chunk_mean_logit", "doc_head"] = "chunk_max"
    stride: int = Field(gt=0)
    max_windows: int = Field(ge=1)
    head: DocHead | None = None  # the doc_head strategy's weights, fitted on validation
    # Lead first: an article whose lead window alone scores below this (through the head, as a
    # one-window text) is scored by its lead alone, and its other windows are never read. The
    # trainer sets it where no other windows, up to the most alarming the model gave on
    # validation, could lift the article to the threshold (training/classifier/doc_head.py):
    # most long articles are calm from their first paragraph, and their later windows were
    # two thirds of a long article's model calls. None reads every window.
    read_more_above: float | None = Field(default=None, gt=0, lt=1)

    @model_validator(mode="after")
    def _head_with_doc_head(self) -> "LongText":
        if (self.strategy == "doc_head") != (self.head is not None):
            raise ValueError("long_text.head is required with strategy doc_head, and only with it")
        if self.read_more_above is not None and self.head is None:
            raise ValueError("long_text.read_more_above needs the doc_head strategy")
        return self


class Calibration(_Strict):
    """score = sigmoid(logit / temperature + bias), fitted on validation; part of the graph.

    ``temperature`` fits it by log loss on labeled validation data (classifier mode);
    ``false_alarm_quantile`` puts the threshold's raw value at the quantile of held-out normal
    articles that gives the target false-alarm rate (novelty and ood modes, where ``logit``
    is the method's raw anomaly statistic).
    """

    method: Literal["temperature", "false_alarm_quantile"] = "temperature"
    temperature: float = Field(gt=0)
    bias: float = 0.0
    target_false_alarm_rate: float | None = Field(default=None, gt=0, lt=1)


class Method(_Strict):
    """How a novelty or ood bundle turns a window's embedding into its raw anomaly statistic."""

    name: str = Field(min_length=1)  # e.g. "knn", "mahalanobis", "energy", "msp"
    description: str = ""
    encoder: Literal["frozen", "adapted", "fine-tuned"] = "frozen"
    parameters: dict[str, Any] = {}
    # The memory bank of normal window embeddings (knn): its size, and the bound it is kept under.
    bank_size: int | None = Field(default=None, ge=1)
    bank_bound: int | None = Field(default=None, ge=1)


class TokenizerInfo(_Strict):
    file: str = "tokenizer.json"
    cls_token: str = "[CLS]"
    sep_token: str = "[SEP]"
    pad_token: str = "[PAD]"


class CanaryInfo(_Strict):
    """Texts the shipped model scored at export, and how far a score may move when re-scored."""

    file: str = "canary.jsonl"
    count: int = Field(ge=1)
    tolerance: float = Field(0.02, gt=0, le=1)


class Manifest(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    created_at: datetime
    # classifier: supervised probability; novelty: distance to normal news; ood: multi-class
    # classifier on normal categories, uncertainty as the anomaly. Old manifests are classifiers.
    mode: Literal["classifier", "novelty", "ood"] = "classifier"
    method: Method | None = None
    base_model: BaseModelInfo
    labels: list[str] = Field(min_length=2, max_length=2)
    max_length: int = Field(ge=8, le=4096)
    long_text: LongText
    preprocessing_version: str
    tokenizer: TokenizerInfo = TokenizerInfo()
    threshold: float = Field(ge=0.0, le=1.0)
    threshold_rule: str
    inputs: list[str] = ["input_ids", "attention_mask"]
    output: str = "score"
    precision: Literal["int8", "fp32"]
    # How int8 was made: "static" scales are fixed at export, so a window scores the same in any
    # batch; "dynamic" ones are computed per call. Bundles from before static quantization have
    # none and were dynamic.
    quantization: Literal["static", "dynamic"] | None = None
    precision_reason: str
    calibration: Calibration
    # metrics[split][system], e.g. metrics["test"]["model"], metrics["stream"]["baseline"].
    metrics: dict[str, dict[str, Metrics]] = {}
    extra_metrics: dict[str, Any] = {}
    training: dict[str, Any] = {}
    data_files: dict[str, str] = {}
    files: dict[str, str] = {}
    packages: dict[str, str] = {}
    canary: CanaryInfo | None = None  # bundles exported before the canary have none
    # The shipped model's validation scores, the reference of drift (stream.scoring.drift); older bundles have none.
    score_distribution: ScoreDistribution | None = None
    # Languages of the training text (ISO 639-1); none named means English only.
    languages: list[str] | None = None

    @property
    def windowing(self) -> Windowing:
        return Windowing(self.max_length, self.long_text.stride, self.long_text.max_windows)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Bundle:
    def __init__(self, path: Path, manifest: Manifest, digest: str | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self.digest = digest  # first 12 hex digits of the manifest's sha256: names this exact bundle

    @property
    def model_path(self) -> Path:
        return self.path / "model.onnx"

    @property
    def tokenizer_path(self) -> Path:
        return self.path / self.manifest.tokenizer.file

    @property
    def label(self) -> str:
        return f"{self.manifest.name}@{self.manifest.version}"


def read_manifest(path: Path) -> Manifest:
    return _read_manifest(path)[0]


def _read_manifest(path: Path) -> tuple[Manifest, str]:
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{path}: not a model bundle (no {MANIFEST}); train one with `wirewatch train`")
    try:
        data = manifest_path.read_bytes()
        raw = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise BundleError(f"{manifest_path}: cannot read it ({exc.strerror})") from None
    if isinstance(raw, dict) and raw.get("schema_version") not in (None, SCHEMA_VERSION):
        raise BundleError(
            f"{manifest_path}: schema_version {raw.get('schema_version')} is not supported by this "
            f"wirewatch (supports {SCHEMA_VERSION}); upgrade wirewatch or re-export the bundle"
        )
    try:
        return Manifest.model_validate(raw), hashlib.sha256(data).hexdigest()[:12]
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise BundleError(f"{manifest_path}: invalid manifest at {where}: {err['msg']}") from None


def contained(folder: Path, name: str) -> Path:
    """``folder / name``, refused unless it stays inside the folder, symlinks followed.

    A manifest is data that travels with the bundle: a name such as ``../../etc/passwd``, an
    absolute path or a link out of the folder would otherwise be hashed, read or loaded.
    """
    pure = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or "\0" in name
        or pure.is_absolute()
        or PureWindowsPath(name).drive
        or ".." in pure.parts
    ):
        raise BundleError(
            f"{folder}: manifest names the file {name!r}, which is not a plain path inside the bundle "
            "(no '..', absolute path or backslash); the manifest was modified or is not from wirewatch"
        )
    file = folder / name
    try:
        inside = file.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise BundleError(f"{folder}: {name} is a link that leads out of the bundle folder; copy the file in")
    return file


def load_bundle(path: str | Path, *, verify_hashes: bool = True) -> Bundle:
    """Read and verify a bundle; every problem raises BundleError naming the file to fix."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: no such bundle folder")
    manifest, digest = _read_manifest(path)
    if manifest.preprocessing_version != PREPROCESSING_VERSION:
        raise BundleError(
            f"{path}: bundle uses preprocessing version {manifest.preprocessing_version}, this "
            f"wirewatch applies version {PREPROCESSING_VERSION}; re-train or use a matching wirewatch"
        )
    canary = [manifest.canary.file] if manifest.canary else []
    for required in (*REQUIRED_FILES, manifest.tokenizer.file, *canary):
        if required not in manifest.files:
            raise BundleError(f"{path}: manifest lists no hash for required file {required}")
    for name in (*manifest.files, manifest.tokenizer.file, *canary):
        contained(path, name)
    if verify_hashes:
        for name, expected in manifest.files.items():
            file = path / name
            if not file.is_file():
                raise BundleError(f"{path}: incomplete bundle, {name} is missing")
            try:
                actual = sha256_file(file)
            except OSError as exc:
                raise BundleError(f"{path}: cannot read {name} ({exc.strerror})") from None
            if actual != expected:
                raise BundleError(
                    f"{path}: {name} does not match the sha256 in {MANIFEST}; the bundle is corrupt "
                    "or was modified, re-export it"
                )
    return Bundle(path, manifest, digest)
