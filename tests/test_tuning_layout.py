"""lecture_lib.tuning is a package whose files follow the chapter, and every name the single
module ``tuning.py`` exported still imports from ``lecture_lib.tuning``; the training loop's
files stay on one screen too (no module over ~400 lines, no function over ~60)."""

import ast
from pathlib import Path

import pytest

import lecture_lib.tuning as tuning
from lecture_lib.train import callbacks as train_callbacks

ROOT = Path(__file__).resolve().parent.parent / "lecture_lib"

# the public names of the 1 043-line lecture_lib/tuning.py, before it became a package
SINGLE_MODULE_NAMES = [
    "LogUniform", "Uniform", "log_uniform", "log_grid", "SearchResult", "Stage", "Diverged",
    "random_search", "grid_search", "coarse_to_fine", "edge_warnings", "blocked_kfold",
    "bergstra_objective", "random_vs_grid",
    "is_diverging", "DivergenceGuard", "ReportCallback", "TwoLayerNetObjective",
    "HypergradientResult", "hypergradient", "unrolled_val_loss", "tune_by_hypergradient",
    "make_storage", "optuna_search", "parallel_optuna_search", "study_to_result",
    "plot_search_2d", "plot_best_so_far",
]

OWN_FILES = sorted((ROOT / "tuning").glob("*.py")) + [
    ROOT / "train" / name for name in ("loop.py", "state.py", "evaluate.py", "checkpoint.py", "progress.py",
                                       "callbacks.py")]


@pytest.mark.parametrize("name", SINGLE_MODULE_NAMES)
def test_every_public_name_imports_from_lecture_lib_tuning(name):
    namespace = {}
    exec(f"from lecture_lib.tuning import {name}", namespace)  # the statement notebooks use
    assert namespace[name] is getattr(tuning, name) and name in tuning.__all__


def test_divergence_guard_lives_with_the_training_loop():
    for name in ("DivergenceGuard", "ReportCallback", "Diverged", "is_diverging"):
        assert getattr(tuning, name) is getattr(train_callbacks, name)
        assert getattr(tuning, name).__module__ == "lecture_lib.train.callbacks"


def test_all_lists_only_names_that_exist():
    assert all(hasattr(tuning, name) for name in tuning.__all__)


def _long_functions(path: Path, limit: int) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body_start = node.body[0]
            if isinstance(body_start, ast.Expr) and isinstance(getattr(body_start, "value", None), ast.Constant):
                body_start = node.body[1] if len(node.body) > 1 else body_start  # docstrings do not count
            length = node.end_lineno - body_start.lineno + 1
            if length > limit:
                out.append(f"{path.name}:{node.name} ({length} lines)")
    return out


@pytest.mark.parametrize("path", OWN_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_one_concept_one_screen(path):
    assert len(path.read_text().splitlines()) <= 400, f"{path} is over 400 lines"
    assert _long_functions(path, 60) == []
