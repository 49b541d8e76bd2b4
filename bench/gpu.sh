#!/usr/bin/env bash
# The benchmark on a borrowed GPU machine, as one short run: install onnxruntime-gpu and the
# serving dependencies the machine lacks from wheels carried in .whl/ (no network there), check
# that CUDA really runs the model, run `python -m bench.run` on CUDA and write its JSON to $OUT.
#
# Here, where PyPI is reachable:   bench/gpu-wheels.sh          (fills .whl/, ignored by git)
# There, from the repository root: BUNDLE=exports/terrorism-v1 bench/gpu.sh
# Carry .whl, data (data/stream.jsonl) and the bundle folder. A wheel too big for one transfer can
# come as pieces (NAME.whl.part-aa, -ab, ... from gpu-wheels.sh); they are joined here.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${BUNDLE:-exports/terrorism-v1}
OUT=${OUT:-bench/results}
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/wirewatch-site}
LIMIT=${LIMIT:-3000}
mkdir -p "$OUT"

for first in .whl/*.whl.part-aa; do
    [ -e "$first" ] || continue
    whole=${first%.part-aa}
    cat "$whole".part-* > "$whole"
done
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" || true
"$PY" - <<'PY'
import onnxruntime as ort
print("onnxruntime", ort.__version__, ort.get_available_providers())
assert "CUDAExecutionProvider" in ort.get_available_providers(), "onnxruntime-gpu is not the onnxruntime imported"
PY
# The same benchmark as `make bench-gpu`: larger micro-batches, no torch consumer (it is a CPU baseline).
"$PY" -m bench.run --bundle "$BUNDLE" --providers cuda --batch-size 256 --naive-limit 0 \
    --limit "$LIMIT" --out "$OUT" --name cuda "$@" 2> >(tee "$OUT/bench-stderr.log" >&2)
