"""Hyperparameter optimization, one file per section of the chapter:

| file | holds |
| --- | --- |
| ``spaces.py`` | search spaces: ``LogUniform``, ``Uniform``, ``log_uniform``, ``log_grid`` |
| ``results.py`` | ``SearchResult``, ``edge_warnings`` ("this best result is worrying") |
| ``search.py`` | ``grid_search``, ``random_search``, ``coarse_to_fine`` (``Stage``), random vs grid |
| ``objective.py`` | ``TwoLayerNetObjective``: the lecture's 2-layer net as an objective |
| ``validation.py`` | ``blocked_kfold`` and nested blocked cross-validation |
| ``hypergradient.py`` | gradients of the validation loss w.r.t. lr and weight decay |
| ``optuna.py`` | the same search on Optuna, its study in storage opened by URL (``make_storage``) |
| ``parallel.py`` | many workers on one study: processes (``parallel_optuna_search``) or machines |
| ``postgres.py`` | a local PostgreSQL server for the course (``make db``) |
| ``cli.py`` | ``lecture-tune``: create a study, run a worker, start the database or the dashboard |
| ``plots.py`` | ``plot_search_2d``, ``plot_best_so_far`` |

The divergence guard (``DivergenceGuard``, ``is_diverging``, ``Diverged``) and ``ReportCallback``
live with the training loop in ``lecture_lib.train.callbacks``; they are re-exported here.
``from lecture_lib.tuning import X`` works for every public name.
"""

from lecture_lib.train.callbacks import DivergenceGuard, Diverged, ReportCallback, is_diverging
from lecture_lib.tuning.hypergradient import (HypergradientResult, hypergradient, tune_by_hypergradient,
                                              unrolled_val_loss)
from lecture_lib.tuning.objective import TwoLayerNetObjective
from lecture_lib.tuning.optuna import (DEFAULT_STORAGE, load_study, make_storage, optuna_search, run_trials,
                                      study_to_result)
from lecture_lib.tuning.parallel import CHAPTER_SPACE, create_search_study, parallel_optuna_search, run_worker
from lecture_lib.tuning.plots import plot_best_so_far, plot_search_2d
from lecture_lib.tuning.results import SearchResult, edge_warnings
from lecture_lib.tuning.search import Stage, bergstra_objective, coarse_to_fine, grid_search, random_search, random_vs_grid
from lecture_lib.tuning.spaces import LogUniform, Uniform, log_grid, log_uniform
from lecture_lib.tuning.validation import (NestedCVResult, blocked_kfold, nested_blocked_cv, nested_vs_leaky,
                                           sklearn_score_fn)

__all__ = [
    "LogUniform", "Uniform", "log_uniform", "log_grid", "SearchResult", "Stage", "Diverged",
    "random_search", "grid_search", "coarse_to_fine", "edge_warnings", "blocked_kfold",
    "bergstra_objective", "random_vs_grid",
    "is_diverging", "DivergenceGuard", "ReportCallback", "TwoLayerNetObjective",
    "HypergradientResult", "hypergradient", "unrolled_val_loss", "tune_by_hypergradient",
    "make_storage", "optuna_search", "parallel_optuna_search", "study_to_result",
    "plot_search_2d", "plot_best_so_far",
    "NestedCVResult", "nested_blocked_cv", "nested_vs_leaky", "sklearn_score_fn",
    "DEFAULT_STORAGE", "load_study", "run_trials", "CHAPTER_SPACE", "create_search_study", "run_worker",
]
