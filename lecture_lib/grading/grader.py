"""Grade submitted notebooks: student code in a sandboxed kernel, hidden tests in the grader.

One submission (``grade_submission``):

1. ``KernelRun`` (``kernel.py``) runs the notebook's code cells in a fresh sandbox
   (``sandbox.py``), asks the kernel for each question's ``EXTRACT`` expressions, then kills the
   sandbox's whole PID namespace and waits until it is gone;
2. only then, in this process, ``answers.py`` parses what came back as plain JSON, rebuilds
   tensors with the grader's own torch and runs the hidden tests ``test_*(answers)``. Nothing
   the student's kernel did to ``torch``, ``numpy`` or ``builtins`` exists here, and no object of
   theirs ever crosses over.

Scores come only from step 2. Whatever a submission prints (fake scores, fake JSON, fake
markers) is never read as a score; the answer line is delimited by a random nonce per cell and,
if a student forges it, all they can forge is their own answer.

A folder (``grade_folder``) is a loop over its notebooks, ``jobs`` at a time, each in its own
sandbox: every grade is stored the moment it is known (``store.py``), so a run that is killed
and started again grades only what is missing; the report (``report.py``) is written from the
stored grades, with a progress line per submission (``progress.py``) and a summary at the end.
"""

from __future__ import annotations

import os
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat

from .answers import AnswerError, Answers, decode_answer, parse_answers, score_question
from .authoring import Exercise, read_exercise
from .kernel import KernelRun, why_no_answer
from .progress import Progress
from .report import Report, gradescope_results, summary, write_results
from .results import QuestionResult, SubmissionResult
from .sandbox import Limits, SandboxUnavailable, sandbox_available
from .store import ResultStore, content_hash

__all__ = [
    "QuestionResult",
    "SubmissionResult",
    "Answers",
    "AnswerError",
    "decode_answer",
    "grade_submission",
    "grade_folder",
    "write_results",
    "gradescope_results",
    "NoNotebooks",
]

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
# Failures of the grading machine, not of the notebook: not stored, so that a new run retries them.
_NOT_A_GRADE = ("the kernel could not start", "grader error")


class NoNotebooks(ValueError):
    """The submissions folder holds no ``*.ipynb`` notebook (the message says what it does hold)."""


def _blank(exercise: Exercise, status: str, message: str) -> list[QuestionResult]:
    return [QuestionResult(q.name, 0.0, q.points, status, [message]) for q in exercise.questions.values()]


def _code_cells(path: Path) -> list[str]:
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    notebook = nbformat.read(path, as_version=4)
    return [c.source for c in notebook.cells if c.cell_type == "code" and isinstance(c.source, str)]


def grade_submission(exercise: Exercise, path: str | Path, limits: Limits | None = None,
                     isolate: bool = True, protected: list = ()) -> SubmissionResult:
    """Grade one notebook against ``exercise`` (see the module docstring for the steps)."""
    limits = limits or Limits()
    path = Path(path)
    started = time.monotonic()
    try:
        code = _code_cells(path)
    except Exception as err:  # unreadable notebook: nothing ran
        message = f"could not read the notebook: {err}"
        return SubmissionResult(path.stem, _blank(exercise, "error", message), failure=message[:200])
    output = KernelRun(exercise, limits, isolate, protected).run(code)
    results = []
    for question in exercise.questions.values():
        got = output.answers.get(question.name, "error")
        if isinstance(got, str):
            results.append(QuestionResult(question.name, 0.0, question.points, got, [why_no_answer(got)]))
            continue
        try:
            values, errors = parse_answers(got[0], got[1], limits.answer_kb)
            results.append(score_question(question, values, errors))
        except AnswerError as err:
            results.append(QuestionResult(question.name, 0.0, question.points, "error", [str(err)]))
        except Exception as err:  # a bug in the hidden tests themselves: say so loudly
            results.append(QuestionResult(question.name, 0.0, question.points, "error",
                                          [f"grader error: {type(err).__name__}: {err}"]))
            output.notes.append(traceback.format_exc(limit=3))
    return SubmissionResult(path.stem, results, output.notes, round(time.monotonic() - started, 1), output.failure)


def _grade_safely(exercise, path: Path, limits, isolate, protected) -> SubmissionResult:
    """``grade_submission``, but a bug of the grader itself costs this submission only."""
    try:
        return grade_submission(exercise, path, limits, isolate, protected)
    except Exception as err:
        message = f"grader error: {type(err).__name__}: {err}"[:300]
        return SubmissionResult(path.stem, _blank(exercise, "error", message), [traceback.format_exc(limit=5)],
                                failure=message)


def _grade_many(exercise, paths: list[Path], jobs: int, limits, isolate, protected):
    """Yield (path, result) as each submission finishes, ``jobs`` of them in flight at a time."""
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="lecture-grade")
    try:
        futures = {pool.submit(_grade_safely, exercise, p, limits, isolate, protected): p for p in paths}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        # normally all done; on Ctrl-C or an error, stop starting new ones (running ones finish
        # or die with the process; their grades are not stored)
        pool.shutdown(wait=False, cancel_futures=True)


def _check_inputs(master: Path, submissions: Path, out: Path) -> list[Path]:
    """The notebooks to grade; ``ValueError`` naming what to fix when an input is wrong."""
    if not master.is_file():
        known = sorted(p.stem for p in master.parent.glob("*.ipynb")) if master.parent.is_dir() else []
        hint = f"; the exercises in {master.parent} are: {', '.join(known)}" if known else ""
        raise ValueError(f"exercise notebook {master} not found{hint}")
    if not submissions.is_dir():
        what = "is a file" if submissions.exists() else "does not exist"
        raise ValueError(f"submissions must be a folder holding one .ipynb per student; {submissions} {what}")
    if out.resolve() == submissions.resolve():
        raise ValueError("the output folder must differ from the submissions folder")
    paths = sorted(p for p in submissions.glob("*.ipynb") if p.is_file() and not p.is_symlink())
    if not paths:
        others = sorted(p.name for p in submissions.iterdir())[:3]
        nested = sorted(str(p.relative_to(submissions)) for p in submissions.glob("*/**/*.ipynb"))[:2]
        hint = (f"; it holds {', '.join(others)}" if others else "; it is empty") + (
            f" (notebooks in subfolders, e.g. {', '.join(nested)}, are not graded: put them at the top level)"
            if nested else "")
        raise NoNotebooks(f"no notebooks (*.ipynb) in {submissions}{hint}")
    return paths


def _one_per_content(paths: list[Path], keys: dict[Path, str]) -> list[Path]:
    """The first of each group of identical notebooks (they are graded once)."""
    seen: set[str] = set()
    return [p for p in paths if not (keys[p] in seen or seen.add(keys[p]))]


def _check_jobs(jobs) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs (submissions graded at once) must be a whole number >= 1, got {jobs!r}")
    return jobs


def _isolation(unsafe_no_sandbox: bool, log) -> bool:
    ok, why = sandbox_available()
    if ok:
        return True
    if not unsafe_no_sandbox:
        raise SandboxUnavailable(
            f"cannot isolate submissions here: {why}. Refusing to run untrusted code; "
            "pass --unsafe-no-sandbox to grade without isolation (students could then read "
            "the hidden tests and the other submissions, and reach the network)."
        )
    log(f"WARNING: no sandbox ({why}); grading WITHOUT isolation as requested.")
    return False


def grade_folder(master: str | Path, submissions: str | Path, out: str | Path, limits: Limits | None = None,
                 unsafe_no_sandbox: bool = False, workers: int = 2, log=print, *, jobs: int | None = None,
                 regrade: bool = False) -> list[SubmissionResult]:
    """Grade every ``*.ipynb`` in ``submissions``, ``jobs`` at a time, and write the report.

    Grades are stored in ``out/state`` as each submission finishes; what is stored there for
    the same notebook content, master and limits is not graded again (``regrade=True``: all
    is). ``workers`` is the old name of ``jobs``. Raises ``ValueError`` on a wrong input
    (``NoNotebooks`` for a folder without notebooks) and ``SandboxUnavailable`` when isolation
    does not work here and ``unsafe_no_sandbox`` is not set.
    """
    master, submissions, out, limits = Path(master), Path(submissions), Path(out), limits or Limits()
    paths = _check_inputs(master, submissions, out)
    jobs = _check_jobs(workers if jobs is None else jobs)
    exercise = read_exercise(master)
    store, report = ResultStore(out / "state", master, limits), Report(out)
    keys = {p: content_hash(p) for p in paths}
    done = {} if regrade else {p: r for p in paths if (r := store.get(keys[p], p.stem)) is not None}
    todo = _one_per_content([p for p in paths if p not in done], keys)
    isolate = _isolation(unsafe_no_sandbox, log) if todo else True
    _announce(log, master, len(paths), len(done), len(todo), jobs)
    progress = Progress(len(paths), len(done), log)
    try:
        for path, result in _grade_many(exercise, todo, jobs, limits, isolate, [master, submissions, out]):
            if not result.failure.startswith(_NOT_A_GRADE):
                store.put(keys[path], result)
            for twin in [p for p in paths if keys[p] == keys[path] and p not in done]:
                done[twin] = SubmissionResult.from_dict({**result.to_dict(), "submission": twin.stem})
                report.write_submission(done[twin])
                progress.update(done[twin])
    finally:
        progress.close()
    results = [done[p] for p in paths]
    report.write(results)
    log(summary(results))
    return results


def _announce(log, master: Path, total: int, stored: int, todo: int, jobs: int) -> None:
    cores = os.cpu_count() or 1
    log(f"grading {total} submissions of {master.name}, {jobs} at a time: {stored} already graded "
        f"(kept in the output folder's state/), {todo} to grade")
    if jobs > cores:
        log(f"note: --jobs {jobs} on {cores} CPU cores: submissions share cores and run slower against "
            "their wall-clock time limits")
