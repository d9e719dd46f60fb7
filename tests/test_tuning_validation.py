"""Nested blocked cross-validation (lecture_lib.tuning.validation): the same folds, picks and
scores as scikit-learn's nested CV, no test sample used for tuning, and tuning on the test
block (the leaky version) flatters the estimate."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from lecture_lib.data.tabular import correlated_sequence
from lecture_lib.tuning import nested_blocked_cv, nested_vs_leaky, sklearn_score_fn

NEIGHBOURS = (1, 3, 5, 9, 15, 25)
CANDIDATES = [{"n_neighbors": k} for k in NEIGHBOURS]


def test_nested_equals_sklearn_gridsearch_inside_cross_val_score():
    x, y = correlated_sequence(n_samples=300, block_length=30, signal=0.3, seed=0)
    result = nested_blocked_cv(sklearn_score_fn(KNeighborsClassifier, x, y), CANDIDATES, len(y), n_folds=5, n_inner=4)
    search = GridSearchCV(KNeighborsClassifier(), {"n_neighbors": list(NEIGHBOURS)}, cv=KFold(4))
    reference = cross_val_score(search, x, y, cv=KFold(5))
    np.testing.assert_allclose(result.test_scores, reference)
    assert result.score == pytest.approx(reference.mean())
    for k, (train, _) in enumerate(KFold(5).split(x)):  # the same pick as GridSearchCV on that training block
        best = search.fit(x[train], y[train]).best_params_["n_neighbors"]
        assert NEIGHBOURS[result.chosen[k]] == best
        np.testing.assert_allclose(result.val_scores[k], search.cv_results_["mean_test_score"])


@pytest.mark.parametrize("gap", [0, 3])
def test_no_test_sample_takes_part_in_tuning(gap):
    calls = []

    def recording(params, train_idx, eval_idx):
        calls.append((params["c"], train_idx.copy(), eval_idx.copy()))
        return -abs(params["c"] - 1) + 0.001 * eval_idx.mean()  # candidate 1 is best

    result = nested_blocked_cv(recording, [{"c": c} for c in range(3)], 103, n_folds=4, n_inner=3, gap=gap)
    assert len(calls) == 4 * (3 * 3 + 1) and result.chosen.tolist() == [1, 1, 1, 1]
    per_fold = 3 * 3 + 1
    for k, (outer_train, test) in enumerate(result.folds):
        selection, final = calls[k * per_fold:(k + 1) * per_fold - 1], calls[(k + 1) * per_fold - 1]
        for _, train_idx, val_idx in selection:
            assert np.intersect1d(train_idx, test).size == 0 and np.intersect1d(val_idx, test).size == 0
            assert np.isin(val_idx, outer_train).all() and np.intersect1d(train_idx, val_idx).size == 0
            assert np.abs(train_idx[:, None] - val_idx[None, :]).min() > gap  # the gap around each validation block
        np.testing.assert_array_equal(final[2], test)
        np.testing.assert_array_equal(final[1], outer_train)
        if gap:
            assert np.abs(outer_train[:, None] - test[None, :]).min() > gap


def _projection_score_fn(x, y):
    """A nearest-centroid classifier on the projection ``x @ w`` (``params["w"]``): fast enough
    to try many candidates."""

    def score(params, train_idx, eval_idx):
        z = x @ params["w"]
        centroids = np.array([z[train_idx][y[train_idx] == c].mean() for c in (0, 1)])
        predicted = np.abs(z[eval_idx, None] - centroids[None]).argmin(axis=1)
        return float((predicted == y[eval_idx]).mean())

    return score


def test_leaky_tuning_on_the_test_block_is_optimistic():
    """Labels that carry no signal: every honest estimate is chance (0.5). Picking the best of
    30 candidates on the test block itself reports more; the nested estimate does not."""
    candidates = [{"w": w} for w in np.random.default_rng(0).normal(size=(30, 5))]
    nested, leaky = [], []
    for seed in range(6):
        x, y = correlated_sequence(n_samples=1000, block_length=10, signal=0.0, seed=seed)
        score_fn = _projection_score_fn(x, y)
        out = nested_vs_leaky(score_fn, candidates, 1000, n_folds=5, n_inner=3)
        folds = list(KFold(5).split(x))
        reference = np.array([[score_fn(c, train, test) for c in candidates] for train, test in folds])
        np.testing.assert_allclose(out["test_scores"], reference)
        np.testing.assert_allclose(out["leaky"], reference.max(axis=1))  # the best candidate on each test block
        assert np.all(out["leaky"] >= out["nested"])
        assert out["optimism"] == pytest.approx(out["leaky_mean"] - out["nested_mean"])
        nested.append(out["nested_mean"])
        leaky.append(out["leaky_mean"])
    assert np.mean(leaky) - np.mean(nested) > 0.1  # measured: 0.67 against 0.46 over these 6 series
    assert abs(np.mean(nested) - 0.5) < 0.1


def test_holdout_scores_the_picks_on_unseen_data_and_bad_input():
    x, y = correlated_sequence(n_samples=400, block_length=40, signal=0.5, seed=1)
    fn = sklearn_score_fn(KNeighborsClassifier, x, y)
    out = nested_vs_leaky(fn, CANDIDATES[:3], 300, n_folds=3, n_inner=3, holdout_idx=np.arange(300, 400))
    for name in ("nested", "leaky"):
        expected = [fn(CANDIDATES[c], train, np.arange(300, 400))
                    for c, (train, _) in zip(out[f"{name}_choice"], KFold(3).split(np.zeros(300)))]
        np.testing.assert_allclose(out[f"{name}_holdout"], expected)
    with pytest.raises(ValueError, match=r"holdout_idx must lie outside the cross-validated samples 0..299, got index 10"):
        nested_vs_leaky(fn, CANDIDATES[:2], 300, n_folds=3, holdout_idx=np.arange(10, 20))
    with pytest.raises(ValueError, match="candidates must be a non-empty list of parameter dicts"):
        nested_blocked_cv(fn, [], 300)
    with pytest.raises(ValueError, match="direction must be 'maximize' or 'minimize', got 'best'"):
        nested_blocked_cv(fn, CANDIDATES, 300, direction="best")
    with pytest.raises(ValueError, match="n_folds must be an int >= 2, got 1"):
        nested_blocked_cv(fn, CANDIDATES, 300, n_folds=1)
