"""Exercises, student self-checks and a sandboxed autograder.

Students: ``from lecture_lib.grading import check; check("q3")`` (public tests, in the notebook).
Instructors: the ``lecture-grade`` command (``cli.py``): ``student``, ``grade``, ``gradescope``.

``check`` needs nothing beyond the standard library; the instructor side imports
nbclient/nbformat only when used:

- ``authoring``: the exercise format, student copies;
- ``grader``: grade one notebook or a folder (``--jobs``, resumable);
- ``kernel``: one submission's kernel run (start, execute, collect, time out, tear down);
- ``sandbox`` and ``watchdog``: the isolation and the limits of that run;
- ``answers``: what crosses the sandbox wall, and the hidden tests that score it;
- ``results``, ``store``, ``report``, ``progress``: grades, kept as they finish, and what the
  instructor reads (CSV, Gradescope JSON, feedback, the summary, the progress lines);
- ``cli``: the ``lecture-grade`` command.
"""

from .check import CheckResult, check

__all__ = ["check", "CheckResult"]
