"""Search across processes and machines: workers that share one study through its storage.

A worker is a process that opens the study and runs trials until the study holds
``n_trials`` (``run_trials``). On one machine, ``parallel_optuna_search`` starts several. Across
machines, the study lives in a database every machine reaches (PostgreSQL) and carries its own
recipe (the search space, the objective's settings, the number of trials), so that a worker
needs nothing but the URL and the study's name:

    create_search_study("postgresql://lecture:pw@db-host:5432/optuna", "class-search", n_trials=60)
    run_worker("postgresql://lecture:pw@db-host:5432/optuna", "class-search")   # on every machine

(the ``lecture-tune create`` and ``lecture-tune worker`` commands do the same).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from lecture_lib.tuning.objective import TwoLayerNetObjective
from lecture_lib.tuning.optuna import (DEFAULT_STORAGE, GRACE_PERIOD, _make_study, load_study, make_storage,
                                       run_trials, study_to_result)
from lecture_lib.tuning.results import _check_direction
from lecture_lib.tuning.spaces import LogUniform, Uniform, _check_count, _check_space

__all__ = ["CHAPTER_SPACE", "parallel_optuna_search", "create_search_study", "run_worker"]

# the chapter's search: the lecture's ranges (lr 1e-6..1e-3, reg 1e-5..1e5) moved to where the
# digits' 2-layer net learns, wide enough to show pruning and the 3x guard
CHAPTER_SPACE = {"lr": LogUniform(1e-5, 1e-1), "reg": LogUniform(1e-5, 1e1)}
RECIPE_KEY = "lecture_search"


def _worker(objective, space, n_trials, study_name, storage, direction, seed, threads, pruner, barrier, since):
    torch.set_num_threads(threads)
    study = _make_study(study_name, storage, direction, seed, pruner)  # imports optuna, opens the storage
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # the first optimizer imports torch._dynamo (seconds)
    barrier.wait()  # all workers start their trials together, whatever their start-up time
    run_trials(study, objective, space, n_trials, since=since)


def parallel_optuna_search(objective: Callable, space: Mapping[str, Any], n_trials: int, n_workers: int = 2, *,
                           study_name: str = "lecture-search", storage: str | Path | None = None,
                           direction: str = "maximize", seed: int = 0, threads_per_worker: int = 1,
                           pruner=None):
    """``n_workers`` processes join one study through its storage until it holds ``n_trials``.

    Each worker is what you would start on another machine: same ``study_name``, same
    ``storage`` (a PostgreSQL URL across machines; default ``DEFAULT_STORAGE``). ``objective``
    must be picklable (a module-level function or e.g. ``TwoLayerNetObjective``); workers get
    seeds ``seed + i`` so their first samples differ. ``pruner`` (picklable; default median
    pruner) as in ``optuna_search``. The study ends with exactly ``n_trials`` finished trials
    (see ``run_trials``).

    Returns:
        ``(SearchResult, optuna.Study)``
    """
    import multiprocessing

    _check_space(space)
    n_trials, n_workers = _check_count("n_trials", n_trials), _check_count("n_workers", n_workers)
    storage = DEFAULT_STORAGE if storage is None else str(storage)
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


# --- a study that carries its own recipe -----------------------------------------------------------


def _space_to_json(space: Mapping[str, Any]) -> dict:
    out = {}
    for name, spec in space.items():
        if isinstance(spec, (LogUniform, Uniform)):
            out[name] = {"kind": type(spec).__name__, "low": spec.low, "high": spec.high}
        elif isinstance(spec, (list, tuple)):
            out[name] = {"kind": "choice", "values": list(spec)}
        else:
            out[name] = {"kind": "fixed", "value": spec}
    return out


def _space_from_json(data: Mapping[str, dict]) -> dict:
    kinds = {"LogUniform": LogUniform, "Uniform": Uniform}
    return {name: kinds[d["kind"]](d["low"], d["high"]) if d["kind"] in kinds else
            d["values"] if d["kind"] == "choice" else d["value"] for name, d in data.items()}


def create_search_study(storage: str | Path | None, study_name: str, n_trials: int, *,
                        space: Mapping[str, Any] | None = None, objective: TwoLayerNetObjective | None = None,
                        prune: bool = True):
    """Create (or find) the study of the chapter's search, with its recipe stored in the study:
    ``space`` (default ``CHAPTER_SPACE``), the settings of ``objective`` (default
    ``TwoLayerNetObjective()``), ``n_trials`` and whether to prune. Returns the study."""
    space = dict(CHAPTER_SPACE if space is None else space)
    _check_space(space)
    objective = TwoLayerNetObjective() if objective is None else objective
    if not isinstance(objective, TwoLayerNetObjective):
        raise TypeError(f"objective must be a TwoLayerNetObjective, got {type(objective).__name__}")
    study = _make_study(study_name, storage, "maximize", None, None)
    study.set_user_attr(RECIPE_KEY, {"space": _space_to_json(space), "objective": dataclasses.asdict(objective),
                                     "n_trials": _check_count("n_trials", n_trials), "prune": bool(prune)})
    return study


def _recipe(study, storage) -> dict:
    recipe = study.user_attrs.get(RECIPE_KEY)
    if recipe is None:
        raise ValueError(f"study {study.study_name!r} in {storage} has no search recipe (it was not made by "
                         "create_search_study / lecture-tune create); create a new study with lecture-tune create")
    return recipe


def run_worker(storage: str | Path | None, study_name: str, *, threads: int = 1, seed: int | None = None,
               grace_period: int = GRACE_PERIOD):
    """Join the study ``study_name`` (made by ``create_search_study``) and run its trials until
    it holds the number of finished trials its recipe asks for. A trial whose worker has not
    beaten for ``grace_period`` seconds is failed and run again. Returns ``(SearchResult, study)``."""
    import optuna

    torch.set_num_threads(_check_count("threads", threads))
    beat = dict(heartbeat_interval=max(1, _check_count("grace_period", grace_period) // 5), grace_period=grace_period)
    recipe = _recipe(load_study(study_name, storage, **beat), storage)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2) if recipe["prune"] else \
        optuna.pruners.NopPruner()
    seed = seed if seed is not None else int.from_bytes(os.urandom(4), "little")  # each machine samples its own
    study = optuna.load_study(study_name=study_name, storage=make_storage(storage, **beat),
                              sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    space = _space_from_json(recipe["space"])
    run_trials(study, TwoLayerNetObjective(**recipe["objective"]), space, recipe["n_trials"])
    return study_to_result(study, space), study
