"""Execute the book's pages into the build's cache, two at a time, before ``jupyter-book build``.

    .venv/bin/python scripts/execute_book.py                       # every page of _toc.yml (what `make book` runs)
    .venv/bin/python scripts/execute_book.py book/01_recap/04_ensembles.ipynb --jobs 1
    .venv/bin/python scripts/execute_book.py --export _build/full_a   # also copy the executed pages there

``jupyter-book build`` executes one page after another, each kernel with every core. The pages
train small networks whose operations are too small to keep two threads busy, so on the course's
2-core machine two pages side by side with one thread each take about half the time. This
script fills the cache that the build reads (``execute_notebooks: cache`` in ``_config.yml``,
``_build/.jupyter_cache``): a page whose code is already cached is skipped, exactly as the build
would skip it, and the build then renders every page from the cache. Its execution table
(appendix "How this book was built") shows the seconds measured here.

Every kernel runs with ``OMP_NUM_THREADS=1`` and ``LECTURE_THREADS=1`` whatever ``--jobs`` is,
so the numbers a page computes do not depend on how many pages ran beside it (``make book`` also
builds with one thread). The longest pages start first (from the cache's last timings).

A watchdog stops the kernel of a page that runs past ``--page-timeout`` seconds in all, or
whose kernel and its child processes use no CPU for ``--idle-timeout`` seconds while the page
waits for it: with ipykernel 7 and with 6, a page with widgets (07/02) sometimes waited forever
beside an idle kernel, a reply lost, and nbclient's own cell ``--timeout`` did not fire. A page
stopped that way, or by a dead kernel, is retried once (``--retries``).
A page that fails prints its traceback and the script exits with status 1
after the other pages have finished.

``--export DIR`` writes the cached executed notebook of every page to ``DIR/<path>``, glue
outputs included (MyST-NB removes those from ``_build/jupyter_execute``), for
``scripts/glue.py compare`` of two builds.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import nbformat

from notebooks import ROOT, toc_notebooks  # scripts/notebooks.py, beside this file

CACHE = ROOT / "_build" / ".jupyter_cache"
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LECTURE_THREADS": "1"}
RETRIED_ERRORS = ("CellTimeoutError", "DeadKernelError", "TimeoutError", "PageTimeout")


def _tree_cpu_seconds(process) -> float:
    """CPU seconds of ``process`` and everything it started (0 for what has gone meanwhile)."""
    import psutil

    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _watchdog(stop: threading.Event, fired: list, page_timeout: float, idle_timeout: float) -> None:
    """Stop this worker's kernel (and what it started) when the page runs past ``page_timeout``
    seconds, or when the kernel and its children use no CPU for ``idle_timeout`` seconds while
    the client waits (a lost reply: the page would never finish); nbclient then raises."""
    import psutil

    me = psutil.Process()
    started = last_busy = time.monotonic()
    last_cpu = -1.0
    while not stop.wait(2.0):
        now = time.monotonic()
        kernels = me.children()
        cpu = sum(_tree_cpu_seconds(k) for k in kernels)
        if cpu > last_cpu + 0.02:  # busy in the last 2 s (an idle kernel's heartbeat uses far less)
            last_busy = now
        last_cpu = cpu
        reason = (f"ran past {page_timeout:.0f} s" if now - started > page_timeout else
                  f"sat idle for {now - last_busy:.0f} s (kernel and its children used no CPU)"
                  if kernels and now - last_busy > idle_timeout else None)
        if reason:
            fired.append(reason)
            for child in me.children(recursive=True):
                child.kill()
            return


def _execute(path: str, timeout: int, page_timeout: float,
             idle_timeout: float) -> tuple[str, dict, float, str | None, str | None]:
    """In a worker process: run one notebook in its folder -> (path, nb, seconds, error, traceback)."""
    import traceback

    from jupyter_cache.executors.utils import single_nb_execution

    os.environ.update(THREAD_ENV)  # the kernel inherits them
    nb = nbformat.read(path, as_version=4)
    stop, fired = threading.Event(), []
    watchdog = threading.Thread(target=_watchdog, args=(stop, fired, page_timeout, idle_timeout), daemon=True)
    started = time.perf_counter()
    watchdog.start()
    try:
        result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout, allow_errors=False)
        error, tb = (type(result.err).__name__ if result.err is not None else None), result.exc_string
        nb = result.nb
    except Exception as exc:  # a dead kernel and the like: single_nb_execution only catches cell errors
        error, tb = type(exc).__name__, traceback.format_exc()
    finally:
        stop.set()
        watchdog.join()
    seconds = time.perf_counter() - started
    if fired:
        error, tb = "PageTimeout", f"the page {fired[0]}; its kernel was stopped\n{tb or ''}"
    return path, nb, seconds, error, tb


def _name(path) -> str:
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _previous_seconds(cache) -> dict[str, float]:
    seconds = {}
    for record in cache.list_cache_records():
        if record.data and "execution_seconds" in record.data:
            seconds[str(Path(record.uri).resolve())] = float(record.data["execution_seconds"])
    return seconds


def execute(paths: list[Path], jobs: int = 2, timeout: int = 600, retries: int = 1,
            cache_path: Path = CACHE, page_timeout: float = 900, idle_timeout: float = 30) -> dict[str, dict]:
    """Execute the uncached ``paths`` ``jobs`` at a time into the cache -> ``{path: {seconds, status, error}}``."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    cache = get_cache(str(cache_path))
    report: dict[str, dict] = {}
    todo = []
    for path in paths:
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
            report[str(path)] = {"status": "cached", "seconds": None, "error": None}
        except KeyError:
            todo.append(str(path))
    previous = _previous_seconds(cache)
    todo.sort(key=lambda p: -previous.get(p, float("inf")))  # longest (or never timed) first
    print(f"{len(paths) - len(todo)} of {len(paths)} pages cached; executing {len(todo)}, {jobs} at a time, "
          f"one thread each", flush=True)
    attempts = {p: 0 for p in todo}
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(_execute, p, timeout, page_timeout, idle_timeout) for p in todo}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                path, nb, seconds, error, tb = future.result()
                attempts[path] += 1
                name = _name(path)
                if error in RETRIED_ERRORS and attempts[path] <= retries:
                    print(f"  {name}: {error} after {seconds:.0f} s, retrying", flush=True)
                    running.add(pool.submit(_execute, path, timeout, page_timeout, idle_timeout))
                    continue
                if error is None:
                    record = cache.add_nb_to_project(path)
                    cache.cache_notebook_bundle(CacheBundleIn(nb, record.uri, data={"execution_seconds": seconds}),
                                                check_validity=False, overwrite=True)
                    print(f"  {name}: {seconds:.1f} s", flush=True)
                else:
                    print(f"  {name}: FAILED ({error}) after {seconds:.1f} s\n{tb}", flush=True)
                report[path] = {"status": "executed" if error is None else "failed", "seconds": seconds,
                                "error": error}
    wall = time.perf_counter() - started
    executed = [r["seconds"] for r in report.values() if r["status"] == "executed"]
    print(f"executed {len(executed)} pages in {wall:.0f} s wall ({sum(executed):.0f} s of page time)", flush=True)
    return report


def export(paths: list[Path], folder: Path, cache_path: Path = CACHE) -> int:
    """Copy each page's cached executed notebook (glue outputs included) to ``folder/<path>``."""
    from jupyter_cache import get_cache

    cache = get_cache(str(cache_path))
    written = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        try:
            _, merged = cache.merge_match_into_notebook(nb)
        except KeyError:
            print(f"  {_name(path)}: not in the cache (execute it first)", file=sys.stderr)
            continue
        target = folder / (path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(merged, target)
        written += 1
    print(f"wrote {written} executed pages to {folder}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every page of _toc.yml")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("BOOK_JOBS", "2")),
                        help="pages executed at once (default 2, or $BOOK_JOBS)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a cell may wait (default 600)")
    parser.add_argument("--page-timeout", type=float, default=900,
                        help="seconds a whole page may take before its kernel is stopped (default 900)")
    parser.add_argument("--idle-timeout", type=float, default=30,
                        help="seconds a page's kernel may sit idle (no CPU, its children included) before it is "
                             "stopped as hung (default 30)")
    parser.add_argument("--retries", type=int, default=1, help="re-runs of a page stopped by a timeout (default 1)")
    parser.add_argument("--export", type=Path, metavar="DIR", help="afterwards copy the executed pages to DIR")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or toc_notebooks()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    try:
        report = execute(paths, jobs=args.jobs, timeout=args.timeout, retries=args.retries,
                         page_timeout=args.page_timeout, idle_timeout=args.idle_timeout)
    except ValueError as error:
        parser.error(str(error))
    if args.export:
        export(paths, args.export)
    failed = [_name(p) for p, r in report.items() if r["status"] == "failed"]
    if failed:
        print(f"{len(failed)} page(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
