"""lecture_lib.tuning.optuna: studies that resume from their storage (journal file, SQLite),
the 3x guard as pruning, storage by URL and its errors, and the counting that ends a study at
exactly n_trials finished trials, even when a worker dies mid-trial (heartbeats)."""

import math
import time

import optuna
import pytest

from lecture_lib.tuning import (Diverged, LogUniform, TwoLayerNetObjective, load_study, make_storage,
                                optuna_search, parallel_optuna_search, run_trials)
from lecture_lib.tuning.optuna import _ahead_of, _counts

SPACE = {"lr": LogUniform(1e-6, 1e-2), "reg": LogUniform(1e-4, 1.0)}


class Counting:
    """An objective that records every call: -(log10 lr + 4)^2 - (log10 reg + 2)^2, best at (1e-4, 1e-2)."""

    def __init__(self):
        self.calls = []

    def __call__(self, params):
        self.calls.append(dict(params))
        return -(math.log10(params["lr"]) + 4) ** 2 - (math.log10(params["reg"]) + 2) ** 2


def test_optuna_study_resumes_from_journal(tmp_path):
    storage = tmp_path / "study.log"
    objective = Counting()
    first, study = optuna_search(objective, SPACE, 5, storage=storage, study_name="s")
    assert len(study.trials) == 5 and len(objective.calls) == 5
    # a new process would start from nothing but the file: run again with a larger target
    again = Counting()
    second, study2 = optuna_search(again, SPACE, 8, storage=storage, study_name="s")
    assert len(again.calls) == 3 and len(second.trials) == 8
    assert [t["params"] for t in second.trials[:5]] == [t["params"] for t in first.trials]
    # same target again: nothing left to do
    third = Counting()
    optuna_search(third, SPACE, 8, storage=storage, study_name="s")
    assert third.calls == []
    assert second.best["score"] == max(t["score"] for t in second.trials)


def test_optuna_resumes_after_a_crash_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    calls = []

    def crashing(params):
        calls.append(params)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C during the 4th trial
        return Counting()(params)

    with pytest.raises(KeyboardInterrupt):
        optuna_search(crashing, SPACE, 6, storage=url, study_name="crash")
    result, study = optuna_search(Counting(), SPACE, 6, storage=url, study_name="crash")
    statuses = [t["status"] for t in result.trials]
    assert statuses.count("ok") == 6 and statuses.count("failed") == 1  # the interrupted one, run again
    assert statuses[3] == "failed"


def test_optuna_guard_as_pruning_and_median_pruner(tmp_path):
    def objective(params, report):
        if params["lr"] > 1e-3:
            raise Diverged("diverged: loss 9 > 3 x initial 2")
        for epoch in range(1, 6):  # rising learning curves, higher for higher lr
            report(epoch, math.log10(params["lr"]) + epoch)
        return math.log10(params["lr"]) + 5

    result, study = optuna_search(objective, {"lr": LogUniform(1e-6, 1e-2)}, 30, storage=tmp_path / "p.log",
                                  study_name="p")
    statuses = [t["status"] for t in result.trials]
    assert "diverged" in statuses and "pruned" in statuses and "ok" in statuses and len(statuses) == 30
    diverged = [t for t in result.trials if t["status"] == "diverged"]
    assert all(t["params"]["lr"] > 1e-3 for t in diverged)
    pruned = [t for t in result.trials if t["status"] == "pruned"]
    assert all(len(t["curve"]) < 5 for t in pruned)  # stopped before the last epoch


# --- storage by URL ---------------------------------------------------------------------------------


def test_storage_by_url_kinds(tmp_path):
    assert isinstance(make_storage(tmp_path / "a.log"), optuna.storages.JournalStorage)
    sqlite = make_storage(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(sqlite, optuna.storages.RDBStorage) and sqlite.heartbeat_interval == 2
    assert (tmp_path / "a.db").exists()


@pytest.mark.parametrize("storage, error, match", [
    ("study.txt", ValueError, r"storage must be a database URL \(sqlite:///\.\.\., postgresql://\.\.\.\) or a "
                              r"journal file path ending in \.log, got 'study.txt'"),
    ("mysql://u:secret@host/db", ValueError, r"storage URL must start with sqlite:/// or postgresql://, "
                                             r"got 'mysql://u:\*\*\*@host/db'"),
    ("sqlite:///no/such/folder/s.db", ValueError, r"the folder 'no/such/folder' of storage .* must exist"),
    # nothing listens on port 1: a clear error, without the password, that says what to do
    ("postgresql://lecture:secret@127.0.0.1:1/optuna", ConnectionError,
     r"cannot open the study database postgresql://lecture:\*\*\*@127.0.0.1:1/optuna: .*"
     r"start it with `make db`"),
])
def test_bad_storage(storage, error, match):
    with pytest.raises(error, match=match) as info:
        optuna_search(Counting(), SPACE, 1, storage=storage)
    assert "secret" not in str(info.value)


def test_a_study_that_does_not_exist(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna_search(Counting(), SPACE, 1, storage=url, study_name="there")
    with pytest.raises(ValueError, match=r"study 'tehre' does not exist in sqlite:///.*s.db; it holds \['there'\]"):
        load_study("tehre", url)
    assert load_study("there", url).study_name == "there"


# --- exactly n_trials -------------------------------------------------------------------------------


def test_counting_running_trials_journal(tmp_path):
    """Without heartbeats (journal file): a trial left RUNNING by a crash before this search
    started is not counted; another worker's running trial is."""
    import datetime

    study = optuna.create_study(storage=make_storage(tmp_path / "r.log"), study_name="r")
    for value in (0.1, 0.2, 0.3):
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=value))
    study.ask()  # left RUNNING by a worker that crashed before this search started
    time.sleep(0.01)
    since = datetime.datetime.now()
    assert _counts(study, since, heartbeat=False) == (3, 0, 0)
    mine, later = study.ask(), study.ask()  # two workers ask for the 4th trial at the same moment
    assert _counts(study, since, heartbeat=False) == (3, 2, 0)
    assert not _ahead_of(mine, 4, since) and _ahead_of(later, 4, since)  # only the later one gives up
    assert not _ahead_of(later, 5, since)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_dead_workers_trial_is_failed_and_run_again(tmp_path):
    """A trial whose worker stopped beating (SIGKILL: no exception, no tell) is failed once its
    grace period is over and its copy runs first; the study ends with exactly n complete trials.
    (A real SIGKILL of a worker process on PostgreSQL: tests/test_postgres.py.)"""
    storage = make_storage(f"sqlite:///{tmp_path / 'h.db'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="h", direction="maximize")
    dead = study.ask()
    lr, reg = dead.suggest_float("lr", 1e-6, 1e-2, log=True), dead.suggest_float("reg", 1e-4, 1.0, log=True)
    storage.record_heartbeat(dead._trial_id)  # it ran, then its worker vanished
    time.sleep(2.5)
    objective = Counting()
    run_trials(study, objective, SPACE, 3)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3 and states[0] == optuna.trial.TrialState.FAIL
    assert objective.calls[0] == {"lr": lr, "reg": reg}  # the dead trial's copy ran first
    assert study.trials[1].system_attrs["failed_trial"] == 0


@pytest.mark.slow
def test_parallel_workers_share_one_study(tmp_path):
    objective = TwoLayerNetObjective(n_samples=300, epochs=1)
    result, study = parallel_optuna_search(objective, {"lr": LogUniform(1e-5, 1e-2), "reg": LogUniform(1e-5, 1e-1)},
                                           6, n_workers=2, storage=f"sqlite:///{tmp_path / 'par.db'}",
                                           study_name="par")
    finished = [t for t in result.trials if t["status"] in ("ok", "diverged", "pruned")]
    assert len(finished) == 6  # exactly: a worker waits for the other's last trial instead of starting one
    assert len({(t["params"]["lr"], t["params"]["reg"]) for t in result.trials}) == len(result.trials)


def test_surplus_trials_are_not_logged_as_failures():
    """A trial given up as surplus (two workers asked for the last one) leaves no warning and no
    traceback on the page; any other failed trial is still logged by optuna."""
    import logging

    from optuna.study import _optimize

    from lecture_lib.tuning.optuna import _quiet_surplus, _Surplus

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    parent = logging.getLogger("optuna")
    parent.addHandler(handler)
    try:
        _quiet_surplus()
        _quiet_surplus()  # idempotent: one filter
        assert sum(type(f).__name__ == "_QuietSurplus" for f in logging.getLogger("optuna.study._optimize").filters) == 1
        for number, error in ((30, _Surplus("trial 30: the study already has 30 trials")), (31, ValueError("boom"))):
            try:
                raise error
            except Exception as exc:  # as optuna logs it: the message with the traceback, then the value
                _optimize._log_failed_trial(number, {}, repr(exc), exc_info=(type(exc), exc, exc.__traceback__))
    finally:
        parent.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert not any("Trial 30" in m for m in messages), messages
    assert sum("Trial 31 failed" in m for m in messages) == 2, messages
