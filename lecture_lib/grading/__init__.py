"""Exercises, student self-checks and a sandboxed autograder.

Students: ``from lecture_lib.grading import check; check("q3")`` (public tests, in the notebook).
Instructors: the ``lecture-grade`` command (``cli.py``): ``student``, ``grade``, ``gradescope``.

``check`` needs nothing beyond the standard library; the instructor side (``grader``,
``sandbox``, ``authoring``) imports nbclient/nbformat only when used.
"""

from .check import CheckResult, check

__all__ = ["check", "CheckResult"]
