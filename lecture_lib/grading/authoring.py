"""Exercise notebooks: find the questions in a master, make the student copy.

A master notebook (``exercises/NN_name.ipynb``) marks each question with three kinds of code
cells. The first line of the cell says which (or the cell metadata does, see below):

``# QUESTION q3 (points: 2)``
    The cell the student completes. Everything between ``### BEGIN SOLUTION`` and
    ``### END SOLUTION`` is the instructor's solution; the student copy replaces each such block
    with ``raise NotImplementedError(...)`` at the same indentation.
``# PUBLIC TESTS q3``
    Functions named ``test_q3_*`` (plain ``assert``; the docstring says what to look at) and a
    call ``check("q3")``. They ship *inside the student notebook*, so the self-check works on
    Colab without anything else. They run in the student's kernel: the grader never trusts them.
``# HIDDEN TESTS q3``
    Only in the master. ``EXTRACT = {"name": "expression", ...}`` lists what the grader asks the
    student's kernel for (evaluated there, sent back as JSON); functions ``test_*(answers)`` then
    run in the grader's own process on those plain values (see ``grader.py``).

Instead of the first line, a cell may carry ``{"lecture_grade": {"role": "solution" | "public"
| "hidden", "question": "q3", "points": 2}}`` in its metadata (``points`` only for solutions).

``make_student_copy`` removes hidden-test cells, outputs and solutions, then re-reads its own
result and raises ``SolutionLeakError`` if any solution line or marker survived.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = [
    "Question",
    "Exercise",
    "SolutionLeakError",
    "parse_exercise",
    "read_exercise",
    "make_student_copy",
    "write_student_copy",
]

ROLES = ("solution", "public", "hidden")
_NAME = r"(?P<name>[A-Za-z][A-Za-z0-9_]*)"
_HEADERS = {
    "solution": re.compile(rf"^#\s*QUESTION\s+{_NAME}\s*\(\s*points\s*:\s*(?P<points>\d+(?:\.\d+)?)\s*\)\s*$"),
    "public": re.compile(rf"^#\s*PUBLIC TESTS\s+{_NAME}\s*$"),
    "hidden": re.compile(rf"^#\s*HIDDEN TESTS\s+{_NAME}\s*$"),
}
BEGIN = re.compile(r"^(?P<indent>\s*)#+\s*BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*#+\s*END SOLUTION\s*$")
# Lines that must never reach a student copy, whatever the cell.
_FORBIDDEN = ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS")
# Solution lines shorter than this (``return x``) are too generic to count as a leak.
_MIN_LEAK_CHARS = 8


class SolutionLeakError(ValueError):
    """The student copy would still contain solution text or hidden tests."""


@dataclass
class Question:
    """One graded question of an exercise notebook.

    ``extract`` maps answer names to Python expressions evaluated in the student's kernel;
    ``hidden_source`` is the hidden-test cell's code, run only by the grader.
    """

    name: str
    points: float
    solution_cells: list[int] = field(default_factory=list)
    public_cells: list[int] = field(default_factory=list)
    hidden_cells: list[int] = field(default_factory=list)
    extract: dict[str, str] = field(default_factory=dict)
    hidden_source: str = ""


@dataclass
class Exercise:
    """The questions of one master notebook, in notebook order."""

    path: Path | None
    notebook: nbformat.NotebookNode
    questions: dict[str, Question]

    @property
    def max_points(self) -> float:
        return sum(q.points for q in self.questions.values())


def _cell_role(cell, index: int) -> tuple[str, str, float | None] | None:
    """(role, question, points) of a cell, from its metadata or its first line; else None."""
    meta = cell.get("metadata", {}).get("lecture_grade")
    if meta is not None:
        if not isinstance(meta, dict) or meta.get("role") not in ROLES or not isinstance(meta.get("question"), str):
            raise ValueError(
                f"cell {index}: metadata lecture_grade must be {{'role': one of {ROLES}, 'question': str}}, got {meta!r}"
            )
        points = meta.get("points")
        if meta["role"] == "solution" and not isinstance(points, (int, float)):
            raise ValueError(f"cell {index}: solution metadata needs numeric 'points', got {points!r}")
        return meta["role"], meta["question"], float(points) if points is not None else None
    lines = [line for line in cell.source.splitlines() if line.strip()]
    if not lines:
        return None
    first = lines[0].strip()
    for role, pattern in _HEADERS.items():
        match = pattern.match(first)
        if match:
            points = float(match.group("points")) if role == "solution" else None
            return role, match.group("name"), points
    if any(first.upper().startswith(f"# {word}") for word in ("QUESTION", "PUBLIC TESTS", "HIDDEN TESTS")):
        raise ValueError(
            f"cell {index}: malformed header {first!r}; expected '# QUESTION q1 (points: 2)', "
            "'# PUBLIC TESTS q1' or '# HIDDEN TESTS q1'"
        )
    return None


def _parse_hidden(source: str, where: str) -> dict[str, str]:
    """Read ``EXTRACT`` (dict of str -> str) and check there is a ``test_*`` function.

    ``EXTRACT`` may be built by code (a dict comprehension over test cases): the cell is the
    instructor's own, so it is run here, in a fresh namespace, when it is not a plain literal.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"{where}: hidden tests do not parse: {err}") from None
    tests = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    assigned = any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "EXTRACT" for t in n.targets)
                   for n in tree.body)
    if not assigned:
        raise ValueError(f"{where}: needs EXTRACT = {{'answer_name': 'expression', ...}}")
    namespace: dict = {"__name__": "hidden_tests"}
    try:
        exec(compile(source, where, "exec"), namespace)
    except Exception as err:
        raise ValueError(f"{where}: running the hidden-test cell failed: {type(err).__name__}: {err}") from None
    extract = namespace.get("EXTRACT")
    if not isinstance(extract, dict) or not extract or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in extract.items()
    ):
        raise ValueError(f"{where}: EXTRACT must be a non-empty dict of answer name -> expression (strings)")
    if not tests:
        raise ValueError(f"{where}: needs at least one function test_*(answers)")
    return dict(extract)


def parse_exercise(nb, path: str | Path | None = None) -> Exercise:
    """Find the questions of a master notebook; raises ``ValueError`` on any inconsistency."""
    questions: dict[str, Question] = {}
    pending: list[tuple[str, str, int]] = []  # tests seen before their question cell
    for index, cell in enumerate(nb.cells):
        role_info = _cell_role(cell, index)
        if role_info is None:
            continue
        role, name, points = role_info
        if role != "hidden" and cell.cell_type == "code":
            _solution_blocks(cell.source, f"cell {index}")  # validates the markers
        if role == "solution":
            if cell.cell_type != "code":
                raise ValueError(f"cell {index}: question {name} must be a code cell, got {cell.cell_type}")
            if name in questions and questions[name].solution_cells:
                raise ValueError(f"cell {index}: question {name} is defined twice")
            q = questions.setdefault(name, Question(name, points))
            q.points = points
            q.solution_cells.append(index)
            if not _solution_blocks(cell.source, f"cell {index}"):
                raise ValueError(f"cell {index}: question {name} has no '### BEGIN SOLUTION' block")
        else:
            if cell.cell_type != "code":
                raise ValueError(f"cell {index}: {role} tests of {name} must be a code cell")
            pending.append((role, name, index))
    for role, name, index in pending:
        if name not in questions:
            raise ValueError(f"cell {index}: {role} tests for {name!r}, but no '# QUESTION {name}' cell")
        q = questions[name]
        if role == "public":
            q.public_cells.append(index)
        else:
            if q.hidden_cells:
                raise ValueError(f"cell {index}: question {name} has two hidden-test cells; use one")
            q.hidden_cells.append(index)
            q.hidden_source = nb.cells[index].source
            q.extract = _parse_hidden(q.hidden_source, f"cell {index} (hidden tests {name})")
    for q in questions.values():
        if not q.hidden_cells:
            raise ValueError(f"question {q.name} has no '# HIDDEN TESTS {q.name}' cell")
    return Exercise(Path(path) if path else None, nb, questions)


def read_exercise(path: str | Path) -> Exercise:
    """Read and parse a master notebook."""
    path = Path(path)
    if path.suffix != ".ipynb":
        raise ValueError(f"expected a .ipynb master notebook, got {path}")
    return parse_exercise(nbformat.read(path, as_version=4), path)


def _solution_blocks(source: str, where: str) -> list[tuple[int, int, str]]:
    """(begin line, end line, indent) of every solution block; raises on unbalanced markers."""
    blocks, start, indent = [], None, ""
    for number, line in enumerate(source.splitlines()):
        if BEGIN.match(line):
            if start is not None:
                raise ValueError(f"{where}, line {number + 1}: BEGIN SOLUTION inside another solution block")
            start, indent = number, BEGIN.match(line).group("indent")
        elif END.match(line):
            if start is None:
                raise ValueError(f"{where}, line {number + 1}: END SOLUTION without BEGIN SOLUTION")
            blocks.append((start, number, indent))
            start = None
    if start is not None:
        raise ValueError(f"{where}, line {start + 1}: BEGIN SOLUTION is never closed by END SOLUTION")
    return blocks


def _strip_solutions(source: str, placeholder: str, where: str) -> tuple[str, list[str]]:
    """Replace each solution block by ``indent + placeholder``; also return the removed lines."""
    lines = source.splitlines()
    removed: list[str] = []
    out: list[str] = []
    cursor = 0
    for begin, end, indent in _solution_blocks(source, where):
        out.extend(lines[cursor:begin])
        out.append(indent + placeholder)
        removed.extend(lines[begin + 1:end])
        cursor = end + 1
    out.extend(lines[cursor:])
    return "\n".join(out), removed


def make_student_copy(exercise: Exercise) -> nbformat.NotebookNode:
    """The student version of a master: no solutions, no hidden tests, no outputs.

    Raises ``SolutionLeakError`` if, after the transformation, any marker or any solution line
    (that does not also appear outside the solutions in the master) is still present.
    """
    master = exercise.notebook
    student = nbformat.v4.new_notebook()
    student.metadata = {k: copy.deepcopy(master.metadata[k]) for k in ("kernelspec", "language_info") if k in master.metadata}
    hidden = {i for q in exercise.questions.values() for i in q.hidden_cells}
    solution_lines: list[str] = []
    kept_lines: set[str] = set()  # master lines outside solutions: template text may repeat them
    for index, cell in enumerate(master.cells):
        if index in hidden:
            continue
        role_info = _cell_role(cell, index)
        question = role_info[1] if role_info else "this question"
        if cell.cell_type == "code":
            placeholder = f'raise NotImplementedError("{question}: replace this line with your code")'
        else:
            placeholder = "*Your answer here.*"
        source, removed = _strip_solutions(cell.source, placeholder, f"cell {index}")
        solution_lines.extend(removed)
        kept_lines.update(line.strip() for line in source.splitlines())
        metadata = {}
        if "tags" in cell.metadata:
            metadata["tags"] = list(cell.metadata["tags"])
        if "lecture_grade" in cell.metadata:
            metadata["lecture_grade"] = copy.deepcopy(cell.metadata["lecture_grade"])
        if cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(source, metadata=metadata)
        elif cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(source, metadata=metadata)
        else:
            new = nbformat.v4.new_raw_cell(source, metadata=metadata)
        student.cells.append(new)
    _assert_no_leak(student, solution_lines, kept_lines, exercise.path)
    return student


def _assert_no_leak(student, solution_lines: list[str], kept_lines: set[str], path) -> None:
    """Independent re-check of the finished student copy (fail loudly, never write a leak)."""
    name = path.name if path else "notebook"
    text_by_cell = []
    for index, cell in enumerate(student.cells):
        if cell.get("outputs"):
            raise SolutionLeakError(f"{name}: student cell {index} still has outputs")
        if _cell_role(cell, index) and _cell_role(cell, index)[0] == "hidden":
            raise SolutionLeakError(f"{name}: student cell {index} is a hidden-test cell")
        text_by_cell.append(cell.source)
        for marker in _FORBIDDEN:
            if marker in cell.source:
                raise SolutionLeakError(f"{name}: student cell {index} still contains {marker!r}")
    student_lines = {line.strip() for text in text_by_cell for line in text.splitlines()}
    for line in solution_lines:
        stripped = line.strip()
        if len(stripped) >= _MIN_LEAK_CHARS and stripped not in kept_lines and stripped in student_lines:
            raise SolutionLeakError(f"{name}: solution line survived in the student copy: {stripped!r}")


def write_student_copy(master_path: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir/<master name>.ipynb`` (the student copy); returns its path.

    Nothing is written when the copy would leak a solution (``SolutionLeakError``).
    """
    master_path, out_dir = Path(master_path), Path(out_dir)
    student = make_student_copy(read_exercise(master_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / master_path.name
    if target.resolve() == master_path.resolve():
        raise ValueError(f"the student copy would overwrite the master {master_path}; choose another folder")
    tmp = target.with_suffix(".ipynb.tmp")
    nbformat.write(student, tmp)
    tmp.replace(target)
    return target
