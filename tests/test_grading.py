"""The autograder against a catalogue of attacks.

One grading run (the CLI, sandboxed, 2 at a time, short limits) grades a folder holding the
master itself, the blank student copy and one submission per attack. Every attack starts
from the blank student copy and adds its trick; each must score no more than the blank copy.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from exercise_helpers import run_cells  # noqa: E402
from lecture_lib.grading import authoring
from lecture_lib.grading.authoring import SolutionLeakError, make_student_copy, read_exercise, write_student_copy
from lecture_lib.grading.grader import Answers, AnswerError, decode_answer, grade_folder
from lecture_lib.grading.sandbox import Limits, SandboxUnavailable, sandbox_available

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = sorted((ROOT / "exercises").glob("[0-9]*.ipynb"))
MASTER = ROOT / "exercises" / "03_segmentation.ipynb"
MARK = "31.4159"  # a unique sleep duration: lets the test find surviving processes
SECRET = "s3cr3t-t0ken-of-the-grading-machine"

# The attack catalogue must run wherever the course is tested (Linux, as root in CI): a missing
# sandbox is a failure there, not a skip. Only other systems (no Linux namespaces) skip.
needs_sandbox = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux namespaces")


def _attacks(paths: dict[str, str], port: int) -> dict[str, tuple[str, str]]:
    """name -> (where: "start" | "end", code) added to the blank student copy."""
    wrong_answers = (
        "X, Y, Z = 0, 0, 0\n"
        "def conv_transpose2d_single(x, weight, stride=1):\n    return torch.zeros(1)\n"
        "def segmentation_scores(pred, target, num_classes):\n    return 0.0, 0.0\n"
    )
    return {
        "patch_comparisons": ("end", wrong_answers + (
            "import builtins, math, numpy, torch\n"
            "torch.allclose = lambda *a, **k: True\n"
            "torch.equal = lambda *a, **k: True\n"
            "torch.testing.assert_close = lambda *a, **k: None\n"
            "numpy.allclose = lambda *a, **k: True\n"
            "numpy.testing.assert_allclose = lambda *a, **k: None\n"
            "math.isclose = lambda *a, **k: True\n"
            "builtins.abs = lambda x: 0\n"
            "builtins.all = lambda *a: True\n"
            "builtins.isinstance = lambda *a: True\n"
        )),
        "always_equal": ("end", (
            "class Same(float):\n"
            "    def __eq__(self, other): return True\n"
            "    def __ne__(self, other): return False\n"
            "    __hash__ = float.__hash__\n"
            "class Anything:\n"
            "    def __eq__(self, other): return True\n"
            "    def __getattr__(self, name): return lambda *a, **k: self\n"
            "    def __iter__(self): return iter([Same(0)] * 3)\n"
            "    def __float__(self): return 0.0\n"
            "X = Y = Z = Same(0)\n"
            "def conv_transpose2d_single(x, weight, stride=1):\n    return Anything()\n"
            "def segmentation_scores(pred, target, num_classes):\n    return Anything()\n"
        )),
        "read_master_and_others": ("end", (
            "import glob, json, os\n"
            f"patterns = [{paths['master']!r}, {paths['subs']!r} + '/*.ipynb', {paths['root']!r} + '/**/*.ipynb',\n"
            "            '/work/**/*.ipynb', '/tmp/**/*.ipynb', '/root/*.ipynb', '/root/*/*.ipynb', '/home/**/*.ipynb',\n"
            "            '/proc/*/root/' + " + repr(paths['master']) + ", '/proc/*/cwd/*.ipynb']\n"
            "stolen = 0\n"
            "for pattern in patterns:\n"
            "    for path in glob.glob(pattern, recursive=True)[:200]:\n"
            "        try:\n"
            "            nb = json.load(open(path))\n"
            "        except Exception:\n"
            "            continue\n"
            "        for cell in nb.get('cells', []):\n"
            "            src = ''.join(cell.get('source', ''))\n"
            "            if cell.get('cell_type') == 'code' and 'BEGIN SOLUTION' in src:\n"
            "                try:\n"
            "                    exec(src, globals()); stolen += 1\n"
            "                except Exception:\n"
            "                    pass\n"
            "print('stolen', stolen)\n"
            "secrets = os.environ.get('LECTURE_GRADE_SECRET', '')\n"
            "for path in ('/etc/shadow', '/etc/ssh/ssh_host_ed25519_key', '/root/.bash_history'):\n"
            "    try:\n"
            "        secrets += open(path).read()[:200]\n"
            "    except OSError:\n"
            "        pass\n"
            "def conv_transpose2d_single(*args, **kwargs):\n"
            "    raise RuntimeError('LEAK:' + secrets)\n"
        )),
        "detached_rewrite": ("end", (
            "import os, subprocess, time\n"
            f"OUT, MASTER = {paths['out']!r}, {paths['master']!r}\n"
            "fake = 'submission,question,points,max_points,status\\ndetached_rewrite,q1,2,2,passed\\n'\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            f"        time.sleep({MARK})\n"
            "        for target in (OUT + '/grades.csv', MASTER):\n"
            "            try:\n"
            "                open(target, 'w').write(fake)\n"
            "            except Exception:\n"
            "                pass\n"
            "        os._exit(0)\n"
            "    os._exit(0)\n"
            f"subprocess.Popen(['nohup', 'sh', '-c', 'sleep {MARK}; echo PWNED > ' + OUT + '/pwned.txt'],\n"
            "                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "time.sleep(0.5)\n"
        )),
        "os_exit": ("start", "import os\nos._exit(0)\n"),
        # after the setup cell's import of torch: each fork is slow and so is each watchdog poll
        "fork_bomb_after_torch": ("start", (
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        )),
        "infinite_loop": ("start", "while True:\n    pass\n"),
        "loop_ignoring_interrupt": ("start", (
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "while True:\n    try:\n        pass\n    except BaseException:\n        pass\n"
        )),
        "memory_hog": ("start", (
            "try:\n    huge = bytearray(64 * 2**30)\nexcept MemoryError:\n    pass\n"
            "chunks = []\n"
            "try:\n    while True:\n        chunks.append(bytearray(256 * 2**20))\n"
            "except MemoryError:\n    pass\n"
            "try:\n    open('/dev/shm/fill', 'wb').write(b'0' * 2**30)\nexcept OSError:\n    pass\n"
        )),
        "network": ("end", (
            "import socket\n"
            "for host in ('127.0.0.1', 'localhost', '0.0.0.0'):\n"
            "    try:\n"
            f"        s = socket.create_connection((host, {port}), timeout=2)\n"
            "        s.sendall(b'PWNED'); s.close()\n"
            "        X, Y, Z = 40, 60, 80\n"
            "    except OSError as err:\n"
            "        print('no network:', err)\n"
        )),
        "fake_output": ("end", wrong_answers + (
            "import json, sys\n"
            "from IPython.display import display\n"
            "print('q1: 2/2 passed\\nq2: 3/3 passed\\nq3: 2/2 passed\\nTOTAL 7/7')\n"
            "print('submission,question,points,max_points,status\\nfake_output,q1,2,2,passed')\n"
            "print(json.dumps({'score': 7, 'tests': [{'name': 'q1', 'score': 2, 'max_score': 2}]}))\n"
            "print('0' * 32 + json.dumps({'xyz': {'ok': [40, 60, 80]}}) + '0' * 32)\n"
            "display({'application/json': {'score': 7}}, raw=True)\n"
            "import os\n"
            "os.write(1, b'FAKE-STDOUT honest: 7/7\\n'); os.write(2, b'FAKE-STDERR honest: 7/7\\n')\n"
            "print('x' * 5_000_000)\n"
        )),
        "kill_everything": ("start", (
            "import os, signal\n"
            "for pid in (-1, os.getppid(), 1):\n"
            "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
        )),
    }


def _with_cell(student_nb, where: str, code: str):
    nb = nbformat.from_dict(student_nb)
    cell = nbformat.v4.new_code_cell(code)
    if where == "start":
        nb.cells.insert(2, cell)  # after the setup cell and the title
    else:
        nb.cells.append(cell)
    return nb


class _Listener:
    """A TCP server outside the sandbox that records every connection it gets."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One shared grading run of master + blank + every attack, through the CLI."""
    available, why = sandbox_available()
    assert available, f"the grading sandbox does not work on this machine: {why}"
    base = tmp_path_factory.mktemp("grading")
    subs, out, student_dir = base / "submissions", base / "out", base / "student"
    subs.mkdir()
    student_path = write_student_copy(MASTER, student_dir)
    student_nb = nbformat.read(student_path, as_version=4)
    (subs / "blank.ipynb").write_text(student_path.read_text())
    (subs / "honest.ipynb").write_bytes(MASTER.read_bytes())
    listener = _Listener()
    paths = {"master": str(MASTER), "subs": str(subs), "out": str(out), "root": str(ROOT)}
    attacks = _attacks(paths, listener.port)
    for name, (where, code) in attacks.items():
        nbformat.write(_with_cell(student_nb, where, code), subs / f"{name}.ipynb")
    master_digest = _digest(MASTER)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "lecture_lib.grading.cli", "grade", str(MASTER), str(subs), "--out", str(out),
         "--jobs", "2", "--cell-timeout", "20", "--timeout", "90", "--cpu", "90"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "LECTURE_GRADE_SECRET": SECRET},
    )
    seconds = time.monotonic() - started
    listener.close()
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out / "grades.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    yield {"rows": rows, "out": out, "subs": subs, "attacks": attacks, "listener": listener,
           "master_digest": master_digest, "seconds": seconds, "log": done.stdout + done.stderr,
           "csv_digest": _digest(out / "grades.csv")}


def _totals(rows) -> dict[str, float]:
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["submission"]] = totals.get(row["submission"], 0.0) + float(row["points"])
    return totals


@needs_sandbox
def test_csv_has_one_row_per_submission_and_question(graded):
    exercise = read_exercise(MASTER)
    assert list(graded["rows"][0]) == ["submission", "question", "points", "max_points", "status"]
    names = {r["submission"] for r in graded["rows"]}
    assert names == {"blank", "honest", *graded["attacks"]}
    assert len(graded["rows"]) == len(names) * len(exercise.questions)
    assert {r["status"] for r in graded["rows"]} <= {"passed", "failed", "error", "timeout"}


@needs_sandbox
def test_master_full_marks_blank_zero(graded):
    totals = _totals(graded["rows"])
    assert totals["honest"] == read_exercise(MASTER).max_points
    assert totals["blank"] == 0
    assert all(r["status"] == "passed" for r in graded["rows"] if r["submission"] == "honest")


@needs_sandbox
@pytest.mark.parametrize("attack", list(_attacks({"master": "", "subs": "", "out": "", "root": ""}, 0)))
def test_attack_scores_no_more_than_blank(graded, attack):
    totals = _totals(graded["rows"])
    assert totals[attack] <= totals["blank"], f"{attack} scored {totals[attack]}:\n{graded['log']}"


@needs_sandbox
def test_timeouts_are_reported(graded):
    status = {(r["submission"], r["question"]): r["status"] for r in graded["rows"]}
    # an interruptible loop is interrupted and grading goes on; one that ignores SIGINT is killed
    assert status[("infinite_loop", "q1")] == "error"
    assert "interrupted" in (graded["out"] / "feedback" / "infinite_loop.txt").read_text()
    assert status[("loop_ignoring_interrupt", "q1")] == "timeout"
    assert status[("os_exit", "q1")] == "error"


@needs_sandbox
def test_watchdog_stops_a_fork_bomb_in_a_kernel_that_imported_torch(graded):
    """Stopped by the watchdog (busy processes), not left to run into its cell's time limit."""
    summary = (graded["out"] / "summary.txt").read_text()
    assert re.search(r"^  fork_bomb_after_torch +kept \d+ processes busy using", summary, flags=re.M), summary


@needs_sandbox
def test_no_network_and_nothing_survives(graded):
    assert graded["listener"].connections == 0
    time.sleep(1.0)
    out = graded["out"]
    assert _digest(out / "grades.csv") == graded["csv_digest"]
    assert _digest(MASTER) == graded["master_digest"]
    assert not (out / "pwned.txt").exists()
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if MARK.encode() in cmdline:
            leftovers.append(pid)
    assert not leftovers, f"processes of a graded submission still run: {leftovers}"


@needs_sandbox
def test_kernel_output_never_reaches_the_instructors_terminal(graded):
    assert "FAKE-STDOUT" not in graded["log"] and "FAKE-STDERR" not in graded["log"]
    assert "fake_output: 0/7" in graded["log"]


@needs_sandbox
def test_no_secret_reaches_the_feedback(graded):
    feedback = (graded["out"] / "feedback" / "read_master_and_others.txt").read_text()
    assert "LEAK:" in feedback  # the student's own error message is shown...
    assert SECRET not in feedback and "root:" not in feedback  # ...but it found nothing to leak
    assert "OPENSSH" not in feedback


def _score_in_process(exercise, namespace) -> float:
    """The grader's answer cell and hidden tests, without a kernel (fast check of every master)."""
    import contextlib
    import io

    from lecture_lib.grading.answers import extract_cell, parse_answers, score_question

    total = 0.0
    for question in exercise.questions.values():
        nonce = "7" * 32
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(extract_cell(question, nonce), namespace)
        values, errors = parse_answers(buffer.getvalue(), nonce, Limits().answer_kb)
        total += score_question(question, values, errors).points
    return total


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_hidden_tests_accept_every_master_and_reject_its_blank_copy(path):
    exercise = read_exercise(path)
    assert _score_in_process(exercise, run_cells(exercise.notebook)) == exercise.max_points
    assert _score_in_process(exercise, run_cells(make_student_copy(exercise))) == 0


@needs_sandbox
def test_gradescope_json_and_feedback(graded):
    import json

    out = graded["out"]
    honest = json.loads((out / "gradescope" / "honest.json").read_text())
    assert honest["score"] == read_exercise(MASTER).max_points
    assert {t["name"] for t in honest["tests"]} == set(read_exercise(MASTER).questions)
    assert all(set(t) >= {"name", "score", "max_score", "status"} for t in honest["tests"])
    fake = json.loads((out / "gradescope" / "fake_output.json").read_text())
    assert fake["score"] == 0
    feedback = (out / "feedback" / "blank.txt").read_text()
    assert "NotImplementedError" in feedback and "0 of 7" in feedback


# -- authoring: student copies ------------------------------------------------------------


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_student_copy_has_no_solutions_hidden_tests_or_outputs(path):
    exercise = read_exercise(path)
    assert exercise.questions, f"{path.name} has no questions"
    student = make_student_copy(exercise)
    text = nbformat.writes(student)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "EXTRACT" not in text
    assert all(not c.get("outputs") for c in student.cells)
    for q in exercise.questions.values():
        assert f'raise NotImplementedError(\\"{q.name}: ' in text
        assert f"# PUBLIC TESTS {q.name}" in text and f'check(\\"{q.name}\\")' in text
    assert student.cells[0].source == exercise.notebook.cells[0].source  # Colab setup cell kept


def test_student_copy_fails_loudly_when_solution_text_survives(monkeypatch):
    exercise = read_exercise(MASTER)
    monkeypatch.setattr(authoring, "_strip_solutions", lambda source, placeholder, where: (source, [
        line for line in source.splitlines()]))
    with pytest.raises(SolutionLeakError, match="BEGIN SOLUTION|solution line"):
        make_student_copy(exercise)


def _tiny_master(solution_header: str = "### BEGIN SOLUTION") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"# QUESTION q1 (points: 1)\ndef f(x):\n    {solution_header}\n"
                                  "    return x * 1234567\n    ### END SOLUTION"),
        nbformat.v4.new_code_cell("# HIDDEN TESTS q1\nEXTRACT = {'y': 'f(1)'}\n\ndef test_y(answers):\n"
                                  "    assert answers['y'] == 1234567"),
    ]
    return nb


def test_malformed_marker_is_refused_not_leaked(tmp_path):
    nb = _tiny_master("### BEGIN SOLUTION here")
    with pytest.raises(ValueError, match="END SOLUTION without BEGIN"):
        authoring.parse_exercise(nb)
    path = tmp_path / "m.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError):
        write_student_copy(path, tmp_path / "out")
    assert not (tmp_path / "out" / "m.ipynb").exists()


def test_parse_errors_are_explicit():
    nb = _tiny_master()
    nb.cells[1].source = "# HIDDEN TESTS q2\nEXTRACT = {'y': 'f(1)'}\ndef test_y(answers):\n    pass"
    with pytest.raises(ValueError, match="no '# QUESTION q2' cell"):
        authoring.parse_exercise(nb)
    nb = _tiny_master()
    nb.cells[1].source = "# HIDDEN TESTS q1\ndef test_y(answers):\n    pass"
    with pytest.raises(ValueError, match="needs EXTRACT"):
        authoring.parse_exercise(nb)
    nb = _tiny_master()
    nb.cells[0].source = nb.cells[0].source.replace("### END SOLUTION", "")
    with pytest.raises(ValueError, match="never closed"):
        authoring.parse_exercise(nb)
    nb = _tiny_master()
    nb.cells[1].source = nb.cells[1].source.replace("# HIDDEN TESTS q1", "# hidden tests q1")
    with pytest.raises(ValueError, match="malformed header"):
        authoring.parse_exercise(nb)


def test_metadata_marks_work_like_headers():
    nb = _tiny_master()
    nb.cells[0].source = nb.cells[0].source.split("\n", 1)[1]
    nb.cells[0].metadata["lecture_grade"] = {"role": "solution", "question": "q1", "points": 3}
    exercise = authoring.parse_exercise(nb)
    assert exercise.questions["q1"].points == 3 and exercise.questions["q1"].extract == {"y": "f(1)"}


# -- decoding: only plain data crosses --------------------------------------------------------


def test_decode_rebuilds_tensors_with_the_graders_torch():
    import numpy as np
    import torch

    t = decode_answer({"__tensor__": "torch", "dtype": "float32", "shape": [2, 2], "data": [[1, 2], [3, 4]]})
    assert type(t) is torch.Tensor and t.dtype == torch.float32
    a = decode_answer({"__tensor__": "numpy", "dtype": "int64", "shape": [3], "data": [1, 2, 3]})
    assert type(a) is np.ndarray
    with pytest.raises(AnswerError, match="declared"):
        decode_answer({"__tensor__": "torch", "dtype": "float32", "shape": [3], "data": [1, 2]})
    with pytest.raises(AnswerError, match="unsupported"):
        decode_answer({"__tensor__": "torch", "dtype": "object", "shape": [1], "data": [1]})
    with pytest.raises(AnswerError, match="unexpected"):
        decode_answer((1, 2))  # only what json.loads can produce is accepted
    answers = Answers({"a": 1}, {"b": "NotImplementedError: q1"})
    with pytest.raises(AnswerError, match="NotImplementedError"):
        answers["b"]


def test_refuses_without_sandbox_unless_told(tmp_path, monkeypatch, capsys):
    from lecture_lib.grading import cli, grader

    monkeypatch.setattr(grader, "sandbox_available", lambda: (False, "user namespaces are disabled"))
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "someone.ipynb").write_bytes(MASTER.read_bytes())
    with pytest.raises(SandboxUnavailable, match="--unsafe-no-sandbox"):
        grade_folder(MASTER, tmp_path / "subs", tmp_path / "out")
    assert cli.main(["grade", str(MASTER), str(tmp_path / "subs"), "--out", str(tmp_path / "out")]) == 1
    assert "user namespaces are disabled" in capsys.readouterr().err
    assert not (tmp_path / "out" / "grades.csv").exists()


@needs_sandbox
def test_unsafe_mode_still_grades_with_limits():
    """--unsafe-no-sandbox: no namespaces, but the same kernel, limits and trusted tests."""
    from lecture_lib.grading.grader import grade_submission

    master = ROOT / "exercises" / "02_hyperparameters.ipynb"
    result = grade_submission(read_exercise(master), master, Limits(cell_timeout=30), isolate=False)
    assert result.points == read_exercise(master).max_points, result


def test_limits_are_validated():
    with pytest.raises(ValueError, match="cell_timeout"):
        Limits(cell_timeout=0)


def test_gradescope_zip(tmp_path):
    import zipfile

    from lecture_lib.grading.cli import main

    target = tmp_path / "autograder.zip"
    assert main(["gradescope", str(MASTER), "--out", str(target)]) == 0
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        run = archive.read("run_autograder").decode()
        assert (archive.getinfo("run_autograder").external_attr >> 16) & 0o111
    assert {"setup.sh", "run_autograder", MASTER.name, "lecture_lib_src/pyproject.toml",
            "lecture_lib_src/lecture_lib/grading/grader.py"} <= names
    assert "/autograder/results/results.json" in run and "--unsafe-no-sandbox" not in run
