#!/bin/bash
# Submits a sharded sweep and its merge: N array tasks (one GPU each), then the merge once all
# of them succeeded (afterok).
#
#   scripts/slurm/submit.sh N MODEL GRID TASKS OUTDIR [mlawb sweep options...]
#   e.g. scripts/slurm/submit.sh 8 /models/llama2-7b "strategy=high,2-norm;r=2,4,8;d_kv=8,16,32" \
#            data/longbench out --device cuda --dtype bf16
#
# Extra sbatch options (partition, account) go in SBATCH_ARGS, e.g. SBATCH_ARGS="-p gpu -A proj".
# Check the split first: mlawb sweep MODEL --grid GRID --tasks TASKS --plan --shard 0/N
set -euo pipefail

if [[ $# -lt 5 ]]; then
    echo "usage: $0 N MODEL GRID TASKS OUTDIR [mlawb sweep options...]" >&2
    exit 2
fi
count=$1
shift  # now MODEL GRID TASKS OUTDIR [options...]
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=$4
mkdir -p "$outdir"
# shellcheck disable=SC2086 # SBATCH_ARGS is a list of options
sweep=$(sbatch --parsable ${SBATCH_ARGS:-} --array="0-$(( count - 1 ))" "$here/sweep.sbatch" "$@")
sweep=${sweep%%;*}  # --parsable prints "jobid[;cluster]"
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${SBATCH_ARGS:-} --dependency="afterok:$sweep" "$here/merge.sbatch" "$outdir" "$count")
echo "sweep array job $sweep ($count tasks), merge job ${merge%%;*} -> $outdir/all.db"
