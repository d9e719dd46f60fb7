"""Student self-check: ``check("q3")`` runs the public tests of question q3 in your notebook.

The public tests ship inside the student notebook (the cell marked ``# PUBLIC TESTS q3``
defines functions ``test_q3_*``), so this works the same in JupyterLab and on Colab, with
nothing to download. ``check`` finds those functions in the notebook's namespace, runs each,
and says plainly what passed and, for what did not, what to look at (the test's docstring).

Passing the public tests is a good sign, not a grade: the instructor's grader runs more cases
(hidden tests) in a separate, sandboxed process.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["check", "CheckResult", "TestOutcome"]


@dataclass
class TestOutcome:
    """One public test: ``status`` is "passed", "failed", "not written yet" or "error"."""

    name: str
    status: str
    description: str = ""
    message: str = ""


@dataclass
class CheckResult:
    """What ``check`` found for one question (also printed as a report)."""

    question: str
    outcomes: list[TestOutcome] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(o.status == "passed" for o in self.outcomes)

    @property
    def all_passed(self) -> bool:
        return bool(self.outcomes) and self.passed == len(self.outcomes)

    def report(self) -> str:
        if not self.outcomes:
            return (
                f"{self.question}: no public tests found. Run the cell marked '# PUBLIC TESTS "
                f"{self.question}' (it defines functions test_{self.question}_...), then check again."
            )
        lines = [f"{self.question}: {self.passed} of {len(self.outcomes)} public tests passed"]
        for o in self.outcomes:
            label = o.description or o.name
            if o.status == "passed":
                lines.append(f"  passed  {label}")
                continue
            lines.append(f"  {o.status.upper():<7} {label}")
            if o.message:
                lines.extend(f"          {line}" for line in o.message.splitlines())
        if self.all_passed:
            lines.append("All public tests pass. The grader also runs hidden tests with other inputs.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"CheckResult({self.question}: {self.passed}/{len(self.outcomes)} passed)"

    def _ipython_display_(self) -> None:
        # check() has already printed the report; showing the object again would repeat it.
        pass


def _describe(func: Callable) -> str:
    doc = (func.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else func.__name__.split("_", 2)[-1].replace("_", " ")


def _run_one(name: str, func: Callable) -> TestOutcome:
    description = _describe(func)
    try:
        func()
    except NotImplementedError:
        return TestOutcome(name, "not written yet", description,
                           "Your solution still raises NotImplementedError: replace that line with your code.")
    except AssertionError as err:
        detail = str(err) or _failing_line(err)
        return TestOutcome(name, "failed", description, detail)
    except NameError as err:
        return TestOutcome(name, "error", description,
                           f"{err}. Run the cells above (your solution cell first), then check again.")
    except Exception as err:  # the student's code crashed: say where
        return TestOutcome(name, "error", description, f"{type(err).__name__}: {err}\n{_failing_line(err)}")
    return TestOutcome(name, "passed", description)


def _failing_line(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f"at: {frame.line}" if frame.line else f"at line {frame.lineno}"


def check(question: str, namespace: dict | None = None, *, quiet: bool = False) -> CheckResult:
    """Run the public tests ``test_<question>_*`` found in the notebook and report.

    Args:
        question: the question's name, e.g. ``"q3"``.
        namespace: where to look for the tests; default: the calling notebook's globals.
        quiet: do not print the report (it is still in ``result.report()``).

    Returns:
        CheckResult: one ``TestOutcome`` per public test, in the order they were defined.
    """
    if not isinstance(question, str) or not question:
        raise TypeError(f"question must be a question name like 'q3', got {question!r}")
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    prefix = f"test_{question}_"
    tests = [(name, obj) for name, obj in list(namespace.items()) if name.startswith(prefix) and callable(obj)]
    result = CheckResult(question, [_run_one(name, func) for name, func in tests])
    if not quiet:
        print(result.report())
    return result
