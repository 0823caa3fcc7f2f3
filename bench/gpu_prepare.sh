#!/usr/bin/env bash
# Wheels for bench/gpu_speed.py on a GPU machine without network that has python 3.12, torch, torchvision, timm,
# typer, rich, pyyaml, numpy, pillow, safetensors, opencv, matplotlib, psutil and requests, but neither yoloswap,
# faster-coco-eval nor Ultralytics. Run it HERE (with network), from anywhere:
#
#     bash bench/gpu_prepare.sh            # PYVER=3.11 bash bench/gpu_prepare.sh for another device python
#
# It fills bench/wheels/ (git-ignored): a wheel of this checkout, and the binary wheels of what the benchmark
# imports there, each without its dependencies (the device already has them). Then, on the device, in the repo:
#
#     python3 -m pip install -q --no-index --no-deps --target /tmp/site bench/wheels/*.whl
#     PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 bench/gpu_speed.py --json $OUT/gpu_speed.json
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
PYVER=${PYVER:-3.12}
WHEELS=${WHEELS:-bench/wheels}
rm -rf "$WHEELS"
mkdir -p "$WHEELS"

# yoloswap itself, pure Python
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation --wheel-dir "$WHEELS" .

# Binary wheels for the device's interpreter. Ultralytics needs polars (whose binary is polars-runtime-32) and
# ultralytics-thop; ultralytics-platform and opencv-python are not needed (the device's opencv-python-headless
# provides cv2). Pins: the versions measured against in issue 9 and here.
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --dest "$WHEELS" \
    --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux1_x86_64 \
    faster-coco-eval==1.8.0 ultralytics==8.4.190 ultralytics-thop==2.2.3 polars==2.1.0 polars-runtime-32==2.1.0

ls -l "$WHEELS"
du -sh "$WHEELS"
