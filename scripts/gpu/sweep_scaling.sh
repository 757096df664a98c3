#!/usr/bin/env bash
# Sweep scaling over GPUs (issue 13): the same 16-item sweep (8 settings x 2 datasets) on the
# bundled model, first with one worker (--devices 0), then with one worker per listed GPU
# (--devices 0,1 by default), each into a fresh DB; prints wall seconds, the ratio, and checks
# that `mlawb merge` of the two stores reports no conflicts (the same scores either way).
#   scripts/gpu/sweep_scaling.sh [BUILD_DIR=build-gpu] [DEVICES=0,1] [LIMIT=6]
# On a machine with one GPU, DEVICES=0,0 runs two workers on the same GPU: a smoke run of the
# machinery, not a scaling measurement.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-gpu}
DEVICES=${2:-0,1}
LIMIT=${3:-6}
OUTDIR=${OUT:-$PWD/out-gpu}
mkdir -p "$OUTDIR"
MLAWB="$BUILD/app/cli/mlawb"
MODEL=resources/models/wb-tiny-mha
TASKS=resources/tasks/longbench-syn
GRID="strategy=high,low;r=2,4;d_kv=8,16;svd=joint"
run() {  # run NAME DEVICES
    rm -f "$OUTDIR/sweep_$1.db"
    local t0 t1
    t0=$(date +%s.%N)
    "$MLAWB" sweep "$MODEL" --grid "$GRID" --tasks "$TASKS" --datasets passkey,kv_retrieval --limit "$LIMIT" \
        --max-prompt 1024 --db "$OUTDIR/sweep_$1.db" --devices "$2" > "$OUTDIR/sweep_$1.log" 2>&1
    local rc=$?
    t1=$(date +%s.%N)
    python3 -c "print('%.2f' % ($t1 - $t0))" > "$OUTDIR/sweep_$1.seconds"
    echo "sweep --devices $2: rc $rc, $(cat "$OUTDIR/sweep_$1.seconds") s (sweep_$1.log)"
    return $rc
}
"$MLAWB" sweep "$MODEL" --grid "$GRID" --tasks "$TASKS" --datasets passkey,kv_retrieval --limit "$LIMIT" \
    --db "$OUTDIR/plan.db" --plan | tail -3
run one 0 || exit 1
run many "$DEVICES" || exit 1
python3 -c "
one, many = (float(open('$OUTDIR/sweep_%s.seconds' % n).read()) for n in ('one', 'many'))
print('one worker %.1f s, %d workers %.1f s: %.2fx the time (%.2fx speed-up)' % (one, len('$DEVICES'.split(',')), many, many / one, one / many))
"
"$MLAWB" merge "$OUTDIR/sweep_one.db" "$OUTDIR/sweep_many.db" -o "$OUTDIR/merged.db" 2>&1 | tail -5
