"""The student self-check: check("qN") runs the public tests found in the notebook namespace."""

import pytest

from exercise_helpers import run_cells  # noqa: E402
from lecture_lib.grading import CheckResult, check


def _namespace():
    def double(x):
        return 2 * x

    def unfinished(x):
        raise NotImplementedError("q2: replace this line with your code")

    def test_q1_small():
        """double(2) is 4."""
        assert double(2) == 4

    def test_q1_negative():
        """double(-3) is -6."""
        assert double(-3) == -6, f"double(-3) gave {double(-3)}"

    def test_q1_wrong():
        """double(1) is 3 (a deliberately failing test)."""
        assert double(1) == 3, f"expected 3, got {double(1)}"

    def test_q2_todo():
        """unfinished(1) is 1."""
        assert unfinished(1) == 1

    def test_q3_undefined():
        """needs a name that was never defined."""
        assert not_defined_anywhere(1) == 1  # noqa: F821

    def test_q4_crash():
        """crashes with a TypeError."""
        return double(None) + 1

    return {k: v for k, v in locals().items()}


def test_reports_passed_and_failed_with_hints(capsys):
    result = check("q1", _namespace())
    out = capsys.readouterr().out
    assert isinstance(result, CheckResult)
    assert [o.status for o in result.outcomes] == ["passed", "passed", "failed"]
    assert result.passed == 2 and not result.all_passed
    assert "q1: 2 of 3 public tests passed" in out
    assert "passed  double(2) is 4." in out
    assert "FAILED  double(1) is 3" in out and "expected 3, got 2" in out


def test_all_passed_says_hidden_tests_exist(capsys):
    ns = _namespace()
    del ns["test_q1_wrong"]
    result = check("q1", ns)
    assert result.all_passed
    assert "hidden tests" in capsys.readouterr().out


def test_not_implemented_is_named_plainly():
    result = check("q2", _namespace(), quiet=True)
    assert result.outcomes[0].status == "not written yet"
    assert "NotImplementedError" in result.outcomes[0].message


def test_name_error_says_run_the_cells_above():
    result = check("q3", _namespace(), quiet=True)
    assert result.outcomes[0].status == "error"
    assert "Run the cells above" in result.outcomes[0].message


def test_crash_reports_type_and_line():
    result = check("q4", _namespace(), quiet=True)
    outcome = result.outcomes[0]
    assert outcome.status == "error" and outcome.message.startswith("TypeError")
    assert "double(None)" in outcome.message or "2 * x" in outcome.message


def test_no_tests_found_says_which_cell_to_run(capsys):
    result = check("q9", _namespace())
    assert result.outcomes == [] and not result.all_passed
    assert "# PUBLIC TESTS q9" in capsys.readouterr().out


def test_default_namespace_is_the_callers_globals(capsys):
    # the test functions of this module are not named test_qx_*, so nothing is found here
    result = check("qx")
    assert result.outcomes == []


def test_repr_is_short_and_display_does_not_repeat():
    result = check("q1", _namespace(), quiet=True)
    assert repr(result) == "CheckResult(q1: 2/3 passed)"
    assert result._ipython_display_() is None


def test_bad_question_name():
    with pytest.raises(TypeError, match="question must be a question name like 'q3', got 3"):
        check(3, {})


# -- the exercise notebooks' own public tests ----------------------------------------------

from pathlib import Path  # noqa: E402

from lecture_lib.grading.authoring import make_student_copy, read_exercise  # noqa: E402

EXERCISES = sorted((Path(__file__).resolve().parent.parent / "exercises").glob("[0-9]*.ipynb"))


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_public_tests_pass_on_master_and_say_not_written_on_student_copy(path):
    exercise = read_exercise(path)
    master_ns = run_cells(exercise.notebook)
    student_ns = run_cells(make_student_copy(exercise))
    for name in exercise.questions:
        on_master = check(name, master_ns, quiet=True)
        assert on_master.outcomes and on_master.all_passed, on_master.report()
        on_student = check(name, student_ns, quiet=True)
        assert on_student.outcomes and on_student.passed < len(on_student.outcomes), on_student.report()
        assert all(o.status in ("not written yet", "error", "failed") for o in on_student.outcomes
                   if o.status != "passed")
