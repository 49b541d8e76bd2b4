"""Export a sentence embedder for incident grouping: `python -m training.ship.embedder --out exports/embedder`.

The graph is the base encoder with mean pooling and L2 normalization, as all-MiniLM-L6-v2 was
trained to be used; it is validated against PyTorch on real sentences before it is written, and
the folder is checked by loading it through stream.scoring.embedder, as the incident stage will.
"""

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from stream.errors import ExportError
from stream.scoring.bundle import BaseModelInfo, sha256_file
from stream.scoring.embedder import MANIFEST, OUTPUT, Embedder, EmbedderManifest
from stream.scoring.encoding import Windowing
from training.embedding import build_pooler
from training.model import DEFAULT_BASE_MODEL, import_torch, load_base, resolve_base_model
from training.ship.export import export_onnx
from training.ship.publish import publishing, refuse_existing, save_tokenizer

ATOL = 1e-4
MAX_LENGTH = 128
CHECK_TEXTS = (
    "A car bomb exploded outside a police station in the capital, killing at least twelve people.",
    "The central bank raised interest rates by a quarter point on Wednesday.",
    "Gunmen attacked a hotel in the city centre; security forces said the siege was over.",
    "Heavy rain caused flooding across the region.",
    "Short.",
)


def export_embedder(
    out: Path, base_model: str = DEFAULT_BASE_MODEL, max_length: int = MAX_LENGTH, force: bool = False
) -> Embedder:
    torch = import_torch()
    refuse_existing(out, force)
    base = resolve_base_model(base_model)
    encoder_model, hf_tokenizer = load_base(base)
    graph = build_pooler(encoder_model).eval()
    with publishing(out, force) as tmp:
        encoder, special = save_tokenizer(hf_tokenizer, tmp, Windowing(max_length, max_length - 2, 1))
        batch = next(encoder.batches(encoder.encode(list(CHECK_TEXTS)), len(CHECK_TEXTS)))
        export_onnx(graph, tmp / "model.onnx", batch, output=OUTPUT)
        with torch.inference_mode():
            expected = graph(
                torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)
            ).numpy()
        manifest = EmbedderManifest(
            name=out.name,
            created_at=datetime.now(UTC),
            base_model=BaseModelInfo(name=base_model, sha256=base.sha256),
            max_length=max_length,
            dim=int(expected.shape[1]),
            tokenizer=special,
        )
        manifest.files = {name: sha256_file(tmp / name) for name in ("model.onnx", "tokenizer.json")}
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
        # Rows come back in the texts' order whatever the batching: compare them as loaded.
        got = Embedder(tmp).embed(list(CHECK_TEXTS))
        order = np.argsort(batch.rows)
        diff = float(np.max(np.abs(got - expected[order])))
        if not diff <= ATOL:
            raise ExportError(
                f"the ONNX embedder differs from PyTorch by up to {diff:.3e} (tolerance {ATOL:.0e})"
            )
        manifest.export_max_abs_diff = diff
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    return Embedder(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.ship.embedder",
        description="Export the sentence embedder that `wirewatch incidents` groups alerts with.",
    )
    parser.add_argument("--out", type=Path, default=Path("exports/embedder"), help="folder to write")
    parser.add_argument(
        "--base-model", default=DEFAULT_BASE_MODEL, help=f"local model folder (default {DEFAULT_BASE_MODEL})"
    )
    parser.add_argument(
        "--max-length", type=int, default=MAX_LENGTH, help=f"tokens embedded per text (default {MAX_LENGTH})"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing folder")
    args = parser.parse_args(argv)
    embedder = export_embedder(args.out, args.base_model, args.max_length, args.force)
    m = embedder.manifest
    print(
        f"{args.out}: {m.base_model.name}, {m.dim} dimensions, max |diff| vs PyTorch {m.export_max_abs_diff:.2e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
