"""A copy of a bundle that reads long articles another way, for `python -m bench.run --compare`.

The same ONNX model and threshold with another `long_text` strategy and window count: by default
`chunk_max` over up to 8 windows, how every bundle read an article before the document head. The
throughput the issue compares against ("today's") is that reading, and this isolates its cost
from the weights. The canary is re-scored under the new reading (the scorer checks it at startup)
and the folder sealed again. Its precision and recall are not the shipped bundle's: the threshold
was chosen for the document head.

    python -m bench.variant --bundle exports/terrorism-v1 --out exports/terrorism-v1-chunk-max
"""

import argparse
import shutil
from pathlib import Path

from stream.scoring.bundle import MANIFEST, LongText, load_bundle
from stream.scoring.canary import read_canary, write_canary
from stream.scoring.scorer import Scorer
from training.ship.publish import seal


def make_variant(source: Path, out: Path, strategy: str, max_windows: int) -> Path:
    if out.exists():
        raise SystemExit(f"{out} exists; remove it or pick another --out")
    original = load_bundle(source)
    shutil.copytree(source, out)
    manifest = original.manifest.model_copy(deep=True)
    manifest.long_text = LongText.model_validate(
        {"strategy": strategy, "stride": manifest.long_text.stride, "max_windows": max_windows}
    )
    manifest.name = f"{manifest.name}-{strategy.replace('_', '-')}{max_windows}"
    (out / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    if manifest.canary is not None:
        copy = load_bundle(out)
        texts, _ = read_canary(copy)
        scorer = Scorer(copy, providers="cpu")
        manifest.canary = write_canary(
            out, texts, scorer.score(texts).scores.tolist(), manifest.canary.tolerance
        )
    seal(out, manifest)
    load_bundle(out)  # the copy verifies as any bundle does
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True, help="the bundle to copy")
    parser.add_argument("--out", type=Path, required=True, help="the copy's folder (must not exist)")
    parser.add_argument(
        "--strategy", default="chunk_max", choices=["chunk_max", "chunk_mean", "chunk_mean_logit"]
    )
    parser.add_argument("--max-windows", type=int, default=8, help="windows read per article (default 8)")
    args = parser.parse_args(argv)
    print(make_variant(args.bundle, args.out, args.strategy, args.max_windows))


if __name__ == "__main__":
    main()
