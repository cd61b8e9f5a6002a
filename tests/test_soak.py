"""benchmarks/soak.py, short: one run SIGKILLed 3 times at seeded random moments and restarted
with the same --resume auto command ends bit-identical to the run never stopped."""

from __future__ import annotations

import pytest

from conftest import run_cli


@pytest.mark.slow
def test_three_random_kills_end_bit_identical(subset_dir, tmp_path):
    proc = run_cli("benchmarks/soak.py", "--kills", "3", "--seed", "1", "--epochs", "2", "--images", "400",
                   "--data-dir", str(subset_dir), "--workdir", str(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("kill ") and line.endswith(": killed") for line in lines) == 3
    assert "soak: bit-identical after 3 kills" in proc.stdout and "FAIL" not in proc.stdout
