"""The report (CSV, Gradescope JSON, feedback, summary) and the store of finished grades, on
hand-made results: no kernel, no sandbox."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest

from lecture_lib.grading.report import Report, csv_text, feedback_text, gradescope_results, summary
from lecture_lib.grading.results import QuestionResult, SubmissionResult
from lecture_lib.grading.sandbox import Limits
from lecture_lib.grading.store import ResultStore, content_hash


def result(name: str, q1: float, q2: float, status2: str = "", failure: str = "") -> SubmissionResult:
    questions = [QuestionResult("q1", q1, 2, "passed" if q1 == 2 else "failed", [f"q1 feedback of {name}"]),
                 QuestionResult("q2", q2, 3, status2 or ("passed" if q2 == 3 else "failed"), [])]
    return SubmissionResult(name, questions, notes=["a note"] if failure else [], seconds=1.5, failure=failure)


CLASS = [result("cy", 2, 3), result("ada", 2, 1.5), result("bo", 0, 0, "timeout", failure="ran longer than 60 s"),
         result("di", 1, 0, "error")]


def test_csv_is_sorted_by_submission_and_matches_the_results():
    rows = list(csv.reader(csv_text(CLASS).splitlines()))
    assert rows[0] == ["submission", "question", "points", "max_points", "status"]
    assert [r[0] for r in rows[1:]] == ["ada", "ada", "bo", "bo", "cy", "cy", "di", "di"]
    assert rows[1:3] == [["ada", "q1", "2", "2", "passed"], ["ada", "q2", "1.5", "3", "failed"]]


def test_summary_by_hand():
    text = summary(CLASS)
    # totals 5, 3.5, 0, 1: mean 2.375, median 2.25
    assert text.startswith("4 submissions, 5 points each: mean 2.38, median 2.25, min 0, max 5\n")
    assert "totals: 0 pts x1  1 pts x1  3.5 pts x1  5 pts x1" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("q")}
    # question: max, mean, full, partial, zero, then passed / failed / error / timeout
    assert rows["question"] == ["max", "mean", "full", "partial", "zero", "passed", "failed", "error", "timeout"]
    assert rows["q1"] == ["2", "1.25", "2", "1", "1", "2", "2", "0", "0"]
    assert rows["q2"] == ["3", "1.12", "1", "1", "2", "1", "1", "1", "1"]
    assert text.rstrip().endswith("failed to run: 1\n  bo  ran longer than 60 s")
    assert "every notebook ran to its end" in summary(CLASS[:2])
    assert summary([]) == "No submissions graded.\n"


def test_gradescope_and_feedback():
    payload = gradescope_results(CLASS[1])
    assert payload["score"] == 3.5 and [t["name"] for t in payload["tests"]] == ["q1", "q2"]
    assert payload["tests"][1] == {"name": "q2", "score": 1.5, "max_score": 3, "status": "failed",
                                   "output": "failed\n", "visibility": "visible"}
    assert feedback_text(CLASS[1]).startswith("ada: 3.5 of 5 points\n\nq1: 2/2 (passed)\n  q1 feedback of ada\n")


def test_report_writes_every_file_and_leaves_no_temporary_file(tmp_path):
    Report(tmp_path).write(CLASS)
    assert (tmp_path / "grades.csv").read_bytes() == csv_text(CLASS).encode()
    assert (tmp_path / "summary.txt").read_text() == summary(CLASS)
    assert sorted(p.name for p in (tmp_path / "gradescope").iterdir()) == ["ada.json", "bo.json", "cy.json", "di.json"]
    assert json.loads((tmp_path / "gradescope" / "bo.json").read_text())["output"] == "a note"
    assert not list(tmp_path.rglob("*.tmp"))


def test_results_round_trip_through_json():
    for item in CLASS:
        assert SubmissionResult.from_dict(json.loads(json.dumps(item.to_dict()))) == item


def test_store_keeps_grades_by_content_for_the_same_master_and_limits(tmp_path):
    master = tmp_path / "master.ipynb"
    master.write_text("master v1")
    notebook = tmp_path / "ada.ipynb"
    notebook.write_text("ada's work")
    key = content_hash(notebook)
    assert key == hashlib.sha256(b"ada's work").hexdigest()
    store = ResultStore(tmp_path / "state", master, Limits())
    assert store.get(key, "ada") is None
    store.put(key, CLASS[1])
    renamed = SubmissionResult.from_dict({**CLASS[1].to_dict(), "submission": "ada_renamed"})
    assert store.get(key, "ada_renamed") == renamed  # a renamed file keeps its grade
    assert ResultStore(tmp_path / "state", master, Limits(cell_timeout=5)).get(key, "ada") is None  # other limits
    master.write_text("master v2")
    assert ResultStore(tmp_path / "state", master, Limits()).get(key, "ada") is None  # another master
    assert ResultStore(tmp_path / "state", master, Limits()).stale() == 1
    (tmp_path / "state" / f"{key}.json").write_text("{ half a fi")
    assert store.get(key, "ada") is None  # unreadable: graded again
    assert not list((tmp_path / "state").glob("*.tmp"))


@pytest.mark.parametrize("value", [0, -1, 0.0])
def test_new_limits_are_validated(value):
    with pytest.raises(ValueError, match="Limits.cpus must be a positive number"):
        Limits(cpus=value)
    with pytest.raises(ValueError, match="Limits.resident_mb must be a positive number"):
        Limits(resident_mb=value)
