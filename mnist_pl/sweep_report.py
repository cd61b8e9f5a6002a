"""What a sweep shows and leaves behind: the table of trials, trials.csv, best.yaml, pictures of
the search, and the commands to look further (TensorBoard's HPARAMS tab, optuna-dashboard)."""

from __future__ import annotations

import csv
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from .errors import first_line
from .sweep import SweepSettings, is_finished, retried_numbers, trial_config, trial_minutes

STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
          TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
PICTURES = {"history.png": "plot_optimization_history", "importances.png": "plot_param_importances",
            "curves.png": "plot_intermediate_values"}


def shown(path: str | Path | None) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    if path is None:
        return "-"
    absolute = Path(path).resolve()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(path)


def _state(trial: FrozenTrial, continued_by: dict[int, int]) -> str:
    if trial.number in continued_by:
        return f"interrupted, continued by {continued_by[trial.number]}"
    return STATES.get(trial.state, trial.state.name.lower())


def _note(trial: FrozenTrial) -> str:
    notes = []
    if trial.user_attrs.get("from_config"):
        notes.append("the config's own values")
    if "failed_trial" in trial.system_attrs:
        notes.append(f"continues trial {trial.system_attrs['retry_history'][-1]}")
    if trial.state == TrialState.FAIL and "fail_reason" in trial.user_attrs:
        notes.append(trial.user_attrs["fail_reason"])
    return "; ".join(notes)


def rows(study: optuna.Study, settings: SweepSettings) -> list[dict[str, Any]]:
    """One row a trial: its number, values, metric, state, minutes, folder and notes."""
    trials = study.get_trials(deepcopy=False)
    continued_by = {number: t.number for t in trials for number in t.system_attrs.get("retry_history", [])[-1:]}
    table = []
    for trial in trials:
        row: dict[str, Any] = {"trial": trial.number}
        row.update({key: trial.params.get(key) for key in settings.space.keys()})
        row[settings.metric] = trial.user_attrs.get("best_value")
        row["best_epoch"] = trial.user_attrs.get("best_epoch")
        row["state"] = _state(trial, continued_by)
        minutes = trial_minutes(trial)
        row["minutes"] = round(minutes, 2) if minutes is not None else None
        row["trial_dir"] = shown(trial.user_attrs.get("trial_dir"))
        row["note"] = _note(trial)
        table.append(row)
    return table


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The complete trial with the best value (pruned trials stopped early and do not count)."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not complete:
        return None
    return (max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min)(complete, key=lambda t: float(t.value or 0.0))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(table: list[dict[str, Any]], settings: SweepSettings, best: int | None) -> str:
    """The trials as aligned text; the best one marked with *. Keys are shortened to their last
    part where that is unambiguous (lr for model.lr)."""
    keys = settings.space.keys()
    short = [k.rpartition(".")[2] for k in keys]
    names = short if len(set(short)) == len(short) else keys
    header = ["trial", *names, settings.metric, "state", "minutes"]
    lines = [[("*" if row["trial"] == best else "") + str(row["trial"]), *(_cell(row[k]) for k in keys),
              f"{row[settings.metric]:.4f}" if row[settings.metric] is not None else "-", row["state"],
              f"{row['minutes']:.1f}" if row["minutes"] is not None else "-"] for row in table]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines)]
    text = ["  ".join(cell.rjust(w) if i != len(header) - 2 else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(line, widths))).rstrip() for line in [header, *lines]]
    notes = [f"  trial {row['trial']}: {row['note']}" for row in table if row["note"]]
    return "\n".join(text + notes)


def write_csv(table: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(table[0]) if table else ["trial"])
        writer.writeheader()
        writer.writerows(table)


def write_best(study: optuna.Study, trial: FrozenTrial, settings: SweepSettings, path: Path) -> None:
    """The best trial's full config, to train as any config: `train --config best.yaml`."""
    config = trial_config(settings, trial.params, Path(settings.config["logdir"]))
    header = (f"# The best trial of the sweep {settings.study!r}: trial {trial.number}, {settings.metric} "
              f"{trial.value:.4f} at epoch {trial.user_attrs.get('best_epoch')}\n"
              f"# (its run: {shown(trial.user_attrs.get('run_dir'))}).\n"
              f"# Train it: mnist-pl train --model {settings.model} --config {path}\n")
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))


def draw_pictures(study: optuna.Study, settings: SweepSettings) -> dict[str, str]:
    """history.png (the metric trial by trial, and the best so far), importances.png (how much
    each key mattered) and curves.png (the metric epoch by epoch, pruned trials stopping
    early), drawn by Optuna's matplotlib plots; what could not be drawn, and why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    from optuna.visualization import matplotlib as plots

    skipped = {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for name, function in PICTURES.items():
        if name == "importances.png" and len(complete) < 2:
            skipped[name] = "needs two complete trials"
            continue
        if name == "history.png" and not complete:
            skipped[name] = "no complete trial"
            continue
        if name == "curves.png" and not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            skipped[name] = "no trial reached the end of an epoch"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kwargs = {"target_name": settings.metric} if name != "curves.png" else {}
                axes = getattr(plots, function)(study, **kwargs)
            axes = axes.flat[0] if hasattr(axes, "flat") else axes
            if name == "curves.png":
                axes.set_xlabel("epoch")
                axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
                axes.set_ylabel(f"{settings.metric} (validation)")
            figure = axes.figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            figure.savefig(settings.study_dir / name, dpi=100)
            plt.close(figure)
        except Exception as err:  # a study the plot cannot draw (e.g. values that never varied)
            skipped[name] = first_line(err, type(err).__name__)
            plt.close("all")
    return skipped


def dashboard_command(settings: SweepSettings) -> str:
    command = f"optuna-dashboard {settings.storage}"
    if importlib.util.find_spec("optuna_dashboard") is None:
        command += "   (pip install optuna-dashboard)"
    return command


def report_sweep(study: optuna.Study, settings: SweepSettings) -> str:
    """Write trials.csv, best.yaml and the pictures into the study's folder; return the summary
    to print: the table, then where everything is."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    finished = [t for t in trials if is_finished(t, retried)]
    counts = {state: sum(t.state == state for t in finished) for state in (TrialState.COMPLETE, TrialState.PRUNED,
                                                                           TrialState.FAIL)}
    folder = settings.study_dir
    table = rows(study, settings)
    best = best_trial(study)
    write_csv(table, folder / "trials.csv")
    lines = [f"Sweep {settings.study!r}: {len(finished)} of {settings.trials} trials finished "
             f"({counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
             f"{counts[TrialState.FAIL]} failed); {settings.metric} ({settings.mode}) on validation data",
             "", format_table(table, settings, best.number if best else None), ""]
    written = ["trials.csv"]
    if best is not None:
        write_best(study, best, settings, folder / "best.yaml")
        written.append("best.yaml")
        lines.append(f"Best:        trial {best.number}, {settings.metric} {best.value:.4f} "
                     f"(epoch {best.user_attrs.get('best_epoch')}): {shown(best.user_attrs.get('run_dir'))}")
        lines.append(f"Train it:    mnist-pl train --model {settings.model} --config {folder / 'best.yaml'}")
    skipped = draw_pictures(study, settings) if trials else dict.fromkeys(PICTURES, "no trials")
    written += [name for name in PICTURES if name not in skipped]
    lines.append(f"Results:     {folder}/ ({', '.join(written)})")
    lines += [f"             {name} not drawn: {why}" for name, why in skipped.items()]
    lines.append(f"TensorBoard: tensorboard --logdir {folder}   (HPARAMS tab: each trial's values and metrics)")
    lines.append(f"Dashboard:   {dashboard_command(settings)}")
    return "\n".join(lines)
