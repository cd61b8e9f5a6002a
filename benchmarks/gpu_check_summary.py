"""The summary table of benchmarks/gpu_check.sh: every part's outcome and figures, read from its
results folder (the parts' logs, exit statuses, results.json and benchmark JSON files).

    python benchmarks/gpu_check_summary.py OUT_DIR [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

RESULTS = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
# pytest -v's line for a finished test: "tests/x.py::name PASSED [ 7%]" in one process;
# "[gw0] [  7%] PASSED tests/x.py::name" from a pytest-xdist worker
_ONE_PROCESS = re.compile(rf"^(?P<name>tests/\S+::\S+) (?P<result>{'|'.join(RESULTS)})\b", re.M)
_XDIST = re.compile(rf"^\[gw\d+\] \[\s*\d+%\] (?P<result>{'|'.join(RESULTS)}) (?P<name>tests/\S+::\S+)", re.M)
GAN_TARGET_SECONDS = 8  # the default GAN's 20 epochs on the subset, training alone


def test_results(log: str) -> list[tuple[str, str]]:
    """(test id, result) of every finished test in a `pytest -v` log, with or without xdist."""
    found = [(m.start(), m["name"], m["result"]) for pattern in (_ONE_PROCESS, _XDIST) for m in pattern.finditer(log)]
    return [(name, result) for _, name, result in sorted(found)]


def status(out: Path, name: str) -> str:
    """How part `name` ended: ok, failed, timed out or not run, and its seconds."""
    if (out / f"{name}.skipped").exists():
        return "not run (out of time)"
    if not (out / f"{name}.rc").exists():
        return "not run (not in GPU_CHECK_PARTS)"
    rc, seconds = (out / f"{name}.rc").read_text().split()
    return ("ok" if rc == "0" else "timed out" if rc in ("124", "137") else f"failed (exit {rc})") + f", {seconds} s"


def gan_figures(out: Path, runs: str, dry_run: bool) -> str:
    """A GAN run's seconds, compiling and training apart (results.json's seconds include both)."""
    paths = list(out.glob(f"{runs}/gan/version_0/results.json"))
    if not paths:
        return ""
    results = json.loads(paths[0].read_text())
    figures = f"\n  {results['epochs']} epochs, {results['global_step']} steps: {results['seconds']} s"
    if "compile_seconds" not in results:  # an eager run
        return figures
    compiling = results["compile_seconds"]
    target = "" if dry_run else f" (target <= {GAN_TARGET_SECONDS})"
    return f"{figures} in all, {compiling} s of it compiling, {results['seconds'] - compiling:.1f} s the rest{target}"


def benchmark_table(path: Path) -> list[str]:
    table = json.loads(path.read_text())
    lines = [f"  card: {table['card']}, torch {table['torch']}",
             f"  {'model':<6} {'mnist-pl':>10} {'bare':>10} {'torchvision':>12} {'graphed':>10} {'pl/bare':>8} "
             f"{'pl/tv':>6} {'pl/graphed':>10} {'bare/graphed':>12}"]
    for model, r in table["models"].items():
        rate = {path: r[path]["images_per_s"] for path in r}
        graphed = rate.get("graphed") or float("nan")  # (CUDA only)
        lines.append(f"  {model:<6} {rate['mnist-pl']:>10,.0f} {rate['bare']:>10,.0f} {rate['torchvision']:>12,.0f} "
                     f"{graphed:>10,.0f} {rate['mnist-pl'] / rate['bare']:>8.3f} "
                     f"{rate['mnist-pl'] / rate['torchvision']:>6.2f} {rate['mnist-pl'] / graphed:>10.3f} "
                     f"{rate['bare'] / graphed:>12.3f}")
    data = table.get("data_path_images_per_s")
    if data:
        lines.append(f"  data path alone: mnist-pl {data['mnist-pl']:,.0f} img/s, torchvision "
                     f"{data['torchvision']:,.0f} img/s")
    return lines


def summary(out: Path, dry_run: bool = False) -> str:
    lines = ["", "================ summary" + (" (DRY RUN: the CPU, tiny data)" if dry_run else "") + " ================",
             f"{'check':<46} result"]
    for name, label in (("benchmark_compiled", "throughput, --compile (img/s)"),
                        ("gan_compiled", "default GAN, --compile"), ("gan_eager", "default GAN")):
        if name.startswith("gan"):
            lines.append(f"{label:<46} {status(out, name)}"
                         + gan_figures(out, "runs-" + name.split("_")[1], dry_run))
        else:
            lines.append(f"{label:<46} {status(out, name)}")
            if (out / "benchmark-compiled.json").exists():
                lines += benchmark_table(out / "benchmark-compiled.json")
    lines.append(f"{'tests/test_gpu.py':<46} {status(out, 'tests')}")
    if (out / "tests.log").exists():
        results = test_results((out / "tests.log").read_text())
        counts = {word: sum(result == word for _, result in results) for word in ("PASSED", "FAILED", "ERROR", "SKIPPED")}
        lines.append(f"{'  passed / failed / errors / skipped':<46} " + " / ".join(str(n) for n in counts.values()))
        lines += [f"  {result} {name}" for name, result in results if result in ("FAILED", "ERROR", "XPASS")]
    lines.append(f"{'throughput, eager (img/s)':<46} {status(out, 'benchmark')}")
    if (out / "benchmark.json").exists():
        lines += benchmark_table(out / "benchmark.json")
    if dry_run:
        lines.append("dry run: a CPU's figures on 320 generated images, not comparable with the targets")
    else:
        lines.append("targets (H100-class card): eager pl/bare >= 0.90 cnn, >= 0.80 dense; --compile cnn >= 50,000 and "
                     f"dense >= 200,000 img/s, both >= 3x torchvision (pl/tv); GAN <= {GAN_TARGET_SECONDS} s of training")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="gpu_check.sh's results folder")
    parser.add_argument("--dry-run", action="store_true", help="the figures are a dry run's (CPU, tiny data)")
    args = parser.parse_args()
    print(summary(args.out, args.dry_run))


if __name__ == "__main__":
    main()
