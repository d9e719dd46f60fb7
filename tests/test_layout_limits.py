"""One concept, one screen (STYLE.md, issue 17): no module of lecture_lib over ~400 lines and no
function over ~60, scanned with ``ast`` over the whole package.

A module may be longer where one concept really needs it: its docstring then has a paragraph
that starts with "Length:" and says why (``LONG_MODULES`` names them, so that a new long module
is a decision, not an accident). Modules that other engineers are still editing are skipped
through ``IN_PROGRESS``, an allowlist that shrinks as their work lands.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "lecture_lib"
MODULE_LINES = 400
FUNCTION_LINES = 60

# over MODULE_LINES on purpose; the module's docstring says why in a "Length:" paragraph
LONG_MODULES = {
    "metrics/detection.py",  # AP, mAP and COCO's twelve statistics, equal to pycocotools: one evaluation
    "models/faster_rcnn.py",  # the RPN and the chapter's recipe for the scenes (the recipe moves out next)
    "models/mask_rcnn.py",  # what Mask R-CNN adds: targets, loss, two pasting conventions, the recipe
    "models/roi_heads.py",  # the one RoI head the R-CNN family shares
}

# Modules other engineers are editing now (the lead removes an entry when its owner has finished,
# then the scan's findings there get fixed). What the scan found in them when this list was
# written is in the issue 17 refactor report.
IN_PROGRESS: set[str] = set()  # none now: every module of lecture_lib is scanned

MODULES = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py"))


def function_lengths(source: str) -> dict[str, int]:
    """Lines of every function and method (nested ones too) from its first statement after the
    docstring to its end: ``{"Class.method": lines}``."""
    lengths = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = child.body
                if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                        and isinstance(body[0].value.value, str):
                    body = body[1:]  # the docstring does not count
                lengths[prefix + child.name] = child.end_lineno - body[0].lineno + 1
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return lengths


def violations(path: Path) -> list[str]:
    source = path.read_text()
    found = []
    lines = len(source.splitlines())
    name = path.relative_to(ROOT).as_posix()
    if lines > MODULE_LINES:
        docstring = ast.get_docstring(ast.parse(source)) or ""
        if name not in LONG_MODULES or "\nLength:" not in "\n" + docstring:
            found.append(f"{name}: {lines} lines")
    found += [f"{name}:{function} ({n} lines)" for function, n in function_lengths(source).items()
              if n > FUNCTION_LINES]
    return found


def test_the_scan_finds_what_it_should(tmp_path):
    long_function = "def f():\n    '''doc'''\n" + "    x = 1\n" * 61 + "\n\nclass A:\n    def g(self):\n        pass\n"
    assert function_lengths(long_function) == {"f": 61, "A.g": 1}
    (tmp_path / "lecture_lib").mkdir()
    module = tmp_path / "lecture_lib" / "m.py"
    module.write_text('"""doc"""\n' + "x = 1\n" * 400)
    global ROOT
    root, ROOT = ROOT, tmp_path / "lecture_lib"
    try:
        assert violations(module) == ["m.py: 401 lines"]
    finally:
        ROOT = root


def test_allowlists_name_existing_modules():
    assert LONG_MODULES <= set(MODULES) and IN_PROGRESS <= set(MODULES)


@pytest.mark.parametrize("name", [pytest.param(m, marks=pytest.mark.skip(reason="in progress by another helper"))
                                  if m in IN_PROGRESS else m for m in MODULES])
def test_one_concept_one_screen(name):
    assert violations(ROOT / name) == []
