#!/usr/bin/env bash
# README's main job on one core, seeds one after another, each with an empty yoloswap home (run it on an otherwise
# idle machine; the install is not timed). Prints per seed: wall clock, final mAP@.5 and mAP@.5:.95, then the mean.
#   bench/main_job.sh [SEEDS="0 1 2"] [CORE=0]        (from the checkout's root; PY=its python, default .venv)
set -euo pipefail
SEEDS=${1:-0 1 2}; CORE=${2:-0}; PY=${PY:-$(pwd)/.venv/bin/python}; export PYTHONPATH=$(pwd)
OUT=$(mktemp -d /tmp/yoloswap-main.XXXX); echo "runs in $OUT; load before: $(uptime)"
for seed in $SEEDS; do
  start=$(date +%s.%N)
  YOLOSWAP_HOME=$OUT/home-$seed taskset -c "$CORE" "$PY" -m yoloswap train --backbone convnext-tiny --head yolov8 \
    --weights none --seed "$seed" --out "$OUT/seed$seed" > "$OUT/seed$seed.log" 2>&1
  end=$(date +%s.%N)
  python3 - "$OUT/seed$seed/metrics.csv" "$seed" "$start" "$end" <<'PY' | tee -a "$OUT/summary.txt"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
last = rows[-1]
s = float(sys.argv[4]) - float(sys.argv[3])
print(f"seed {sys.argv[2]}: {int(s // 60)}:{int(s % 60):02d} wall, {len(rows)} epochs, "
      f"mAP@.5 {float(last['metrics/mAP50']):.3f}, mAP@.5:.95 {float(last['metrics/mAP50-95']):.3f}")
PY
done
echo "load after: $(uptime)"
python3 - "$OUT/summary.txt" <<'PY'
import re, statistics, sys
m = [float(re.search(r"mAP@\.5 ([0-9.]+)", l).group(1)) for l in open(sys.argv[1])]
print(f"mAP@.5 mean {statistics.mean(m):.3f}, min {min(m):.3f}, max {max(m):.3f} over {len(m)} seed(s)")
PY
