#!/usr/bin/env bash
# A/B of the training step: an old commit against this checkout, interleaved, one pinned core, one thread.
#
#   bench/step_ab.sh [OLD_COMMIT=8b0d73f] [ROUNDS=3] [BACKBONE=convnext-tiny] [SIZE=160] [CORE=1]
#
# Checks the old commit out into a temporary worktree, then alternates old/new runs of bench/step_time.py (each a
# fresh process: build_run + train_one_epoch, 2 warm-up steps, 4 timed) ROUNDS times on core CORE, and prints every
# round (CPU ms and wall ms per step), the medians, the new/old ratio and the load before and after. Both sides share one temporary yoloswap home,
# so the bf16-or-fp32 choice is measured once (printed per run). Run it from the new checkout's root with its venv.
set -euo pipefail
OLD=${1:-8b0d73f}; ROUNDS=${2:-3}; BACKBONE=${3:-convnext-tiny}; SIZE=${4:-160}; CORE=${5:-1}
NEW=$(pwd); PY=${PY:-$NEW/.venv/bin/python}
OLDDIR=$(mktemp -d /tmp/yoloswap-old.XXXX)
git worktree add -q --detach "$OLDDIR" "$OLD"
trap 'git worktree remove --force "$OLDDIR"' EXIT
export YOLOSWAP_HOME=$(mktemp -d /tmp/yoloswap-home.XXXX)
echo "load before: $(uptime)"
echo "old $OLD ($OLDDIR) vs new $(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty); $BACKBONE ${SIZE}px, core $CORE"
out=$(mktemp)
for r in $(seq "$ROUNDS"); do
  for side in old new; do
    dir=$([ $side = old ] && echo "$OLDDIR" || echo "$NEW")
    PYTHONPATH=$dir taskset -c "$CORE" "$PY" "$NEW/bench/step_time.py" --label $side --backbone "$BACKBONE" \
      --img-size "$SIZE" 2>/dev/null | tee -a "$out"
  done
done
echo "load after: $(uptime)"
"$PY" - "$out" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
for col, what in ((1, "CPU"), (2, "wall")):
    med = {s: statistics.median(float(r[col]) for r in rows if r[0] == s) for s in ("old", "new")}
    print(f"median {what} ms/step: old {med['old']:.0f}, new {med['new']:.0f}; new/old {med['new'] / med['old']:.3f} "
          f"({100 * (1 - med['new'] / med['old']):.0f}% cheaper)")
EOF
