"""lecture-grade --jobs N: grading in parallel never changes a grade, a killed run resumes
without losing or redoing a grade, and the run reports its progress and a summary.

A small master (two questions, no torch: kernels start in about a second) keeps these runs
short; the attack catalogue on a real exercise is in ``test_grading.py``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from lecture_lib.grading import cli
from lecture_lib.grading.authoring import make_student_copy, parse_exercise

ROOT = Path(__file__).resolve().parent.parent
MARK = "27.1828"  # a unique sleep duration: finds processes of a graded submission
needs_sandbox = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux namespaces")
# generous per cell (the suite runs two test files at once on two shared cores), short per run
LIMITS = ["--cell-timeout", "8", "--timeout", "60", "--cpu", "60", "--resident-mb", "500"]

SQUARE = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION"
RESIDUES = "def residue_sum(n):\n    ### BEGIN SOLUTION\n    return sum(i % 7 for i in range(n))\n    ### END SOLUTION"


def master_notebook() -> nbformat.NotebookNode:
    """Two questions (2 + 3 points) with public and hidden tests; hidden tests use closed forms."""
    code, markdown = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        code("import time\nfrom lecture_lib.grading import check"),
        markdown("# A small exercise"),
        code(f"# QUESTION q1 (points: 2)\n{SQUARE}"),
        code('# PUBLIC TESTS q1\ndef test_q1_three():\n    """square(3) is 9."""\n    assert square(3) == 9\n\n'
             'check("q1")'),
        code('# HIDDEN TESTS q1\nEXTRACT = {"values": "[square(x) for x in range(-3, 4)]"}\n\n'
             'def test_values(answers):\n    """square(x) is x * x for x in -3..3"""\n'
             '    assert answers["values"] == [9, 4, 1, 0, 1, 4, 9]'),
        code(f"# QUESTION q2 (points: 3)\n{RESIDUES}"),
        code('# PUBLIC TESTS q2\ndef test_q2_ten():\n    """residue_sum(10) is 24."""\n'
             '    assert residue_sum(10) == 24\n\ncheck("q2")'),
        code('# HIDDEN TESTS q2\nEXTRACT = {"small": "residue_sum(10)", "large": "residue_sum(200_000)"}\n\n'
             'def test_small(answers):\n    """residue_sum(10) = 0+1+...+6 + 0+1+2 = 24"""\n'
             '    assert answers["small"] == 24\n\n'
             'def test_large(answers):\n'
             '    """residue_sum(200000) equals the closed form 21 * (n // 7) + sum(range(n % 7))"""\n'
             '    assert answers["large"] == 21 * (200_000 // 7) + sum(range(200_000 % 7))'),
    ]
    return nb


def _with_cell(nb, code: str, where: int | None = None) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cell = nbformat.v4.new_code_cell(code)
    nb.cells.insert(where if where is not None else len(nb.cells), cell)
    return nb


HOSTILE = {
    "hang": "while True:\n    pass",
    "hang_ignoring_interrupt": ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                "while True:\n    try:\n        pass\n    except BaseException:\n        pass"),
    "crash": "import os\nos._exit(3)",
    "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    "spinners_in_own_sessions": ("import os, time\nfor _ in range(12):\n    if os.fork() == 0:\n        os.setsid()\n"
                                 "        while True:\n            pass\ntime.sleep(6)"),
    "memory_in_forks": ("import os, time\nfor _ in range(6):\n    if os.fork() == 0:\n"
                        "        block = bytearray(150 * 2**20)\n        time.sleep(30)\n        os._exit(0)\n"
                        "time.sleep(6)"),
}


def write_class(folder: Path) -> dict[str, float]:
    """The master, honest, partial and blank notebooks and one per hostile trick; expected points."""
    master = master_notebook()
    folder.mkdir(parents=True)
    nbformat.write(master, folder.parent / "master.ipynb")
    blank = make_student_copy(parse_exercise(master))
    partial = nbformat.from_dict(json.loads(json.dumps(master)))
    partial.cells[5].source = partial.cells[5].source.replace("range(n)", "range(n + 1)")
    slow = _with_cell(master, "total = 0\nfor i in range(2_000_000):\n    total += i\ntime.sleep(1)")
    notebooks = {"honest": master, "honest_slow": slow, "partial": partial, "blank": blank}
    for name, code in HOSTILE.items():
        notebooks[name] = _with_cell(blank, code, where=2)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    return {"honest": 5, "honest_slow": 5, "partial": 2, **{name: 0 for name in ["blank", *HOSTILE]}}


def run_cli(*args, timeout=900, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lecture_lib.grading.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, **kwargs)


def totals(csv_path: Path) -> dict[str, float]:
    points: dict[str, float] = {}
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            points[row["submission"]] = points.get(row["submission"], 0.0) + float(row["points"])
    return points


@pytest.fixture(scope="module")
def graded_both_ways(tmp_path_factory):
    """The same folder graded with --jobs 1 and with --jobs 2."""
    base = tmp_path_factory.mktemp("jobs")
    expected = write_class(base / "subs")
    runs = {}
    for jobs in (2, 1):
        out = base / f"out{jobs}"
        started = time.monotonic()
        done = run_cli("grade", base / "master.ipynb", base / "subs", "--out", out, "--jobs", jobs, *LIMITS)
        assert done.returncode == 0, done.stdout + done.stderr
        runs[jobs] = {"out": out, "log": done.stdout + done.stderr, "seconds": time.monotonic() - started}
    return {"expected": expected, "runs": runs}


def rows(csv_path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    with open(csv_path, newline="") as handle:
        return {(r["submission"], r["question"]): (r["points"], r["status"]) for r in csv.DictReader(handle)}


@needs_sandbox
def test_jobs_2_gives_the_same_grades_as_jobs_1(graded_both_ways):
    runs = graded_both_ways["runs"]
    one, two = (rows(runs[j]["out"] / "grades.csv") for j in (1, 2))
    message = f"--jobs 1:\n{one}\n--jobs 2:\n{two}\n{runs[2]['log']}\n{runs[1]['log']}"
    assert one.keys() == two.keys()
    # the same points everywhere; the same status too, except where the watchdog and a time limit
    # raced to stop a hostile notebook (either is right, and it scores 0 either way)
    raced = {"fork_bomb", "spinners_in_own_sessions", "memory_in_forks"}
    for key in one:
        assert one[key][0] == two[key][0], message
        assert one[key][1] == two[key][1] or key[0] in raced, message
    assert totals(runs[2]["out"] / "grades.csv") == graded_both_ways["expected"], runs[2]["log"]


@needs_sandbox
def test_every_hostile_submission_is_stopped_and_named_in_the_summary(graded_both_ways):
    for jobs, run in graded_both_ways["runs"].items():
        summary = (run["out"] / "summary.txt").read_text()
        failed = summary.split("failed to run:")[1]
        for name in ("hang_ignoring_interrupt", "crash", "fork_bomb", "spinners_in_own_sessions", "memory_in_forks"):
            assert re.search(rf"^  {name} +\S", failed, flags=re.M), f"--jobs {jobs}: {name} missing\n{summary}"
        for name in ("honest", "honest_slow", "partial", "blank", "hang"):
            assert not re.search(rf"^  {name} ", failed, flags=re.M), f"--jobs {jobs}: {name} listed\n{summary}"
        assert re.search(r"^  memory_in_forks +used \d+ MB of memory, more than the 500 MB", failed, flags=re.M)
        assert re.search(r"^  fork_bomb +kept \d+ processes busy using", failed, flags=re.M)
        assert re.search(r"^  spinners_in_own_sessions +kept \d+ processes busy", failed, flags=re.M)
        assert "ignored the interrupt" in failed and "code cell 2" in failed


@needs_sandbox
def test_summary_has_mean_and_distribution_per_question(graded_both_ways):
    expected = graded_both_ways["expected"]
    summary = (graded_both_ways["runs"][2]["out"] / "summary.txt").read_text()
    mean = sum(expected.values()) / len(expected)
    assert f"{len(expected)} submissions, 5 points each: mean {mean:.2f}" in summary
    # q1: honest, honest_slow and partial have it right (full), everyone else scores 0
    q1 = re.search(r"^q1 +2 +([\d.]+) +(\d+) +(\d+) +(\d+)", summary, flags=re.M)
    assert q1 and q1.groups() == (f"{6 / len(expected):.2f}", "3", "0", str(len(expected) - 3)), summary
    q2 = re.search(r"^q2 +3 +([\d.]+) +(\d+) +(\d+) +(\d+)", summary, flags=re.M)
    assert q2 and q2.groups() == (f"{6 / len(expected):.2f}", "2", "0", str(len(expected) - 2)), summary
    assert summary in graded_both_ways["runs"][2]["log"]  # printed at the end as well


@needs_sandbox
def test_progress_lines_show_count_rate_and_time_left(graded_both_ways):
    log = graded_both_ways["runs"][2]["log"]
    lines = re.findall(r"^\[ ?(\d+)/(\d+)\] (\w+): [\d.]+/5 \(.*\) \| ([\d.]+)/min, .+ so far, (.+) left$", log,
                       flags=re.M)
    n = len(graded_both_ways["expected"])
    assert [int(c) for c, *_ in lines] == list(range(1, n + 1)), log
    assert {total for _, total, *_ in lines} == {str(n)}
    assert all(float(rate) > 0 for *_, rate, _ in lines)
    assert lines[-1][4] == "0 s"


def test_progress_line_format():
    from lecture_lib.grading.progress import Progress, format_seconds
    from lecture_lib.grading.results import QuestionResult, SubmissionResult

    assert [format_seconds(s) for s in (4.4, 65, 7300)] == ["4 s", "1 min 05 s", "2 h 01 min"]
    lines = []
    progress = Progress(total=4, done=1, log=lines.append)
    progress.started -= 60  # one minute ago
    result = SubmissionResult("ada", [QuestionResult("q1", 2, 2, "passed")], seconds=3.0)
    progress.update(result)
    # 1 graded in this run in 60 s: 1/min, 2 left: about 2 minutes
    assert lines == ["[2/4] ada: 2/2 (3 s) | 1.0/min, 1 min 00 s so far, 2 min 00 s left"]


# -- resuming a killed run --------------------------------------------------------------------


def _survivors() -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if MARK.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


@needs_sandbox
def test_a_killed_run_resumes_with_only_the_missing_grades(tmp_path):
    master = master_notebook()
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(master, tmp_path / "master.ipynb")
    blank = make_student_copy(parse_exercise(master))
    for k in range(6):  # six different notebooks (different content hashes), each ~2 s of waiting
        nb = master if k % 2 else blank
        code = (f"import subprocess\nhelper = subprocess.Popen(['sleep', '{MARK}'])\n"
                f"time.sleep(2)  # variant {k}\nhelper.kill()")
        nbformat.write(_with_cell(nb, code), subs / f"student{k}.ipynb")
    args = ["grade", tmp_path / "master.ipynb", subs, "--jobs", 2, *LIMITS]

    reference = run_cli(*args, "--out", tmp_path / "uninterrupted")
    assert reference.returncode == 0, reference.stdout + reference.stderr

    out = tmp_path / "out"
    grader = subprocess.Popen([sys.executable, "-m", "lecture_lib.grading.cli", *map(str, args), "--out", str(out)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list((out / "state").glob("*.json"))) < 2 and grader.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    grader.send_signal(signal.SIGKILL)  # halfway: two stored, two in flight
    grader.wait(10)
    stored = {p: p.stat().st_mtime_ns for p in (out / "state").glob("*.json")}
    assert 2 <= len(stored) < 6
    assert not (out / "grades.csv").exists()
    deadline = time.monotonic() + 15
    while _survivors() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _survivors(), "a sandbox of the killed grader is still running"

    resumed = run_cli(*args, "--out", out)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(stored)} already graded" in resumed.stdout and f"{6 - len(stored)} to grade" in resumed.stdout
    assert len(re.findall(r"^\[\d/6\]", resumed.stdout, flags=re.M)) == 6 - len(stored)
    assert {p: p.stat().st_mtime_ns for p in stored} == stored  # the stored grades were not redone
    assert (out / "grades.csv").read_text() == (tmp_path / "uninterrupted" / "grades.csv").read_text()
    for k in range(6):
        a, b = (json.loads((o / "gradescope" / f"student{k}.json").read_text())
                for o in (out, tmp_path / "uninterrupted"))
        a.pop("execution_time"), b.pop("execution_time")
        assert a == b
        assert (out / "feedback" / f"student{k}.txt").read_text() == \
            (tmp_path / "uninterrupted" / "feedback" / f"student{k}.txt").read_text()
    assert totals(out / "grades.csv") == {f"student{k}": 5.0 if k % 2 else 0.0 for k in range(6)}


# -- bad input: a clear error that names what to fix ------------------------------------------


def grade_args(tmp_path: Path, subs: str = "subs") -> list[str]:
    return ["grade", str(tmp_path / "master.ipynb"), str(tmp_path / subs), "--out", str(tmp_path / "o")]


def test_folder_without_notebooks(tmp_path, capsys):
    nbformat.write(master_notebook(), tmp_path / "master.ipynb")
    (tmp_path / "subs").mkdir()
    assert cli.main(grade_args(tmp_path)) == 1
    assert f"no notebooks (*.ipynb) in {tmp_path / 'subs'}; it is empty" in capsys.readouterr().err
    (tmp_path / "subs" / "ada").mkdir()
    nbformat.write(master_notebook(), tmp_path / "subs" / "ada" / "hw.ipynb")
    (tmp_path / "subs" / "notes.txt").write_text("x")
    assert cli.main(grade_args(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "it holds ada, notes.txt" in err and "ada/hw.ipynb" in err and "put them at the top level" in err


def test_gradescope_upload_without_notebook_gets_a_results_json(tmp_path):
    nbformat.write(master_notebook(), tmp_path / "master.ipynb")
    (tmp_path / "subs").mkdir()
    target = tmp_path / "results" / "results.json"
    assert cli.main(grade_args(tmp_path) + ["--results-json", str(target)]) == 0
    payload = json.loads(target.read_text())
    assert payload["score"] == 0 and "expected exactly one .ipynb notebook" in payload["output"]


@pytest.mark.parametrize("jobs", ["0", "-3"])
def test_jobs_must_be_positive(tmp_path, capsys, jobs):
    nbformat.write(master_notebook(), tmp_path / "master.ipynb")
    (tmp_path / "subs").mkdir()
    nbformat.write(master_notebook(), tmp_path / "subs" / "ada.ipynb")
    assert cli.main(grade_args(tmp_path) + ["--jobs", jobs]) == 1
    err = capsys.readouterr().err
    assert f"--jobs (submissions graded at once) must be a whole number >= 1, got {int(jobs)}" in err
    from lecture_lib.grading.grader import grade_folder

    with pytest.raises(ValueError, match="--jobs"):
        grade_folder(tmp_path / "master.ipynb", tmp_path / "subs", tmp_path / "o", jobs=0)


def test_missing_exercise_lists_the_exercises(tmp_path, capsys):
    (tmp_path / "subs").mkdir()
    master = ROOT / "exercises" / "99_missing.ipynb"
    assert cli.main(["grade", str(master), str(tmp_path / "subs"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"exercise notebook {master} not found" in err and "03_segmentation" in err


def test_missing_submissions_folder(tmp_path, capsys):
    nbformat.write(master_notebook(), tmp_path / "master.ipynb")
    assert cli.main(grade_args(tmp_path, "nope")) == 1
    assert f"{tmp_path / 'nope'} does not exist" in capsys.readouterr().err


def test_workers_is_still_accepted_as_the_old_name_of_jobs():
    args = cli._parser().parse_args(["grade", "m.ipynb", "subs", "--out", "o", "--workers", "3"])
    assert args.jobs == 3
    assert cli._parser().parse_args(["grade", "m.ipynb", "subs", "--out", "o"]).jobs == 2
