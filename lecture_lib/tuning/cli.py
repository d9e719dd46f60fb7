"""``lecture-tune``: the chapter's search on many machines, its database and its dashboard.

    lecture-tune db start                          # a local PostgreSQL (make db); prints its URL
    lecture-tune create --storage URL --study class-search --trials 60
    lecture-tune worker --storage URL --study class-search      # on each machine, as often as you like
    lecture-tune status --storage URL --study class-search
    lecture-tune dashboard --storage URL           # optuna-dashboard on http://127.0.0.1:8080/dashboard/
    lecture-tune db stop

(also ``python -m lecture_lib.tuning.cli ...``). Exit status: 0 done, 2 bad input or no database.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

__all__ = ["main", "CHAPTER_STORAGE", "CHAPTER_STUDY"]

CHAPTER_STORAGE = "sqlite:///.cache/optuna/chapter.db"  # where `make dashboard` keeps the chapter's study
CHAPTER_STUDY = "two-layer-net"


def _summary(result, study) -> str:
    counts = Counter(t["status"] for t in result.trials)
    line = f"study {study.study_name!r}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if result.best is not None:
        params = ", ".join(f"{k} {v:.3g}" for k, v in result.best["params"].items() if isinstance(v, float))
        line += f"; best val acc {result.best['score']:.3f} ({params})"
    return line


def _create(args) -> None:
    from lecture_lib.tuning import TwoLayerNetObjective, create_search_study

    objective = TwoLayerNetObjective(epochs=args.epochs, n_samples=args.n_samples)
    create_search_study(args.storage, args.study, args.trials, objective=objective, prune=not args.no_prune)
    print(f"study {args.study!r} ready for {args.trials} trials; on each machine run:\n"
          f"  lecture-tune worker --storage '{args.storage}' --study {args.study}")


def _worker(args) -> None:
    from lecture_lib.tuning import run_worker

    result, study = run_worker(args.storage, args.study, threads=args.threads, seed=args.seed,
                               grace_period=args.grace_period)
    print(_summary(result, study))


def _status(args) -> None:
    from lecture_lib.tuning import load_study, study_to_result
    from lecture_lib.tuning.parallel import _recipe, _space_from_json

    study = load_study(args.study, args.storage)
    recipe = _recipe(study, args.storage)
    running = sum(t.state.name == "RUNNING" for t in study.get_trials(deepcopy=False))
    print(_summary(study_to_result(study, _space_from_json(recipe["space"])), study) +
          f"; {running} running; target {recipe['n_trials']} finished trials")


def _db(args) -> None:
    from lecture_lib.tuning import postgres

    if args.action == "start":
        print(postgres.start_local_cluster(args.folder))
    elif args.action == "stop":
        print("stopped" if postgres.stop_local_cluster(args.folder) else "not running")
    else:
        url = postgres.local_cluster_url(args.folder)
        if url is None:
            raise ValueError(f"no cluster runs from {args.folder}: start it with `make db` (lecture-tune db start)")
        print(url)


def ensure_chapter_study(storage: str, study_name: str = CHAPTER_STUDY, n_trials: int = 40):
    """The chapter's study in ``storage``, with at least ``n_trials`` finished trials (runs the
    chapter's search for the missing ones: a few seconds)."""
    from lecture_lib.tuning import TwoLayerNetObjective, create_search_study, run_worker
    import datetime

    from lecture_lib.tuning.optuna import _counts

    if storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    study = create_search_study(storage, study_name, n_trials, objective=TwoLayerNetObjective(epochs=5))
    if _counts(study, datetime.datetime.min, heartbeat=False)[0] < n_trials:  # finished trials
        run_worker(storage, study_name, seed=0)


def _dashboard(args) -> None:
    import optuna_dashboard

    from lecture_lib.tuning import make_storage

    if args.storage == CHAPTER_STORAGE:  # .cache/optuna, kept out of git
        folder = Path(CHAPTER_STORAGE.removeprefix("sqlite:///")).parent
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".gitignore").write_text("*\n")
    if args.trials > 0:
        ensure_chapter_study(args.storage, args.study, args.trials)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/dashboard/ (Ctrl-C stops it)", flush=True)
    optuna_dashboard.run_server(make_storage(args.storage), host=args.host, port=args.port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lecture-tune", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (("create", "create a study that carries the chapter's search recipe"),
                           ("worker", "run trials of a study until it holds its target"),
                           ("status", "count a study's trials")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--storage", required=True, help="sqlite:///file.db, postgresql://user:pw@host:port/db or file.log")
        p.add_argument("--study", required=True, help="the study's name")
    create, worker = sub.choices["create"], sub.choices["worker"]
    create.add_argument("--trials", type=int, default=60, help="finished trials the study should reach")
    create.add_argument("--epochs", type=int, default=5, help="epochs per trial (240: about 2 s on one core)")
    create.add_argument("--n-samples", type=int, default=None, help="training images (default: all)")
    create.add_argument("--no-prune", action="store_true", help="every trial trains all its epochs")
    worker.add_argument("--threads", type=int, default=1, help="torch threads of this worker")
    worker.add_argument("--seed", type=int, default=None, help="TPE seed (default: random, so machines differ)")
    worker.add_argument("--grace-period", type=int, default=10,
                        help="seconds without a heartbeat after which another worker's trial counts as dead")
    db = sub.add_parser("db", help="the local PostgreSQL server (make db / make db-stop)")
    db.add_argument("action", choices=("start", "stop", "url"))
    db.add_argument("--folder", default=".cache/postgres")
    dash = sub.add_parser("dashboard", help="optuna-dashboard on a storage (default: the chapter's study)")
    dash.add_argument("--storage", default=CHAPTER_STORAGE)
    dash.add_argument("--study", default=CHAPTER_STUDY)
    dash.add_argument("--trials", type=int, default=40, help="run the chapter's search up to this many trials first "
                                                             "(0: show the storage as it is)")
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--port", type=int, default=8080)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = {"create": _create, "worker": _worker, "status": _status, "db": _db, "dashboard": _dashboard}
    try:
        command[args.command](args)
    except (ValueError, TypeError, ConnectionError, FileNotFoundError, ImportError) as error:
        print(f"lecture-tune {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
