#!/usr/bin/env bash
# The four presets' profiles (bench/profile_step.py, 160 px, batch 16, one thread on core CORE) of the yoloswap at
# PYTHONPATH (default: this checkout), as in bench/RESULTS.md §13:  bench/profile_all.sh [CHECKOUT=.] [CORE=1]
set -euo pipefail
SRC=${1:-.}; CORE=${2:-1}; PY=${PY:-.venv/bin/python}
export YOLOSWAP_HOME=${YOLOSWAP_HOME:-$(mktemp -d /tmp/yoloswap-home.XXXX)}
for b in convnext-tiny yolov5n resnet50 mobilenetv3-small; do
  echo "load: $(uptime)"
  PYTHONPATH=$SRC taskset -c "$CORE" "$PY" bench/profile_step.py --backbone "$b" --steps 4 --warmup 1 2>/dev/null
done
