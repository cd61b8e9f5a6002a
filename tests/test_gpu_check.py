"""benchmarks/gpu_check.sh's summary (benchmarks/gpu_check_summary.py): it reads pytest's lines
with and without pytest-xdist, tells a part that failed, timed out or did not run, and keeps
compile time apart from training time. (GPU_CHECK_DRY_RUN=1 runs the whole script on a CPU.)"""

from __future__ import annotations

import importlib.util
import json

from conftest import ROOT

spec = importlib.util.spec_from_file_location("gpu_check_summary", ROOT / "benchmarks" / "gpu_check_summary.py")
gpu_check_summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check_summary)

ONE_PROCESS = """\
tests/test_gpu.py::test_default_models_train_on_the_gpu PASSED           [  6%]
tests/test_gpu.py::test_compile_on_the_gpu[gan] FAILED                   [ 18%]
tests/test_gpu.py::test_bf16_mixed_precision_trains SKIPPED (needs a CUDA GPU (torch.cuda.is_available() is False)) [ 25%]
tests/test_gpu.py::test_no_sync_inside_training_steps[gan-bf16-mixed] ERROR [ 31%]
"""
XDIST = """\
[gw1] [  6%] PASSED tests/test_gpu.py::test_default_models_train_on_the_gpu
[gw0] [ 18%] FAILED tests/test_gpu.py::test_compile_on_the_gpu[gan]
[gw3] [ 25%] SKIPPED tests/test_gpu.py::test_bf16_mixed_precision_trains
[gw2] [ 31%] ERROR tests/test_gpu.py::test_no_sync_inside_training_steps[gan-bf16-mixed]
"""
EXPECTED = [("tests/test_gpu.py::test_default_models_train_on_the_gpu", "PASSED"),
            ("tests/test_gpu.py::test_compile_on_the_gpu[gan]", "FAILED"),
            ("tests/test_gpu.py::test_bf16_mixed_precision_trains", "SKIPPED"),
            ("tests/test_gpu.py::test_no_sync_inside_training_steps[gan-bf16-mixed]", "ERROR")]


def test_test_lines_are_read_with_and_without_xdist():
    assert gpu_check_summary.test_results(ONE_PROCESS) == EXPECTED
    assert gpu_check_summary.test_results(XDIST) == EXPECTED
    # the short summary at the end ("FAILED tests/...::name - reason") is not a second result
    assert gpu_check_summary.test_results(XDIST + "FAILED tests/test_gpu.py::test_compile_on_the_gpu[gan] - x\n") \
        == EXPECTED


def test_summary_shows_each_part_and_keeps_compile_time_apart(tmp_path):
    (tmp_path / "tests.log").write_text("collected 4 items\n" + XDIST)
    (tmp_path / "tests.rc").write_text("1 95\n")
    (tmp_path / "gan_eager.rc").write_text("124 35\n")
    (tmp_path / "benchmark.skipped").write_text("not run: out of time\n")
    (tmp_path / "gan_compiled.rc").write_text("0 61\n")
    run = tmp_path / "runs-compiled" / "gan" / "version_0"
    run.mkdir(parents=True)
    run.joinpath("results.json").write_text(json.dumps({"epochs": 20, "global_step": 2240, "seconds": 50.5,
                                                        "compile_seconds": 41.2}))
    text = gpu_check_summary.summary(tmp_path)
    lines = {line.strip().split("  ")[0]: line for line in text.splitlines()}
    assert "ok, 61 s" in lines["default GAN, --compile"]
    assert "50.5 s in all, 41.2 s of it compiling, 9.3 s the rest (target <= 8)" in text
    assert "timed out, 35 s" in lines["default GAN"]
    assert "failed (exit 1), 95 s" in lines["tests/test_gpu.py"]
    assert "1 / 1 / 1 / 1" in lines["passed / failed / errors / skipped"]
    assert "  FAILED tests/test_gpu.py::test_compile_on_the_gpu[gan]" in text.splitlines()
    assert "not run (out of time)" in lines["throughput, eager (img/s)"]
    assert "not run (not in GPU_CHECK_PARTS)" in lines["throughput, --compile (img/s)"]
