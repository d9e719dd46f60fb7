"""Blocked cross-validation, for data whose neighbours are alike (time series, video frames).

The lecture: "Normal Cross-Validation: use a blocked design for testing" and "you can use a
validation set(s) for hyperparameter evaluation/tuning *within each training block*".

    folds = blocked_kfold(1000, 5)            # [(train_idx, test_idx)] with contiguous test blocks
    result = nested_blocked_cv(score_fn, candidates, 1000)   # tuned on validation blocks inside
    numbers = nested_vs_leaky(score_fn, candidates, 1000)   # ... against tuning on the test block
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from lecture_lib.tuning.results import _check_direction
from lecture_lib.tuning.spaces import _check_count

__all__ = ["blocked_kfold", "nested_blocked_cv", "nested_vs_leaky", "NestedCVResult", "sklearn_score_fn"]


def _check_gap(gap) -> int:
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise ValueError(f"gap must be an int >= 0, got {gap!r}")
    return int(gap)


def blocked_kfold(n_samples: int, n_folds: int, gap: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold cross-validation with contiguous validation blocks (no shuffling).

    When samples are ordered in time and neighbours are correlated, random folds put a
    validation sample's near-duplicate neighbours into training and overestimate accuracy.
    Blocks keep validation data away from training data; ``gap`` drops that many training
    samples on each side of the validation block to cut the remaining correlation.

    Returns:
        list of ``n_folds`` pairs ``(train_idx, val_idx)`` (np.ndarray int64); the first
        ``n_samples % n_folds`` blocks are one sample longer (as ``sklearn.model_selection.KFold``).
    """
    n_samples = _check_count("n_samples", n_samples)
    n_folds = _check_count("n_folds", n_folds, minimum=2)
    if n_folds > n_samples:
        raise ValueError(f"n_folds must be <= n_samples, got n_folds={n_folds} > n_samples={n_samples}")
    gap = _check_gap(gap)
    sizes = np.full(n_folds, n_samples // n_folds)
    sizes[: n_samples % n_folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    index = np.arange(n_samples)
    folds = []
    for k in range(n_folds):
        start, stop = bounds[k], bounds[k + 1]
        train = index[(index < start - gap) | (index >= stop + gap)]
        folds.append((train, index[start:stop]))
    return folds


# --- tuning inside each training block --------------------------------------------------------------


ScoreFn = Callable[[Mapping[str, Any], np.ndarray, np.ndarray], float]


def sklearn_score_fn(make_estimator: Callable[..., Any], x: np.ndarray, y: np.ndarray) -> ScoreFn:
    """A ``score_fn`` for scikit-learn estimators:
    ``make_estimator(**params).fit(x[train_idx], y[train_idx]).score(x[eval_idx], y[eval_idx])``."""

    def score(params, train_idx, eval_idx):
        return float(make_estimator(**params).fit(x[train_idx], y[train_idx]).score(x[eval_idx], y[eval_idx]))

    return score


@dataclass
class NestedCVResult:
    """Nested blocked cross-validation, fold by fold (K outer folds, C candidates).

    Attributes:
        candidates: the C parameter dicts that were tried.
        val_scores (np.ndarray[K, C]): each candidate's mean score over the validation blocks cut
            out of fold k's training block (the test block never seen).
        chosen (np.ndarray[K] int): index of the candidate picked on those validation blocks.
        test_scores (np.ndarray[K]): the chosen candidate, retrained on the whole training block,
            scored on the test block: fold k's honest estimate.
        folds: the outer ``(train_idx, test_idx)`` pairs.
    """

    candidates: list[dict]
    val_scores: np.ndarray
    chosen: np.ndarray
    test_scores: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    direction: str = "maximize"

    @property
    def score(self) -> float:
        """The estimate to report: mean of ``test_scores``."""
        return float(np.mean(self.test_scores))


def _check_candidates(candidates) -> list[dict]:
    candidates = list(candidates)
    if not candidates or not all(isinstance(c, Mapping) for c in candidates):
        raise ValueError(f"candidates must be a non-empty list of parameter dicts, got {candidates!r:.80}")
    return [dict(c) for c in candidates]


def _pick(scores: np.ndarray, direction: str) -> int:
    return int(np.argmax(scores) if direction == "maximize" else np.argmin(scores))


def nested_blocked_cv(score_fn: ScoreFn, candidates: Sequence[Mapping[str, Any]], n_samples: int,
                      n_folds: int = 5, n_inner: int = 4, gap: int = 0,
                      direction: str = "maximize") -> NestedCVResult:
    """Blocked K-fold for testing, with the tuning done *within each training block*.

    For each outer fold k (``blocked_kfold(n_samples, n_folds, gap)``): cut ``n_inner``
    contiguous validation blocks out of the training block (``blocked_kfold`` over the training
    indices, same ``gap``), score every candidate on them (mean over the inner folds), pick the
    best, retrain it on the whole training block and score it once on test block k. No sample of
    test block k takes part in choosing its candidate. With ``gap=0`` the folds are exactly
    scikit-learn's ``cross_val_score(GridSearchCV(est, grid, cv=KFold(n_inner)), X, y, cv=KFold(n_folds))``.

    Args:
        score_fn: ``score_fn(params, train_idx, eval_idx) -> float``: train with ``params`` on
            the samples ``train_idx``, return the score on ``eval_idx`` (higher is better unless
            ``direction="minimize"``); e.g. ``sklearn_score_fn(make_estimator, X, y)``.
        candidates: the parameter dicts to choose from (e.g. ``[{"n_neighbors": k} for k in ...]``).
        n_samples: samples ``0 .. n_samples - 1``, in time order.

    Returns:
        NestedCVResult (``.score``: the honest estimate; ``.chosen``: the pick of each fold).

    Example::

        x, y = correlated_sequence(n_samples=600, block_length=50, signal=0.3)
        score_fn = sklearn_score_fn(KNeighborsClassifier, x, y)
        result = nested_blocked_cv(score_fn, [{"n_neighbors": k} for k in (1, 5, 25)], len(y))
        result.score, result.chosen
    """
    candidates, direction = _check_candidates(candidates), _check_direction(direction)
    folds = blocked_kfold(n_samples, n_folds, gap)
    val_scores = np.empty((len(folds), len(candidates)))
    chosen = np.empty(len(folds), dtype=np.int64)
    test_scores = np.empty(len(folds))
    for k, (train, test) in enumerate(folds):
        inner = [(train[tr], train[va]) for tr, va in blocked_kfold(len(train), n_inner, gap)]
        for c, params in enumerate(candidates):
            val_scores[k, c] = np.mean([score_fn(params, tr, va) for tr, va in inner])
        chosen[k] = _pick(val_scores[k], direction)
        test_scores[k] = score_fn(candidates[chosen[k]], train, test)
    return NestedCVResult(candidates, val_scores, chosen, test_scores, folds, direction)


def nested_vs_leaky(score_fn: ScoreFn, candidates: Sequence[Mapping[str, Any]], n_samples: int,
                    n_folds: int = 5, n_inner: int = 4, gap: int = 0, direction: str = "maximize",
                    holdout_idx: np.ndarray | None = None) -> dict[str, Any]:
    """How much tuning on the test block flatters the estimate, fold by fold.

    The *leaky* procedure tunes on the test block itself: it scores every candidate on test
    block k (trained on the whole training block) and reports the best of those scores. The
    *nested* procedure (``nested_blocked_cv``) tunes on validation blocks inside the training
    block. With ``holdout_idx`` (samples outside ``0 .. n_samples - 1``, e.g. the series'
    future), each fold's two picks are retrained on the training block and scored there too:
    what they are really worth.

    Returns:
        dict of numbers to plot (K folds, C candidates): ``"fold"`` (np.ndarray[K], 1-based),
        ``"nested"`` and ``"leaky"`` (np.ndarray[K]: the estimates each procedure reports),
        ``"test_scores"`` (np.ndarray[K, C]: every candidate on every test block),
        ``"val_scores"`` (np.ndarray[K, C]), ``"nested_choice"``, ``"leaky_choice"``
        (np.ndarray[K] candidate indices), ``"nested_mean"``, ``"leaky_mean"``, ``"optimism"``
        (leaky_mean - nested_mean, floats), ``"candidates"``; with ``holdout_idx`` also
        ``"nested_holdout"``, ``"leaky_holdout"`` (np.ndarray[K]).
    """
    nested = nested_blocked_cv(score_fn, candidates, n_samples, n_folds, n_inner, gap, direction)
    test = np.array([[score_fn(params, train, held) for params in nested.candidates]
                     for train, held in nested.folds])
    leaky_choice = np.array([_pick(row, direction) for row in test], dtype=np.int64)
    out = {
        "fold": np.arange(1, len(nested.folds) + 1), "candidates": nested.candidates,
        "nested": nested.test_scores, "leaky": test[np.arange(len(test)), leaky_choice],
        "test_scores": test, "val_scores": nested.val_scores,
        "nested_choice": nested.chosen, "leaky_choice": leaky_choice,
    }
    out["nested_mean"], out["leaky_mean"] = float(out["nested"].mean()), float(out["leaky"].mean())
    out["optimism"] = out["leaky_mean"] - out["nested_mean"]
    if holdout_idx is not None:
        holdout_idx = _check_holdout(holdout_idx, n_samples)
        for name, choice in (("nested", nested.chosen), ("leaky", leaky_choice)):
            out[f"{name}_holdout"] = np.array([score_fn(nested.candidates[c], train, holdout_idx)
                                               for c, (train, _) in zip(choice, nested.folds)])
    return out


def _check_holdout(holdout_idx, n_samples: int) -> np.ndarray:
    holdout_idx = np.asarray(holdout_idx)
    if holdout_idx.ndim != 1 or holdout_idx.size == 0 or not np.issubdtype(holdout_idx.dtype, np.integer):
        raise ValueError(f"holdout_idx must be a non-empty 1-D array of indices, got shape {holdout_idx.shape} "
                         f"of {holdout_idx.dtype}")
    if holdout_idx.min() < n_samples:
        raise ValueError(f"holdout_idx must lie outside the cross-validated samples 0..{n_samples - 1}, "
                         f"got index {holdout_idx.min()}")
    return holdout_idx
