"""Hyperparameter search on Optuna: TPE sampling, median pruning on reported values, the 3x
guard as pruning, and a study that lives in storage, so that it survives crashes and many
workers (processes or machines) can share it.

Storage is given by URL (``make_storage``, the one place that opens it):

- ``sqlite:///search.db`` (the default, ``sqlite:///optuna_study.db``): a file, one machine;
- ``postgresql://user:password@host:5432/optuna``: a server that many machines reach
  (``make db`` starts a local one and prints its URL); driver psycopg 3;
- ``search.log``: Optuna's journal file, one machine, no database at all.

Databases keep a **heartbeat** for every running trial: a worker that dies mid-trial (even by
SIGKILL) stops beating, another worker marks its trial failed and queues a copy
(``RetryHeartbeatStaleTrialCallback``), so the study still ends with ``n_trials`` finished
trials. Workers stop at exactly ``n_trials``: see ``run_trials``.

    result, study = optuna_search(TwoLayerNetObjective(), {"lr": LogUniform(1e-5, 1e-1)}, 40,
                                  study_name="two-layer-net", storage="sqlite:///search.db")
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

from lecture_lib.train.callbacks import Diverged
from lecture_lib.tuning.results import SearchResult, _check_direction, _finish, _takes_report
from lecture_lib.tuning.spaces import LogUniform, Uniform, _check_count, _check_space

__all__ = ["DEFAULT_STORAGE", "make_storage", "load_study", "run_trials", "optuna_search", "study_to_result"]

DEFAULT_STORAGE = "sqlite:///optuna_study.db"
HEARTBEAT_INTERVAL = 2  # seconds between a running trial's heartbeats (database storage)
GRACE_PERIOD = 10       # seconds without a heartbeat after which a trial counts as dead
MAX_RETRY = 3           # copies of a dead worker's trial that are run again
POLL_SECONDS = 1.0      # how often a worker that waits for the others' last trials looks again


# --- storage ---------------------------------------------------------------------------------------


def _redact(url: str) -> str:
    """The URL without its password (for error messages)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _sqlalchemy_url(url: str) -> str:
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):  # SQLAlchemy's default driver would be psycopg2
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if scheme == "postgresql+psycopg" or scheme == "sqlite":
        return url
    raise ValueError(f"storage URL must start with sqlite:/// or postgresql://, got {_redact(url)!r}")


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        folder = Path(url.split(":///", 1)[1]).parent if ":///" in url else Path(".")
        if url != "sqlite:///:memory:" and not folder.is_dir():
            raise ValueError(f"the folder {str(folder)!r} of storage {url!r} must exist, it does not")
        return {"connect_args": {"timeout": 60}}  # workers wait for each other's writes
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ImportError("a postgresql:// storage needs the psycopg driver: pip install 'psycopg[binary]' "
                          "(or pip install -e '.[postgres]')") from None
    return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}


def _retry_callback(max_retry: int) -> tuple[str, Any]:
    """Optuna's ``RetryFailedTrialCallback`` (``RetryHeartbeatStaleTrialCallback`` since 4.9)."""
    import optuna.storages as storages

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental / renamed
        if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9
            return "heartbeat_stale_trial_callback", storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        return "failed_trial_callback", storages.RetryFailedTrialCallback(max_retry=max_retry)


def make_storage(storage: str | Path | None = None, *, heartbeat_interval: int = HEARTBEAT_INTERVAL,
                 grace_period: int = GRACE_PERIOD, max_retry: int = MAX_RETRY):
    """Open an Optuna storage from a URL or a journal-file path (None: ``DEFAULT_STORAGE``).

    Args:
        storage: ``sqlite:///path.db``, ``postgresql://user:password@host:port/database``, or a
            path ending in ``.log`` (a journal file).
        heartbeat_interval, grace_period: database storage only: a running trial beats every
            ``heartbeat_interval`` s; one silent for ``grace_period`` s is failed and re-queued
            (up to ``max_retry`` times) by the next worker that asks for a trial.

    Returns:
        ``optuna.storages.RDBStorage`` or ``JournalStorage``.

    Raises:
        ValueError: a URL of another kind, or a SQLite file in a folder that does not exist.
        ConnectionError: the database does not answer (says which, without the password).
    """
    import optuna

    storage = DEFAULT_STORAGE if storage is None else str(storage)
    if "://" not in storage:
        if not storage.endswith(".log"):
            raise ValueError("storage must be a database URL (sqlite:///..., postgresql://...) or a journal "
                             f"file path ending in .log, got {storage!r}")
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(storage))
    url = _sqlalchemy_url(storage)
    kwargs = dict(engine_kwargs=_engine_kwargs(url), heartbeat_interval=heartbeat_interval,
                  grace_period=grace_period)
    key, callback = _retry_callback(max_retry)
    kwargs[key] = callback
    return _open_database(url, kwargs, shown=storage)


def _open_database(url: str, kwargs: dict, shown: str):
    import optuna
    import sqlalchemy.exc

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats
            return optuna.storages.RDBStorage(url, **kwargs)
    except sqlalchemy.exc.OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        hint = ("start it with `make db` (it prints the URL) or fix host, port, user and password in the URL"
                if "postgresql" in url else "check the path and its permissions")
        raise ConnectionError(f"cannot open the study database {_redact(shown)}: {reason}; {hint}") from None


def load_study(study_name: str, storage: str | Path | None = None, **storage_kwargs):
    """An existing study, or a ``ValueError`` that names the studies the storage does hold."""
    import optuna

    opened = make_storage(storage, **storage_kwargs)
    names = [s.study_name for s in optuna.study.get_all_study_summaries(opened, include_best_trial=False)]
    if study_name not in names:
        where = _redact(str(storage if storage is not None else DEFAULT_STORAGE))
        raise ValueError(f"study {study_name!r} does not exist in {where}; it holds {names or 'no study'}. "
                         "Create it first (lecture-tune create --storage URL --study NAME) or fix the name")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=study_name, storage=opened)


def _make_study(study_name, storage, direction, seed, pruner):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study_name, storage=make_storage(storage), direction=direction, load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner if pruner is not None else optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))


# --- one trial --------------------------------------------------------------------------------------


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


class _Surplus(Exception):
    """Two workers asked for the last trial at the same moment: the later one gives it up."""


class _QuietSurplus(logging.Filter):
    """Drops optuna's two "Trial N failed" warnings (one with a traceback) for a trial given up as
    :class:`_Surplus`: that is the protocol working, not an error, and a page should not show it."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        number = re.match(r"Trial (\d+) failed", message)
        if number and "_Surplus(" in message:
            self.numbers.add(number.group(1))
            return False
        return not (number and number.group(1) in self.numbers and "failed with value" in message)


def _quiet_surplus() -> None:
    logger = logging.getLogger("optuna.study._optimize")  # the module that logs failed trials
    if not any(isinstance(f, _QuietSurplus) for f in logger.filters):
        logger.addFilter(_QuietSurplus())


def _optuna_objective(objective: Callable, space: Mapping[str, Any], n_trials: int, since: datetime.datetime):
    import optuna

    worker = f"{socket.gethostname()}:{os.getpid()}"
    _quiet_surplus()

    def run(trial):
        trial.set_user_attr("worker", worker)  # which machine and process ran it (shown by the dashboard)
        if _ahead_of(trial, n_trials, since):
            trial.set_user_attr("surplus", "another worker took the last trial")
            raise _Surplus(f"trial {trial.number}: the study already has {n_trials} trials finished or running")
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


# --- how many trials: exactly n_trials finished, whatever happens to the workers ----------------------


def _has_heartbeat(study) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(study._storage)


def _alive(trial, since: datetime.datetime, heartbeat: bool) -> bool:
    """A RUNNING trial someone is still working on. With heartbeats, stale trials have just been
    failed, so every RUNNING one counts; without (journal file), only those started at or after
    ``since``: a trial that a crash left RUNNING before this search started is not counted."""
    return heartbeat or (trial.datetime_start is not None and trial.datetime_start >= since)


def _counts(study, since: datetime.datetime, heartbeat: bool, before: int | None = None) -> tuple[int, int, int]:
    """(finished, running, waiting) trials; finished = COMPLETE or PRUNED; ``before``: count
    only running trials numbered below it."""
    from optuna.trial import TrialState

    finished = running = waiting = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            finished += 1
        elif t.state == TrialState.RUNNING and (before is None or t.number < before) and _alive(t, since, heartbeat):
            running += 1
        elif t.state == TrialState.WAITING:
            waiting += 1
    return finished, running, waiting


def _ahead_of(trial, n_trials: int, since: datetime.datetime) -> bool:
    """Whether the finished trials plus the live trials numbered before ``trial`` already reach
    ``n_trials`` (the storage numbers trials atomically: of two workers that asked at once, only
    the later one gives its trial up)."""
    finished, running, _ = _counts(trial.study, since, _has_heartbeat(trial.study), before=trial.number)
    return finished + running >= n_trials


def run_trials(study, objective: Callable, space: Mapping[str, Any], n_trials: int, *,
               since: datetime.datetime | None = None, timeout: float | None = None) -> None:
    """Work on ``study`` until it holds ``n_trials`` finished (complete or pruned) trials.

    One trial at a time: first fail the trials whose worker died (database storage: no
    heartbeat for ``GRACE_PERIOD`` s; a copy is queued and run first), then stop if the study is
    full; if the trials running elsewhere would fill it, wait for them instead of starting an
    extra one (and take over any whose worker dies). Optuna's ``MaxTrialsCallback`` counts
    finished trials only, so every other worker would start one more. A journal file has no
    heartbeat: there a worker stops once finished plus running trials reach ``n_trials``.
    """
    import optuna

    heartbeat, since = _has_heartbeat(study), since or datetime.datetime.now()  # Optuna stamps local time
    run = _optuna_objective(objective, space, n_trials, since)
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        if heartbeat:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        finished, running, waiting = _counts(study, since, heartbeat)
        if finished >= n_trials or (finished + running >= n_trials and not waiting and not heartbeat):
            return
        if finished + running >= n_trials and not waiting:
            time.sleep(POLL_SECONDS)  # the last trials run elsewhere: wait, in case their worker dies
            continue
        study.optimize(run, n_trials=1, catch=(_Surplus,))


def optuna_search(objective: Callable, space: Mapping[str, Any], n_trials: int, *,
                  study_name: str = "lecture-search", storage: str | Path | None = None,
                  direction: str = "maximize", seed: int = 0, pruner=None,
                  timeout: float | None = None):
    """The same search on Optuna: TPE sampler, median pruner on reported values, the 3x guard
    as pruning, persistent storage (see ``make_storage``; default ``DEFAULT_STORAGE``).

    ``n_trials`` is the number of finished trials the study should reach: run it again after a
    crash or Ctrl-C (same ``study_name`` and ``storage``) and it runs only the missing trials.

    Returns:
        ``(SearchResult, optuna.Study)``
    """
    _check_space(space)
    n_trials = _check_count("n_trials", n_trials)
    direction = _check_direction(direction)
    study = _make_study(study_name, storage, direction, seed, pruner)
    run_trials(study, objective, space, n_trials, timeout=timeout)
    return study_to_result(study, space), study


def study_to_result(study, space: Mapping[str, Any]) -> SearchResult:
    """An Optuna study as a ``SearchResult`` (trial order = trial number; trials still running
    or waiting, and trials given up before they sampled anything, are left out)."""
    import optuna

    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    fixed = {n: s for n, s in space.items() if not isinstance(s, (LogUniform, Uniform, list, tuple))}
    status_of = {optuna.trial.TrialState.COMPLETE: "ok", optuna.trial.TrialState.PRUNED: "pruned",
                 optuna.trial.TrialState.FAIL: "failed"}
    trials = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state not in status_of or "surplus" in t.user_attrs:
            continue
        status = "diverged" if t.state == optuna.trial.TrialState.PRUNED and "diverged" in t.user_attrs \
            else status_of[t.state]
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else float("nan")
        trials.append({"params": {**t.params, **fixed}, "score": t.value if status == "ok" else float("nan"),
                       "status": status, "stage": 0, "seconds": seconds, "number": t.number,
                       "curve": sorted(t.intermediate_values.items())})
    return _finish(trials, [dict(space)], direction)
