"""A real bundle around a toy ONNX graph, built in milliseconds: no training, no download.

The graph scores a window by the mean of its token ids (padding masked out), through a sigmoid:
windows of words with high ids ("w900") score high, and a window's score is known exactly.
"""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from stream.scoring.bundle import MANIFEST, BaseModelInfo, Calibration, LongText, Manifest, sha256_file
from stream.scoring.text import PREPROCESSING_VERSION

WORDS = 1000
CENTER = 500.0  # a window whose mean id is this scores 0.5
SLOPE = 0.02


def vocabulary() -> dict[str, int]:
    return {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[UNK]": 3} | {f"w{i}": i + 4 for i in range(WORDS)}


def toy_score(ids: list[int]) -> float:
    """The graph's score of one window, computed in numpy."""
    return float(1.0 / (1.0 + np.exp(-(np.mean(ids) - CENTER) * SLOPE)))


def _graph(path: Path) -> None:
    shape = ["batch_size", "sequence_length"]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, shape),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, shape),
    ]
    output = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch_size"])
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["ids", "mask"], ["kept"]),
        helper.make_node("ReduceSum", ["kept", "axis"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "axis"], ["count"], keepdims=0),
        helper.make_node("Div", ["total", "count"], ["mean"]),
        helper.make_node("Sub", ["mean", "center"], ["centered"]),
        helper.make_node("Mul", ["centered", "slope"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]
    constants = [
        helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor("center", TensorProto.FLOAT, [], [CENTER]),
        helper.make_tensor("slope", TensorProto.FLOAT, [], [SLOPE]),
    ]
    graph = helper.make_graph(nodes, "toy", inputs, [output], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build(
    folder: Path,
    *,
    precision: str = "fp32",
    quantization: str | None = None,
    long_text: LongText | None = None,
) -> Path:
    """A bundle folder that load_bundle accepts: windows of 16 tokens, stride 10, 4 at most."""
    folder.mkdir(parents=True, exist_ok=True)
    _graph(folder / "model.onnx")
    tokenizer = Tokenizer(WordLevel(vocabulary(), unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    manifest = Manifest(
        name="toy",
        version="1",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        base_model=BaseModelInfo(name="toy"),
        labels=["normal", "anomaly"],
        max_length=16,
        long_text=long_text or LongText(stride=10, max_windows=4),
        preprocessing_version=PREPROCESSING_VERSION,
        threshold=0.5,
        threshold_rule="test",
        precision=precision,  # type: ignore[arg-type]
        quantization=quantization,  # type: ignore[arg-type]
        precision_reason="test",
        calibration=Calibration(temperature=1.0),
    )
    manifest.files = {name: sha256_file(folder / name) for name in ("model.onnx", "tokenizer.json")}
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2))
    return folder


def text(*ids: int) -> str:
    return " ".join(f"w{i}" for i in ids)
