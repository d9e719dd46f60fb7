"""Blocked cross-validation, for data whose neighbours are alike (time series, video frames).

The lecture: "Normal Cross-Validation: use a blocked design for testing" and "you can use a
validation set(s) for hyperparameter evaluation/tuning *within each training block*".

    folds = blocked_kfold(1000, 5)            # [(train_idx, test_idx)] with contiguous test blocks
"""

from __future__ import annotations

import numpy as np

from lecture_lib.tuning.spaces import _check_count

__all__ = ["blocked_kfold"]


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
