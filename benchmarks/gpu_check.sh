#!/usr/bin/env bash
# Everything mnist-pl claims about GPUs, checked in one run on one CUDA GPU (at most 7.5 minutes):
# the throughput benchmark with --compile (with the CUDA-graph ceiling), the default GAN's 20
# epochs compiled and eager, the GPU tests (tests/test_gpu.py), the benchmark eager; then one
# summary table. The compiled figures come first: they are the headline.
#
#   PYTHONPATH=. bash benchmarks/gpu_check.sh [MNIST_SUBSET_DIR] [OUT_DIR]
#   GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh      # no GPU needed: see below
#
# Needs only the repository (no install: run it from the repository root with PYTHONPATH=.), the
# project's Python packages, and the MNIST subset (default ../shared/data/mnist-subset).
#
# Time: each part has a limit (PART_SECONDS below; they add up to 395 s) and gets at most what is
# left of GPU_CHECK_SECONDS (default 450); a part that does not fit is reported as not run, one
# that runs out of time as timed out, with what it printed so far. GPU_CHECK_PARTS picks parts
# (default: all, in the order above). The tests run on GPU_CHECK_WORKERS pytest-xdist workers
# (default 4 where pytest-xdist is installed, else 0: one process; 0 in a dry run); either way the
# summary reads their results.
#
# GPU_CHECK_DRY_RUN=1 runs every part on the CPU, on a generated set of 320 images (a few batches
# an epoch), one or two epochs each, and prints the same table: the script seen working end to end
# on a machine without a GPU. Its figures are a CPU's on tiny data (the GPU tests skip, with the
# reason; the two that test this file's checks themselves run), not figures to compare.
# Without a CUDA GPU and without GPU_CHECK_DRY_RUN it says so, shows that the GPU tests skip, and
# exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python}
DRY_RUN=${GPU_CHECK_DRY_RUN:-0}
[[ $DRY_RUN == 0 ]] && DRY_RUN=""

if ! "$PYTHON" -c "import torch, lightning" 2>/dev/null; then
    echo "error: $PYTHON cannot import torch and lightning; install the project's packages or set PYTHON=" >&2
    exit 2
fi
OUT=${2:-$(mktemp -d)}
mkdir -p "$OUT" || { echo "error: cannot make the results folder $OUT; pass a writable OUT_DIR" >&2; exit 2; }
if [[ -n $DRY_RUN ]]; then
    # a few hundred generated digits (the tests' make_idx_folder): a few batches an epoch
    DATA="$OUT/tiny-data"
    "$PYTHON" -c "import sys; sys.path.insert(0, 'tests'); from conftest import make_idx_folder; \
make_idx_folder(__import__('pathlib').Path(sys.argv[1]))" "$DATA" || exit 2
    ACCELERATOR=cpu
else
    DATA=$(cd "${1:-../shared/data/mnist-subset}" 2>/dev/null && pwd) || {
        echo "error: MNIST subset folder ${1:-../shared/data/mnist-subset} not found; pass it as the first argument" >&2
        exit 2
    }
    ACCELERATOR=gpu
    if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "no CUDA GPU here (torch.cuda.is_available() is False): nothing to measure"
        echo "(GPU_CHECK_DRY_RUN=1 runs every part on the CPU). The GPU tests skip, with the reason:"
        "$PYTHON" -m pytest tests/test_gpu.py -q -rs -p no:cacheprovider -p no:xdist -o addopts="" 2>&1 | tail -n 3
        exit 0
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
fi
export MNIST_PL_SUBSET="$DATA"  # the tests' real-data fixture
# deterministic cuBLAS needs this from the start of each process (tests/test_gpu.py)
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
BUDGET=${GPU_CHECK_SECONDS:-$([[ -n $DRY_RUN ]] && echo 1600 || echo 450)}
START=$SECONDS
echo "data: $DATA; results: $OUT; budget: ${BUDGET} s${DRY_RUN:+; DRY RUN on the CPU}"

if [[ -z ${GPU_CHECK_WORKERS:-} ]]; then  # (a dry run's CPU is likely too small for workers)
    GPU_CHECK_WORKERS=$([[ -z $DRY_RUN ]] && "$PYTHON" -c "import xdist" 2>/dev/null && echo 4 || echo 0)
fi
# pyproject's addopts (-n 2 --dist worksteal) are left out: the workers are chosen here, and
# without pytest-xdist -n is an unknown option. loadgroup keeps the tests that share the trained
# runs (the gpu_runs fixture) on one worker, which trains them once
if ((GPU_CHECK_WORKERS > 0)); then
    PYTEST_WORKERS=(-n "$GPU_CHECK_WORKERS" --dist loadgroup)
else
    PYTEST_WORKERS=(-p no:xdist)
fi

# each part's limit in seconds: on the GPU, and in a dry run (the CPU compiles for minutes)
declare -A PART_SECONDS=([benchmark_compiled]=100 [gan_compiled]=70 [gan_eager]=35 [tests]=120 [benchmark]=70)
declare -A DRY_SECONDS=([benchmark_compiled]=500 [gan_compiled]=300 [gan_eager]=120 [tests]=240 [benchmark]=400)
ALL_PARTS="benchmark_compiled gan_compiled gan_eager tests benchmark"
PARTS=" ${GPU_CHECK_PARTS:-$ALL_PARTS} "

# run_part NAME COMMAND...: run within its limit and what is left of the budget
run_part() {
    local name=$1
    shift
    [[ $PARTS == *" $name "* ]] || return 0
    local want=${PART_SECONDS[$name]}
    [[ -n $DRY_RUN ]] && want=${DRY_SECONDS[$name]}
    local left=$((BUDGET - (SECONDS - START)))
    local limit=$((want < left ? want : left))
    if ((limit < 20)); then
        echo "not run: out of time" >"$OUT/$name.skipped"
        echo "== $name: not run (out of time)"
        return
    fi
    echo "== $name (at most ${limit} s): $*"
    local began=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$rc $((SECONDS - began))" >"$OUT/$name.rc"
    tail -n 25 "$OUT/$name.log"
    echo "== $name: exit status $rc after $((SECONDS - began)) s"
}

if [[ -n $DRY_RUN ]]; then
    EPOCHS=(--epochs 1 --warmup 1 --workers 0)  # torchvision's loader without worker processes
    GAN_EPOCHS=(--max-epochs 2)
else
    EPOCHS=(--epochs 3)
    GAN_EPOCHS=()  # the default config's 20 epochs
fi
run_part benchmark_compiled "$PYTHON" benchmarks/throughput.py --accelerator "$ACCELERATOR" --data-dir "$DATA" \
    --compile --models dense cnn "${EPOCHS[@]}" --json "$OUT/benchmark-compiled.json"
run_part gan_compiled "$PYTHON" train.py --model gan --accelerator "$ACCELERATOR" --data-dir "$DATA" --compile \
    "${GAN_EPOCHS[@]}" --logdir "$OUT/runs-compiled"
run_part gan_eager "$PYTHON" train.py --model gan --accelerator "$ACCELERATOR" --data-dir "$DATA" \
    "${GAN_EPOCHS[@]}" --logdir "$OUT/runs-eager"
# -v: one line per finished test, so that the summary has them even if the part runs out of time
run_part tests "$PYTHON" -m pytest tests/test_gpu.py -v -rs -p no:cacheprovider -o addopts="" "${PYTEST_WORKERS[@]}"
run_part benchmark "$PYTHON" benchmarks/throughput.py --accelerator "$ACCELERATOR" --data-dir "$DATA" \
    --models dense cnn "${EPOCHS[@]}" --json "$OUT/benchmark.json"

"$PYTHON" benchmarks/gpu_check_summary.py "$OUT" ${DRY_RUN:+--dry-run}
echo "logs and figures: $OUT (the whole check took $((SECONDS - START)) s)"
