"""Many machines, one study: two sweep processes in their own folders share a real PostgreSQL
server, started by the test (Debian's `postgresql` package) and always stopped."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import optuna
import pytest
from optuna.trial import TrialState

from conftest import ROOT, make_idx_folder

SERVER_PROGRAMS = "/usr/lib/postgresql/*/bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run `command` as its own system user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def postgres() -> Iterator[str]:
    """The URL of a throwaway PostgreSQL server on a free loopback port, stopped afterwards."""
    found = sorted(glob.glob(f"{SERVER_PROGRAMS}/pg_ctl"))
    if not found:
        pytest.skip(f"PostgreSQL's server programs are not installed (no {SERVER_PROGRAMS}/pg_ctl): "
                    "apt-get install postgresql")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as its own user")
    bin_dir = Path(found[-1]).parent
    home = Path(tempfile.mkdtemp(prefix="mnist-pl-postgres-"))  # not pytest's tmp_path: postgres must enter it
    home.chmod(0o755)
    data = home / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(home, "postgres", "postgres")
    port = free_port()
    ctl = as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(home / "server.log")])
    try:
        subprocess.run(as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*ctl, "-w", "-o", f"-p {port} -k {home} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, timeout=120)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_two_machines_finish_the_asked_trials_together(postgres, tmp_path):
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
    for folder in machines:
        make_idx_folder(folder / "data", n_train=200, n_test=32)
        (folder / "space.yaml").write_text("model.lr: {low: 0.001, high: 0.01, log: true}\n")
    args = ["-m", "mnist_pl", "sweep", "--model", "dense", "--space", "space.yaml", "--study", "shared",
            "--storage", postgres, "--trials", "4", "--max-epochs", "1", "--pruner", "none",
            "--data-dir", "data", "--set", "model.hidden_sizes=[16]", "--set", "data.batch_size=32"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, *args], cwd=folder, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for folder in machines]
    try:
        outputs = [worker.communicate(timeout=600) for worker in workers]
    finally:
        for worker in workers:  # a failing (or timed-out) test leaves no sweep running
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    storage = postgres.replace("postgresql://", "postgresql+psycopg://")
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # together: the four asked for, or one more where both started one at the same moment
    assert 4 <= len(complete) <= 5 and len(trials) == len(complete), [t.state for t in trials]
    # each trial ran once, on one machine, in that machine's own folder
    ran = sorted(p.name for folder in machines for p in (folder / "runs" / "sweeps" / "shared").glob("trial_*"))
    assert ran == [f"trial_{t.number:04d}" for t in sorted(complete, key=lambda t: t.number)]
    for out, _ in outputs:
        assert "optuna-dashboard postgresql+psycopg://postgres@127.0.0.1" in out
