"""Hyperparameter search on Optuna: TPE sampling, median pruning on reported values, the 3x
guard as pruning, and a study that lives in storage, so that it survives crashes and many
workers (processes or machines) can share it.

    result, study = optuna_search(TwoLayerNetObjective(), {"lr": LogUniform(1e-5, 1e-1)}, 40,
                                  study_name="two-layer-net", storage="search.log")
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from lecture_lib.train.callbacks import Diverged
from lecture_lib.tuning.results import SearchResult, _check_direction, _finish, _takes_report
from lecture_lib.tuning.spaces import LogUniform, Uniform, _check_count, _check_space

__all__ = ["make_storage", "optuna_search", "parallel_optuna_search", "study_to_result"]

def make_storage(storage: str | Path | None = None):
    """Optuna storage: None -> journal file ``optuna_journal.log`` in the working folder; a path
    ending in ``.log`` -> that journal file; a database URL (``sqlite:///search.db``,
    ``postgresql://user:pw@host/db`` for a class cluster) is returned unchanged.

    Journal files and databases survive a crash or Ctrl-C: the study continues where it stopped.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if storage is None:
        storage = "optuna_journal.log"
    storage = str(storage)
    if "://" in storage:
        return storage
    if not storage.endswith(".log"):
        raise ValueError(f"storage must be a database URL or a journal file path ending in .log, got {storage!r}")
    return optuna.storages.JournalStorage(JournalFileBackend(storage))


def _suggest(trial, space: Mapping[str, Any]) -> dict:
    params = {}
    for name, spec in space.items():
        if isinstance(spec, LogUniform):
            params[name] = trial.suggest_float(name, spec.low, spec.high, log=True)
        elif isinstance(spec, Uniform):
            params[name] = trial.suggest_float(name, spec.low, spec.high)
        elif isinstance(spec, (list, tuple)):
            params[name] = trial.suggest_categorical(name, list(spec))
        else:
            params[name] = spec
    return params


def _optuna_objective(objective: Callable, space: Mapping[str, Any]):
    import optuna

    def run(trial):
        params = _suggest(trial, space)

        def report(step: int, value: float) -> None:
            trial.report(float(value), step)
            if trial.should_prune():  # median pruner: worse than the median of earlier trials here
                raise optuna.TrialPruned(f"pruned at step {step}")

        try:
            score = objective(params, report) if _takes_report(objective) else objective(params)
        except Diverged as error:  # the 3x guard, expressed as pruning
            trial.set_user_attr("diverged", str(error))
            raise optuna.TrialPruned(str(error)) from None
        if not math.isfinite(score):
            trial.set_user_attr("diverged", f"score {score}")
            raise optuna.TrialPruned(f"score {score}")
        return float(score)

    return run


def _make_study(study_name, storage, direction, seed, pruner):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study_name, storage=make_storage(storage), direction=direction, load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner if pruner is not None else optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))


def _finished(study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=states))


def _reached(study, n_trials: int, since: datetime.datetime) -> bool:
    """Whether finished trials plus the trials running now (started at or after ``since``) reach
    ``n_trials``. Counting the running trials of other workers keeps a parallel study from
    overshooting; a trial left RUNNING by a crash before ``since`` is not counted, so a resumed
    study still runs the trials that crash lost."""
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    in_flight = sum(t.datetime_start is not None and t.datetime_start >= since for t in running)
    return _finished(study) + in_flight >= n_trials


class _StopAtTotal:
    """Optuna callback: stop this worker once ``_reached`` (Optuna calls it after each trial)."""

    def __init__(self, n_trials: int, since: datetime.datetime):
        self.n_trials, self.since = n_trials, since

    def __call__(self, study, trial) -> None:
        if _reached(study, self.n_trials, self.since):
            study.stop()


def optuna_search(objective: Callable, space: Mapping[str, Any], n_trials: int, *,
                  study_name: str = "lecture-search", storage: str | Path | None = None,
                  direction: str = "maximize", seed: int = 0, pruner=None,
                  timeout: float | None = None):
    """The same search on Optuna: TPE sampler, median pruner on reported values, the 3x guard
    as pruning, persistent storage (see ``make_storage``).

    ``n_trials`` is the total the study should reach: run it again after a crash or Ctrl-C
    (same ``study_name`` and ``storage``) and it runs only the missing trials.

    Returns:
        ``(SearchResult, optuna.Study)``
    """
    _check_space(space)
    n_trials = _check_count("n_trials", n_trials)
    direction = _check_direction(direction)
    study = _optimize(objective, space, n_trials, study_name, storage, direction, seed, pruner, timeout,
                      since=datetime.datetime.now())  # Optuna stamps trials with local time
    return study_to_result(study, space), study


def _optimize(objective, space, n_trials, study_name, storage, direction, seed, pruner, timeout, since):
    """Run the trials the study misses to reach ``n_trials`` (see ``_reached``); return the study."""
    study = _make_study(study_name, storage, direction, seed, pruner)
    missing = n_trials - _finished(study)
    if missing > 0:
        study.optimize(_optuna_objective(objective, space), n_trials=missing, timeout=timeout,
                       catch=(), callbacks=[_StopAtTotal(n_trials, since)])
    return study


def _worker(objective, space, n_trials, study_name, storage, direction, seed, threads, pruner, barrier, since):
    torch.set_num_threads(threads)
    _make_study(study_name, storage, direction, seed, pruner)  # imports optuna, opens the storage
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # the first optimizer imports torch._dynamo (seconds)
    barrier.wait()  # all workers start their trials together, whatever their start-up time
    _optimize(objective, space, n_trials, study_name, storage, direction, seed, pruner, None, since)


def parallel_optuna_search(objective: Callable, space: Mapping[str, Any], n_trials: int, n_workers: int = 2, *,
                           study_name: str = "lecture-search", storage: str | Path | None = None,
                           direction: str = "maximize", seed: int = 0, threads_per_worker: int = 1,
                           pruner=None):
    """``n_workers`` processes join one study through its storage until it holds ``n_trials``.

    Each worker is what you would start on another machine: same ``study_name``, same
    ``storage`` (a PostgreSQL URL across machines). ``objective`` must be picklable (a
    module-level function or e.g. ``TwoLayerNetObjective``); workers get seeds ``seed + i`` so
    their first samples differ. ``pruner`` (picklable; default median pruner) as in
    ``optuna_search``. After each trial a worker counts the finished trials plus those the other
    workers are running and stops when they reach ``n_trials``, so the study ends with
    ``n_trials`` trials (Optuna's own ``MaxTrialsCallback`` counts finished trials only and lets
    each of the other workers start one more). Only two workers finishing within the same few
    milliseconds, between one's count and its next trial, can still add one trial.

    Returns:
        ``(SearchResult, optuna.Study)``
    """
    import multiprocessing

    _check_space(space)
    n_trials, n_workers = _check_count("n_trials", n_trials), _check_count("n_workers", n_workers)
    storage = "optuna_journal.log" if storage is None else str(storage)
    _make_study(study_name, storage, _check_direction(direction), seed, pruner)  # create it once, up front
    since = datetime.datetime.now()  # trials RUNNING before this moment are left over from a crash
    context = multiprocessing.get_context("spawn")  # fork + torch threads can deadlock
    barrier = context.Barrier(n_workers)
    workers = [context.Process(target=_worker, args=(objective, dict(space), n_trials, study_name, storage,
                                                     direction, seed + i, threads_per_worker, pruner, barrier,
                                                     since))
               for i in range(n_workers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    bad = [w.exitcode for w in workers if w.exitcode != 0]
    if bad:
        raise RuntimeError(f"optuna workers must exit with code 0, got {bad}")
    study = _make_study(study_name, storage, direction, seed, None)
    return study_to_result(study, space), study


def study_to_result(study, space: Mapping[str, Any]) -> SearchResult:
    """An Optuna study as a ``SearchResult`` (trial order = trial number)."""
    import optuna

    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    fixed = {n: s for n, s in space.items() if not isinstance(s, (LogUniform, Uniform, list, tuple))}
    trials = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state == optuna.trial.TrialState.COMPLETE:
            status = "ok"
        elif t.state == optuna.trial.TrialState.PRUNED:
            status = "diverged" if "diverged" in t.user_attrs else "pruned"
        elif t.state == optuna.trial.TrialState.FAIL:
            status = "failed"
        else:
            continue  # running (another worker) or waiting
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else float("nan")
        trials.append({"params": {**t.params, **fixed}, "score": t.value if status == "ok" else float("nan"),
                       "status": status, "stage": 0, "seconds": seconds, "number": t.number,
                       "curve": sorted(t.intermediate_values.items())})
    return _finish(trials, [dict(space)], direction)


