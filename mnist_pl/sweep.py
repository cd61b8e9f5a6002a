"""Sweeps: an Optuna study over config keys, each trial an ordinary mnist-pl training run.

- The study lives in a storage: by default a SQLite file in the study's folder
  (<logdir>/sweeps/<study>/study.db), which several processes on one machine share; for many
  machines a PostgreSQL server (`--storage postgresql://user@host:port/database`).
- A trial is train() with the trial's values (space.py), its run under
  <logdir>/sweeps/<study>/trial_NNNN/ like any run of `train --logdir` there. It reports the
  validation metric every epoch, for the pruner; its value is the best validation value of the
  metric. Test data never chooses.
- `--trials N` counts finished trials (complete, pruned or failed) across all workers.
- A trial whose worker died is retried as a new trial that continues from the dead trial's
  last.ckpt (train(resume=...)). Death is found by Optuna's heartbeats (any machine, after
  HEARTBEAT_GRACE_S), and at once on the same machine by the worker's lock file, which the
  operating system releases when the process ends, however it ends. A trial stopped by Ctrl-C
  continues the same way on the next run.
- `--workers K` starts K processes on this machine, the cores shared out between them.

The results (table, trials.csv, best.yaml, pictures) are sweep_report.py's.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import fcntl
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import lightning as L
import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from .callbacks import BestValidation
from .errors import TrainingStopped, UserError, first_line
from .outputs import removed_if_failed
from .registry import model_class
from .runs import last_checkpoints
from .space import Dimension, Space, set_config_value
from .training import train

HEARTBEAT_S = 10  # a running trial's worker writes a heartbeat this often
HEARTBEAT_GRACE_S = 60  # a trial without one for this long is taken for dead, on any machine
MAX_RETRIES = 3  # a trial whose worker dies more often than this stays failed
CONNECT_TIMEOUT_S = 5  # a database server that does not answer within this is reported unreachable
PRUNERS = ("median", "hyperband", "none")
# config keys that say where and on what a trial runs, not what it is: each machine of a study
# may set them its own way
LOCAL_KEYS = ("logdir", "data.data_dir", "trainer.accelerator", "trainer.devices", "compile", "profile")


class MetricNotLogged(UserError):
    """--metric names nothing the model logs in validation: every trial would fail alike."""


class TrialFailed(Exception):
    """A trial failed on its own (a setting that cannot be built, a diverged training): it is
    recorded as failed with this one-line reason, and the sweep goes on."""


@dataclasses.dataclass
class SweepSettings:
    """Everything a worker needs, resolved and checked: what `prepare_sweep` returns."""

    model: str
    config: dict[str, Any]  # the config every trial starts from (logdir: the user's)
    space: Space
    study: str
    study_dir: Path
    storage: str  # a SQLAlchemy URL
    trials: int
    metric: str
    mode: str  # "max" or "min"
    pruner: str

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["space"] = {"name": self.space.name, "path": str(self.space.path),
                         "dimensions": [d.as_dict() for d in self.space.dimensions]}
        data["study_dir"] = str(self.study_dir)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> SweepSettings:
        data = json.loads(text)
        space = data["space"]
        data["space"] = Space(space["name"], Path(space["path"]),
                              tuple(Dimension.from_dict(d) for d in space["dimensions"]))
        data["study_dir"] = Path(data["study_dir"])
        return cls(**data)

    def fingerprint(self) -> dict[str, Any]:
        """What makes two sweeps the same study: saved with the study, compared on every run."""
        config = copy.deepcopy(self.config)
        for key in LOCAL_KEYS:
            section, _, name = key.rpartition(".")
            (config[section] if section else config).pop(name, None)
        return {"model": self.model, "metric": self.metric, "mode": self.mode,
                "space": {d.key: d.describe() for d in self.space.dimensions}, "config": config}


# ------------------------------------------------------------------------------ storage

def storage_url(url: str | None, study_dir: Path) -> str:
    """The SQLAlchemy URL of --storage: default, SQLite in the study's folder; a PostgreSQL URL
    as PostgreSQL writes it (postgresql://user@host:port/db) gets the psycopg driver."""
    if url is None:
        return f"sqlite:///{(study_dir / 'study.db').resolve()}"
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def _where(url: str) -> str:
    """The server of a URL, as a user would name it: "db.example.org:5432"."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}" if parsed.host or parsed.port else str(parsed.database)


def open_storage(url: str, heartbeats: bool = True) -> RDBStorage:
    """Optuna's RDBStorage at `url`, with heartbeats that retry a dead worker's trial, or a
    UserError naming the server and the fix. A server that does not answer fails within
    CONNECT_TIMEOUT_S."""
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UserError(f"--storage {url}: not a database URL; write postgresql://USER@HOST:PORT/DATABASE, "
                        "or leave out --storage for the study's own SQLite file.") from None
    if parsed.get_backend_name() == "sqlite":
        connect_args: dict[str, Any] = {"timeout": 60}  # workers wait for each other's writes
    else:
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S}
    retry: dict[str, Any] = {}
    if heartbeats:
        retry = {"heartbeat_interval": HEARTBEAT_S, "grace_period": HEARTBEAT_GRACE_S,
                 "heartbeat_stale_trial_callback": _retry_callback()}
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs={"connect_args": connect_args}, **retry)
        except (ImportError, sqlalchemy.exc.NoSuchModuleError) as err:
            raise UserError(f"--storage {url}: its database driver is not installed ({err}); "
                            "pip install 'psycopg[binary]' for PostgreSQL.") from None
        except sqlalchemy.exc.OperationalError as err:
            reason = first_line(err.orig or err)
            raise UserError(f"--storage: cannot reach the study's database at {_where(url)} ({reason}); "
                            "start the server or check the host, port, user and database in the URL, "
                            "or leave out --storage for the study's own SQLite file.") from None
        except sqlalchemy.exc.DBAPIError:
            # two workers creating a new database's tables at once: the second one waits its turn
            if attempt == 2:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _retry_callback() -> RetryHeartbeatStaleTrialCallback:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES, inherit_intermediate_values=True)


# ------------------------------------------------------------------------------ the study

def _sampler(trials: int) -> optuna.samplers.BaseSampler:
    # a third of the trials (at most Optuna's usual ten) sampled at random before TPE models
    # the results; unseeded, so that workers and reruns draw different values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(n_startup_trials=min(10, max(2, trials // 3)))


def _pruner(name: str, trials: int, max_epochs: int) -> optuna.pruners.BasePruner:
    if name == "median":
        # a trial is compared with the median of the others at the same epoch, once a few have finished
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, trials // 4)))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs)
    return optuna.pruners.NopPruner()


def load_study(settings: SweepSettings, storage: RDBStorage | None = None) -> optuna.Study:
    """The study of `settings` (made if new); a study made by a different sweep is refused."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # mnist-pl says how each trial ended itself
    storage = storage or open_storage(settings.storage)
    study = optuna.create_study(
        storage=storage, study_name=settings.study, load_if_exists=True,
        direction="maximize" if settings.mode == "max" else "minimize",
        sampler=_sampler(settings.trials),
        pruner=_pruner(settings.pruner, settings.trials, settings.config["trainer"]["max_epochs"]))
    saved, mine = study.user_attrs.get("sweep"), json.loads(json.dumps(settings.fingerprint()))
    finished = any(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    if saved != mine and not finished:  # a new study, or one whose sweep never finished a trial
        study.set_user_attr("sweep", mine)
    elif saved != mine:
        raise UserError(f"study {settings.study!r} in {_where_study(settings)} was made by another sweep "
                        f"({_difference(saved or {}, mine)}); run the same command as before to continue it, "
                        "or give this sweep its own --study NAME.")
    return study


def _where_study(settings: SweepSettings) -> str:
    return str(settings.study_dir / "study.db") if settings.storage.startswith("sqlite") else _where(settings.storage)


def _difference(saved: dict[str, Any], mine: dict[str, Any], prefix: str = "") -> str:
    """The first setting that differs, as "model.lr: [0.001, 0.1] log then, [0.0005, 0.01] log now"."""
    for key in sorted(set(saved) | set(mine)):
        old, new = saved.get(key), mine.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            return _difference(old, new, f"{prefix}{key}." if key not in ("config", "space") else prefix)
        return f"{prefix}{key}: {old!r} then, {new!r} now"
    return "its settings differ"


def enqueue_config_values(study: optuna.Study, settings: SweepSettings) -> None:
    """Queue the config's own values as the study's first trial, if they lie in the space:
    the sweep then never ends worse than the config it starts from."""
    values = settings.space.values_of(settings.config)
    if values is not None and not study.get_trials(deepcopy=False):
        study.enqueue_trial(values, user_attrs={"from_config": True}, skip_if_exists=True)


# ------------------------------------------------------------------------------ which trials count

def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """The trials another trial continues (a retry names every trial it follows)."""
    return {number for t in trials for number in t.system_attrs.get("retry_history", [])}


def is_finished(trial: FrozenTrial, retried: set[int]) -> bool:
    """Whether `trial` counts towards --trials: complete, pruned, or failed for good (not
    continued by a retry, nor waiting for one)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and trial.number not in retried and not awaits_retry(trial)


def awaits_retry(trial: FrozenTrial) -> bool:
    """A trial stopped from outside (its worker killed, or Ctrl-C) that a retry will continue."""
    return (trial.state == TrialState.FAIL and "interrupted" in trial.user_attrs
            and len(trial.system_attrs.get("retry_history", [])) < MAX_RETRIES)


# ------------------------------------------------------------------------------ workers on this machine

class WorkerLock:
    """A file that this process holds locked while it lives: another process on this machine
    that can lock it knows this one has ended (killed too: the system drops the lock)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = (folder / f"{socket.gethostname()}-{os.getpid()}.lock").resolve()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def describe(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "lock": str(self.path)}

    def close(self, remove: bool = True) -> None:
        """Release the lock; `remove` the file too, unless a trial of this worker was left
        RUNNING (an interrupted worker): the next worker on this machine finds it free."""
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(self._fd)


def worker_has_ended(worker: dict[str, Any] | None) -> bool:
    """Whether the worker of a RUNNING trial is known to be gone: it ran on this machine and its
    lock file is free. Workers elsewhere are judged by their heartbeats."""
    if not worker or worker.get("host") != socket.gethostname():
        return False
    try:
        fd = os.open(worker["lock"], os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(worker["lock"])
    return True


class StartGate:
    """A lock the workers on this machine take to decide whether to start a trial and to start
    it, so that together they start no more than --trials. (Workers on other machines may
    start one more, where two start at the same moment.)"""

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._held = False

    def acquire(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._held = True

    def release(self) -> None:
        if self._held:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._held = False

    def close(self) -> None:
        self.release()
        os.close(self._fd)


def recover_interrupted(study: optuna.Study) -> None:
    """Retry the trials whose worker is gone, each as a new trial that continues it: those
    of dead workers on this machine (at once), of stale heartbeats anywhere (Optuna's rule), and
    those stopped by Ctrl-C."""
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if worker_has_ended(trial.user_attrs.get("worker")):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                storage.set_trial_user_attr(trial._trial_id, "interrupted", "its worker ended while it ran")
                storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # other machines' dead workers: Optuna retries them
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    for trial in trials:
        if awaits_retry(trial) and trial.number not in retried:
            _retry_callback()(study, copy.deepcopy(trial))


# ------------------------------------------------------------------------------ a trial

class TrialReport(BestValidation):
    """Reports the metric to the Optuna trial after each validation, and stops a trial the
    pruner gives up on at the end of that epoch (the run then ends as any run does: tested,
    with its results.json and its HPARAMS). A diverged run (a metric or loss that is not a
    finite number) fails its trial. Its best value travels in checkpoints, as
    BestValidation's does, so a resumed trial knows the epochs before the resume."""

    def __init__(self, trial: optuna.Trial, monitor: str, mode: str):
        super().__init__(monitor, mode)
        self.trial = trial
        self.pruned_at: int | None = None

    @property
    def state_key(self) -> str:
        return f"TrialReport[{self.monitor}]"

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            logged = sorted(k for k in metrics if not k.startswith("train/")) or ["nothing"]
            raise MetricNotLogged(f"--metric {self.monitor}: the {type(pl_module).__name__} logs no such "
                                  f"metric in validation (it logs {', '.join(logged)}); pick one of those.")
        epoch = trainer.current_epoch
        for key, value in metrics.items():
            if (key == self.monitor or "loss" in key) and not math.isfinite(float(value)):
                raise TrialFailed(f"the training diverged: {key} is {float(value)} at epoch {epoch} "
                                  "(a learning rate too high?)")
        super().on_validation_end(trainer, pl_module)
        self.trial.report(float(metrics[self.monitor]), epoch)
        last_epoch = trainer.max_epochs is not None and epoch >= trainer.max_epochs - 1
        if not last_epoch and self.trial.should_prune():  # after the last epoch there is nothing to save
            self.pruned_at = epoch
            trainer.should_stop = True


def one_line(err: BaseException) -> str:
    text = first_line(err)
    return text if isinstance(err, (UserError, TrialFailed)) else f"{type(err).__name__}: {text or 'no message'}"


def trial_config(settings: SweepSettings, values: dict[str, Any], trial_dir: Path) -> dict[str, Any]:
    config = copy.deepcopy(settings.config)
    for key, value in values.items():
        set_config_value(config, key, value)
    config["logdir"] = str(trial_dir)
    return config


def last_checkpoint(trial_dir: Path, model: str) -> Path | None:
    found = sorted(last_checkpoints(trial_dir, model), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def run_trial(trial: optuna.Trial, settings: SweepSettings, worker: dict[str, Any],
              say: Callable[[str], None] = print) -> float:
    """One trial: train() with the trial's values, continuing the trial it retries (if any)
    from that trial's last.ckpt; the best validation value of the metric."""
    values = {d.key: d.suggest(trial) for d in settings.space.dimensions}
    # the first of the trials this one continues (see RetryHeartbeatStaleTrialCallback)
    continued = trial.study._storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")
    trial_dir = Path(trial.user_attrs.get("trial_dir") or (settings.study_dir / f"trial_{trial.number:04d}").resolve())
    resume = last_checkpoint(trial_dir, settings.model) if continued is not None else None
    if continued is not None and resume is None:
        # the dead worker saved nothing here (or it ran on another machine): start afresh
        trial_dir = (settings.study_dir / f"trial_{trial.number:04d}").resolve()
    trial.set_user_attr("trial_dir", str(trial_dir))
    trial.set_user_attr("worker", worker)
    shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
    again = f", continuing trial {continued} from {resume}" if resume else ""
    say(f"trial {trial.number} started: {shown}{again}")
    report = TrialReport(trial, settings.metric, settings.mode)
    sources = {key: f"trial {trial.number} of the sweep" for key in values}
    try:
        results = train(settings.model, trial_config(settings, values, trial_dir), resume=resume,
                        sources=sources, callbacks=[report], progress_bar=False)
    except (KeyboardInterrupt, SystemExit) as err:
        # Ctrl-C (Lightning turns it into SystemExit): the next run continues this trial
        trial.set_user_attr("interrupted", "stopped by Ctrl-C")
        raise KeyboardInterrupt from err
    except TrainingStopped as stop:  # a scheduler's signal: last.ckpt holds the step reached
        name = signal.Signals(stop.signal_number).name
        trial.set_user_attr("interrupted", f"stopped by {name}")
        raise TrainingStopped(f"stopped by {name} in trial {trial.number}, its last.ckpt saved; run the same "
                              "sweep command to continue the sweep and this trial.", stop.signal_number,
                              stop.report) from None
    except MetricNotLogged:
        raise
    except Exception as err:
        trial.set_user_attr("fail_reason", one_line(err))
        raise TrialFailed(one_line(err)) from err
    trial.set_user_attr("run_dir", results["run_dir"])
    trial.set_user_attr("seconds", results["seconds"])
    if report.value is None:
        trial.set_user_attr("fail_reason", f"no validation of {settings.metric} ran")
        raise TrialFailed(f"no validation of {settings.metric} ran")
    trial.set_user_attr("best_value", report.value)
    trial.set_user_attr("best_epoch", report.epoch)
    if report.pruned_at is not None:
        raise optuna.TrialPruned(f"pruned after epoch {report.pruned_at}")
    return report.value


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def run_worker(settings: SweepSettings, name: str = "", say: Callable[[str], None] = print) -> None:
    """Run trials of the study until it holds --trials finished ones (counting every worker's),
    retrying interrupted trials first."""
    study = load_study(settings)
    lock = WorkerLock(settings.study_dir / "workers")
    gate = StartGate(settings.study_dir / "workers" / "start.lock")
    prefix = f"[{name}] " if name else ""

    def objective(trial: optuna.Trial) -> float:
        gate.release()  # the trial is RUNNING in the study: others may decide now
        return run_trial(trial, settings, lock.describe(), lambda text: say(prefix + text))

    def finished(study: optuna.Study, trial: FrozenTrial) -> None:
        say(prefix + describe_end(trial, settings))

    ended_cleanly = False
    try:
        while True:
            gate.acquire()
            try:
                recover_interrupted(study)
                trials = study.get_trials(deepcopy=False)
                retried = retried_numbers(trials)
                done = sum(is_finished(t, retried) for t in trials)
                running = sum(t.state == TrialState.RUNNING for t in trials)
                waiting = any(t.state == TrialState.WAITING for t in trials)
                if not waiting and done + running >= settings.trials:
                    ended_cleanly = True
                    return
                study.optimize(objective, n_trials=1, catch=(TrialFailed,), callbacks=[finished])
            finally:
                gate.release()
    finally:
        gate.close()
        lock.close(remove=ended_cleanly)


def trial_minutes(trial: FrozenTrial) -> float | None:
    """How long a trial ran, in minutes (None: it has not ended, or never started)."""
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds() / 60


def describe_end(trial: FrozenTrial, settings: SweepSettings) -> str:
    """One line for a trial that has ended."""
    minutes = trial_minutes(trial) or 0.0
    best = trial.user_attrs.get("best_value")
    value = f"{settings.metric} {best:.4f}" if best is not None else ""
    if trial.state == TrialState.COMPLETE:
        return f"trial {trial.number} complete: {value} (epoch {trial.user_attrs.get('best_epoch')}), {minutes:.1f} min"
    if trial.state == TrialState.PRUNED:
        return f"trial {trial.number} pruned: {value}, {minutes:.1f} min"
    reason = trial.user_attrs.get("interrupted") or trial.user_attrs.get("fail_reason", "")
    return f"trial {trial.number} failed: {reason}"


# ------------------------------------------------------------------------------ many workers

def _die_with_parent() -> None:
    """In a worker process (Linux): end when the sweep that started it ends, even if killed."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run_workers(settings: SweepSettings, workers: int) -> int:
    """Run `workers` worker processes on this machine, the cores shared out between them;
    returns 0, or the first failing worker's exit status (it printed its own error)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = str(max(1, cores // workers))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
    code = "import sys; from mnist_pl.sweep import worker_main; sys.exit(worker_main(sys.argv[1], sys.argv[2]))"
    processes = [subprocess.Popen([sys.executable, "-c", code, settings.to_json(), f"worker {i + 1}"], env=env,
                                  preexec_fn=_die_with_parent if sys.platform == "linux" else None)
                 for i in range(workers)]
    def forward(signum: int, frame: Any) -> None:  # a scheduler's SIGTERM reaches the workers too
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        statuses = [process.wait() for process in processes]
    except KeyboardInterrupt:  # the workers got the Ctrl-C too: let them record their trials
        for process in processes:
            process.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return next((status for status in statuses if status), 0)


def worker_main(settings_json: str, name: str) -> int:
    """A worker process of `run_workers`: its trials; exit status 2 after a user mistake."""
    from .environment import keep_freed_memory

    keep_freed_memory()
    try:
        run_worker(SweepSettings.from_json(settings_json), name)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingStopped as stop:
        print(f"[{name}] {stop}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:
        return 130
    return 0


def run_sweep(settings: SweepSettings, workers: int = 1, say: Callable[[str], None] = print) -> optuna.Study:
    """Run the sweep of `settings` with `workers` processes on this machine (1: in this one)
    until the study holds `settings.trials` finished trials; return the study. Rerun with the
    same settings, it continues the study and its interrupted trials."""
    remote = not settings.storage.startswith("sqlite")
    storage = open_storage(settings.storage) if remote else None  # reachable? before any folder is made
    # a sweep refused (or stopped) before its first trial leaves the log folder as it was
    with removed_if_failed(settings.study_dir, "trial_*", failures=(BaseException,)):
        settings.study_dir.mkdir(parents=True, exist_ok=True)
        study = load_study(settings, storage)
        enqueue_config_values(study, settings)
    if workers == 1:
        run_worker(settings, say=say)
    else:
        status = run_workers(settings, workers)
        if status:
            raise SystemExit(status)
    return study


def default_mode(model: str, metric: str) -> str:
    """Whether a higher (max) or lower (min) `metric` is better: the model's own rule for its
    checkpoint_monitor; for another metric, lower for losses and distances, else higher."""
    cls = model_class(model)
    if metric == cls.checkpoint_monitor:
        return cls.checkpoint_mode
    return "min" if any(word in metric for word in ("loss", "distance", "error")) else "max"
