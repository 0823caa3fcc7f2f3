#!/usr/bin/env bash
# Learning at equal epochs, old commit against this checkout: the same short run (seed, epochs, one thread), old
# on core 0 and new on core 1 side by side; prints each run's metrics.csv (losses per epoch, final mAP).
# `-P`: without it `python -m` puts the current folder (the new checkout) first on sys.path and both sides run it.
#   bench/learn_ab.sh [OLD=8b0d73f] [EPOCHS=3] [SEED=0] [BACKBONE=convnext-tiny]
set -euo pipefail
OLD=${1:-8b0d73f}; EPOCHS=${2:-3}; SEED=${3:-0}; BACKBONE=${4:-convnext-tiny}
NEW=$(pwd); PY=${PY:-$NEW/.venv/bin/python}
OLDDIR=$(mktemp -d /tmp/yoloswap-old.XXXX); OUT=$(mktemp -d /tmp/yoloswap-learn.XXXX)
git worktree add -q --detach "$OLDDIR" "$OLD"
trap 'git worktree remove --force "$OLDDIR"' EXIT
echo "load before: $(uptime)"
run() {  # side dir core
  YOLOSWAP_HOME=$OUT/home-$1 OMP_NUM_THREADS=1 PYTHONPATH=$2 taskset -c "$3" "$PY" -P -m yoloswap train \
    --backbone "$BACKBONE" --head yolov8 --weights none --epochs "$EPOCHS" --seed "$SEED" --workers 0 \
    --out "$OUT/$1" > "$OUT/$1.log" 2>&1
}
run old "$OLDDIR" 0 & run new "$NEW" 1 & wait
echo "load after: $(uptime)"
for side in old new; do echo "== $side"; cat "$OUT/$side/metrics.csv"; grep -E "mAP|precision:" "$OUT/$side.log" | tail -3; done
