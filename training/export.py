"""ONNX export, validation against PyTorch, and int8 quantization.

Export and validation are one step: an export that does not reproduce PyTorch's output on real
text within the tolerance raises ExportError with the largest difference, and is not shipped.
"""

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stream.encoding import Batch
from stream.errors import ExportError
from training.model import import_torch

OPSET = 17
INPUTS = ["input_ids", "attention_mask"]
OUTPUT = "score"
# Probabilities after a sigmoid; fp32 ONNX Runtime and PyTorch agree to about 1e-6 here.
ATOL = 1e-4


def export_onnx(model: Any, path: Path, example: Batch) -> None:
    torch = import_torch()
    model.eval()
    args = (torch.from_numpy(example.input_ids), torch.from_numpy(example.attention_mask))
    axes = {0: "batch_size", 1: "sequence_length"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            args,
            str(path),
            input_names=INPUTS,
            output_names=[OUTPUT],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, OUTPUT: {0: "batch_size"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def validate_onnx(model: Any, path: Path, batches: Sequence[Batch], atol: float = ATOL) -> float:
    """The largest |ONNX - PyTorch| over the batches; ExportError when it exceeds atol."""
    import onnxruntime as ort

    torch = import_torch()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = sorted(i.name for i in session.get_inputs())
    if names != sorted(INPUTS) or [o.name for o in session.get_outputs()] != [OUTPUT]:
        raise ExportError(f"{path}: exported graph has inputs {names}, expected {INPUTS} -> {OUTPUT}")
    worst = 0.0
    model.eval()
    with torch.inference_mode():
        for batch in batches:
            expected = model(
                torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)
            ).numpy()
            (got,) = session.run(
                [OUTPUT], {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
            )
            if got.shape != expected.shape:
                raise ExportError(f"{path}: output shape {got.shape}, PyTorch gives {expected.shape}")
            worst = max(worst, float(np.max(np.abs(got - expected))))
    if not worst <= atol:
        raise ExportError(
            f"{path}: ONNX output differs from PyTorch by up to {worst:.3e} (tolerance {atol:.0e}); "
            "the export is wrong, not shipped"
        )
    return worst


def quantize_int8(src: Path, dst: Path, nodes_to_exclude: Sequence[str] = ()) -> None:
    """Dynamic int8, per channel: per-tensor scales cost MiniLM far more accuracy here.

    nodes_to_exclude stay fp32 (the distance heads of the label-free modes compare embeddings
    with a bank whose int8 rounding would blur the distances they rank by).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(
            str(src),
            str(dst),
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(nodes_to_exclude),
        )
