"""What the instructor gets from a grading run: grades.csv, Gradescope JSON, feedback, a summary.

``Report(out)`` writes, under the output folder:

- ``grades.csv``: ``submission,question,points,max_points,status``, one row per submission and
  question, sorted by submission;
- ``gradescope/<submission>.json``: Gradescope's ``results.json`` for that submission;
- ``feedback/<submission>.txt``: points per question, the hidden tests' descriptions with
  passed/failed, the student's own error message; never expected values or test code;
- ``summary.txt``: ``summary(results)``, the table printed at the end of a run.

Every file is written to a temporary name and renamed into place, so a reader (or a grader
killed halfway) never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import statistics
import threading
from collections import Counter
from pathlib import Path

from .results import STATUSES, SubmissionResult

__all__ = ["CSV_HEADER", "Report", "gradescope_results", "feedback_text", "summary", "write_results"]

CSV_HEADER = ["submission", "question", "points", "max_points", "status"]


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def safe_name(name: str) -> str:
    """A submission name usable as a file name (anything but letters, digits, ``._-`` becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "submission"


def gradescope_results(result: SubmissionResult) -> dict:
    """Gradescope's ``results.json`` for one submission."""
    return {
        "score": result.points,
        "execution_time": result.seconds,
        "output": "\n".join(result.notes[:5]),
        "stdout_visibility": "hidden",
        "tests": [
            {
                "name": q.name,
                "score": q.points,
                "max_score": q.max_points,
                "status": "passed" if q.status == "passed" else "failed",
                "output": f"{q.status}\n" + "\n".join(q.feedback),
                "visibility": "visible",
            }
            for q in result.questions
        ],
    }


def feedback_text(result: SubmissionResult) -> str:
    """The feedback file of one submission (what the student may see)."""
    lines = [f"{result.submission}: {result.points:g} of {result.max_points:g} points", ""]
    for q in result.questions:
        lines.append(f"{q.name}: {q.points:g}/{q.max_points:g} ({q.status})")
        lines.extend(f"  {line}" for line in q.feedback)
    if result.notes:
        lines += ["", "Notes:"] + [f"  {n.splitlines()[0]}" for n in result.notes if n]
    return "\n".join(lines) + "\n"


def csv_text(results: list[SubmissionResult]) -> str:
    """``grades.csv`` as text: the header, then one row per submission and question."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    for result in sorted(results, key=lambda r: r.submission):
        for q in result.questions:
            writer.writerow([result.submission, q.name, f"{q.points:g}", f"{q.max_points:g}", q.status])
    return buffer.getvalue()


def summary(results: list[SubmissionResult]) -> str:
    """A plain-text table: mean and spread of the totals, the distribution per question, and
    the submissions that failed to run, with why."""
    if not results:
        return "No submissions graded.\n"
    totals = [r.points for r in results]
    lines = [f"{len(results)} submissions, {results[0].max_points:g} points each: mean {statistics.mean(totals):.2f}, "
             f"median {statistics.median(totals):g}, min {min(totals):g}, max {max(totals):g}",
             "totals: " + "  ".join(f"{points:g} pts x{count}" for points, count in sorted(Counter(totals).items())),
             "",
             f"{'question':<10}{'max':>5}{'mean':>7}{'full':>6}{'partial':>9}{'zero':>6}"
             + "".join(f"{s:>9}" for s in STATUSES)]
    names = [q.name for q in results[0].questions]
    for name in names:
        answers = [q for r in results for q in r.questions if q.name == name]
        points = [q.points for q in answers]
        top = answers[0].max_points
        status = Counter(q.status for q in answers)
        lines.append(f"{name:<10}{top:>5g}{statistics.mean(points):>7.2f}{sum(p >= top for p in points):>6}"
                     f"{sum(0 < p < top for p in points):>9}{sum(p == 0 for p in points):>6}"
                     + "".join(f"{status[s]:>9}" for s in STATUSES))
    failed = [r for r in results if r.failure]
    lines += ["", f"failed to run: {len(failed)}" + ("" if failed else " (every notebook ran to its end)")]
    width = max((len(r.submission) for r in failed), default=0)
    lines += [f"  {r.submission:<{width}}  {r.failure}" for r in sorted(failed, key=lambda r: r.submission)]
    return "\n".join(lines) + "\n"


class Report:
    """The output folder of a grading run (see the module docstring for what goes where)."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        (self.out / "gradescope").mkdir(parents=True, exist_ok=True)
        (self.out / "feedback").mkdir(parents=True, exist_ok=True)

    def write_submission(self, result: SubmissionResult) -> None:
        """The files of one submission, as soon as it is graded."""
        name = safe_name(result.submission)
        atomic_write(self.out / "gradescope" / f"{name}.json", json.dumps(gradescope_results(result), indent=2))
        atomic_write(self.out / "feedback" / f"{name}.txt", feedback_text(result))

    def write(self, results: list[SubmissionResult]) -> None:
        """Everything: each submission's files, ``grades.csv`` and ``summary.txt``."""
        for result in results:
            self.write_submission(result)
        atomic_write(self.out / "grades.csv", csv_text(results))
        atomic_write(self.out / "summary.txt", summary(results))


def write_results(results: list[SubmissionResult], out: str | Path) -> None:
    """``grades.csv``, ``gradescope/<submission>.json``, ``feedback/<submission>.txt``, ``summary.txt``."""
    Report(out).write(results)
