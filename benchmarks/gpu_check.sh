#!/usr/bin/env bash
# Everything mnist-pl claims about GPUs, checked in one run on one CUDA GPU (about 8 minutes):
# the GPU tests (tests/test_gpu.py), the throughput benchmark eager and with --compile (with the
# CUDA-graph ceiling), and the default GAN's 20 epochs on the subset, then one summary table.
#
#   PYTHONPATH=. bash benchmarks/gpu_check.sh [MNIST_SUBSET_DIR] [OUT_DIR]
#
# Needs only the repository (no install: run it from the repository root with PYTHONPATH=.), the
# project's Python packages, and the MNIST subset (default ../shared/data/mnist-subset). Each part
# gets at most what is left of GPU_CHECK_SECONDS (default 470); parts that do not fit are reported
# as not run; GPU_CHECK_PARTS picks parts (default: tests benchmark gan_eager benchmark_compiled
# gan_compiled, in that order). Without a CUDA GPU it says so, shows that the GPU tests skip, and
# exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python}
DATA=$(cd "${1:-../shared/data/mnist-subset}" 2>/dev/null && pwd) || {
    echo "error: MNIST subset folder ${1:-../shared/data/mnist-subset} not found; pass it as the first argument" >&2
    exit 2
}
OUT=${2:-$(mktemp -d)}
mkdir -p "$OUT"
export MNIST_PL_SUBSET="$DATA"  # the tests' real-data fixture
BUDGET=${GPU_CHECK_SECONDS:-470}
START=$SECONDS

if ! "$PYTHON" -c "import torch, lightning" 2>/dev/null; then
    echo "error: $PYTHON cannot import torch and lightning; install the project's packages or set PYTHON=" >&2
    exit 2
fi
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA GPU here (torch.cuda.is_available() is False): nothing to measure."
    echo "The GPU tests skip, with the reason:"
    "$PYTHON" -m pytest tests/test_gpu.py -q -rs -p no:cacheprovider 2>&1 | tail -n 3
    exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
echo "data: $DATA; results: $OUT; budget: ${BUDGET} s"

# run_part NAME SECONDS COMMAND...: run within its share of what is left of the budget
PARTS=" ${GPU_CHECK_PARTS:-tests benchmark gan_eager benchmark_compiled gan_compiled} "
run_part() {
    local name=$1 want=$2
    shift 2
    [[ $PARTS == *" $name "* ]] || return 0
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

# -v: one line per finished test, so that the summary has them even if the part runs out of time
run_part tests 270 "$PYTHON" -m pytest tests/test_gpu.py -v -rs -p no:cacheprovider
run_part benchmark 150 "$PYTHON" benchmarks/throughput.py --accelerator gpu --data-dir "$DATA" --json "$OUT/benchmark.json"
run_part gan_eager 60 "$PYTHON" train.py --model gan --accelerator gpu --data-dir "$DATA" --logdir "$OUT/runs-eager"
run_part benchmark_compiled 150 "$PYTHON" benchmarks/throughput.py --accelerator gpu --data-dir "$DATA" --compile \
    --models dense cnn --epochs 3 --json "$OUT/benchmark-compiled.json"
run_part gan_compiled 90 "$PYTHON" train.py --model gan --accelerator gpu --data-dir "$DATA" --compile \
    --logdir "$OUT/runs-compiled"

"$PYTHON" - "$OUT" <<'EOF'
"""One table of every figure and check above."""
import json
import re
import sys
from pathlib import Path

out = Path(sys.argv[1])
rows = []


def status(name):
    if (out / f"{name}.skipped").exists():
        return "not run (out of time)"
    if not (out / f"{name}.rc").exists():
        return "not run (not in GPU_CHECK_PARTS)"
    rc, seconds = (out / f"{name}.rc").read_text().split()
    return ("ok" if rc == "0" else "timed out" if rc in ("124", "137") else f"failed (exit {rc})") + f", {seconds} s"


print("\n================ summary ================")
print(f"{'check':<46} result")
print(f"{'tests/test_gpu.py':<46} {status('tests')}")
if (out / "tests.log").exists():
    results = re.findall(r"^tests/test_gpu\.py::(\S+) (PASSED|FAILED|ERROR|SKIPPED)",
                         (out / "tests.log").read_text(), re.M)
    counts = {word: sum(result == word for _, result in results) for word in ("PASSED", "FAILED", "ERROR", "SKIPPED")}
    print(f"{'  passed / failed / errors / skipped':<46} " + " / ".join(str(n) for n in counts.values()))
    for name, result in results:
        if result in ("FAILED", "ERROR"):
            print(f"  {result} {name}")
for name, label in (("gan_eager", "default GAN, 20 epochs on the subset"),
                    ("gan_compiled", "default GAN, 20 epochs, --compile")):
    results = list(out.glob(f"runs-{name.split('_')[1]}/gan/version_0/results.json"))
    seconds = f"; seconds {json.loads(results[0].read_text())['seconds']} (target <= 8)" if results else ""
    print(f"{label:<46} {status(name)}{seconds}")
for name, label in (("benchmark", "throughput, eager (img/s)"), ("benchmark_compiled", "throughput, --compile (img/s)")):
    print(f"{label:<46} {status(name)}")
    path = out / f"{name.replace('_', '-')}.json"
    if not path.exists():
        continue
    table = json.loads(path.read_text())
    print(f"  card: {table['card']}, torch {table['torch']}")
    print(f"  {'model':<6} {'mnist-pl':>10} {'bare':>10} {'torchvision':>12} {'graphed':>10} {'pl/bare':>8} "
          f"{'pl/tv':>6} {'pl/graphed':>10} {'bare/graphed':>12}")
    for model, r in table["models"].items():
        rate = {path: r[path]["images_per_s"] for path in r}
        graphed = rate.get("graphed") or float("nan")
        print(f"  {model:<6} {rate['mnist-pl']:>10,.0f} {rate['bare']:>10,.0f} {rate['torchvision']:>12,.0f} "
              f"{graphed:>10,.0f} {rate['mnist-pl'] / rate['bare']:>8.3f} {rate['mnist-pl'] / rate['torchvision']:>6.2f} "
              f"{rate['mnist-pl'] / graphed:>10.3f} {rate['bare'] / graphed:>12.3f}")
print("targets (issue 12, H100-class card): eager pl/bare >= 0.90 cnn, >= 0.80 dense; --compile cnn >= 50,000 and "
      "dense >= 200,000 img/s, both >= 3x torchvision (pl/tv)")
EOF
echo "logs and figures: $OUT"
