"""ONNX export, validation against PyTorch, and int8 quantization (static, calibrated at export).

Export and validation are one step: an export that does not reproduce PyTorch's output on real
text within the tolerance raises ExportError with the largest difference, and is not shipped.
"""

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import ExportError
from stream.scoring.encoding import Batch
from training.model import eager_attention, import_torch

OPSET = 17
INPUTS = ["input_ids", "attention_mask"]
OUTPUT = "score"
# Probabilities after a sigmoid; fp32 ONNX Runtime and PyTorch agree to about 1e-6 here.
ATOL = 1e-4


def export_onnx(model: Any, path: Path, example: Batch, output: str = OUTPUT) -> None:
    """The one ONNX export of wirewatch's graphs: token ids and attention mask in (dynamic batch
    and length), one output named `output` per window (a bundle's score, the embedder's
    embedding), in eager attention and eval mode."""
    torch = import_torch()
    eager_attention(model)
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
            output_names=[output],
            dynamic_axes={**dict.fromkeys(INPUTS, axes), output: {0: "batch_size"}},
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


def quantize_static_int8(src: Path, dst: Path, calibration: Sequence[Batch]) -> None:
    """Static int8 (QDQ): every scale fixed here, so a window's score is the same in any batch.

    Weights per output channel (int8), activations per tensor (uint8) with ranges calibrated
    (min-max) on the given windows. Only MatMul inputs are quantized: that is where the time
    goes, and LayerNorm, softmax and GELU stay in float, where int8 costs accuracy for little
    speed. The graph is first optimised by ONNX Runtime (quant_pre_process) so the quantizer
    sees the fused operators the scorer will run.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ExportError("static int8 needs calibration windows; none were given")

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None
            return {INPUTS[0]: batch.input_ids, INPUTS[1]: batch.attention_mask}

    prepared = dst.with_name(dst.stem + ".prepared.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Symbolic shape inference does not finish on these graphs; ONNX's own is enough.
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(dst),
                Reader(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["MatMul"],
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                # Not CalibMaxIntermediateOutputs: ONNX Runtime (1.32) drops each full group of
                # batches without reducing it (microsoft/onnxruntime#18893), so only the remainder
                # would calibrate, and none at all when the count divides evenly. What MinMax
                # keeps per batch is a minimum and a maximum per tensor, so memory stays small.
                extra_options={"ActivationSymmetric": False},
            )
    finally:
        prepared.unlink(missing_ok=True)


def quantize_int8(src: Path, dst: Path, nodes_to_exclude: Sequence[str] = ()) -> None:
    """Dynamic int8, per channel: activation scales computed per call, so a score depends on its
    batch and the scorer runs such bundles one window per call. The label-free modes ship it.

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
