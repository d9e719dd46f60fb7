"""lecture_lib.tuning: distributions (KS test), searches on known objectives, the divergence
guard, edge warnings, blocked folds against scikit-learn, hypergradients against finite
differences (Optuna: tests/test_tuning_optuna.py)."""

import itertools
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402
from torch import nn  # noqa: E402

from lecture_lib.data.tabular import TensorBatches, correlated_sequence, load_digits_split  # noqa: E402
from lecture_lib.train import fit  # noqa: E402
from lecture_lib.tuning import (  # noqa: E402
    DivergenceGuard, Diverged, LogUniform, SearchResult, Stage, TwoLayerNetObjective, Uniform, blocked_kfold,
    coarse_to_fine, edge_warnings, grid_search, hypergradient, is_diverging, log_grid, log_uniform,
    random_vs_grid, plot_best_so_far, plot_search_2d, random_search,
    tune_by_hypergradient, unrolled_val_loss)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


class Counting:
    """An objective that records every call: -(log10 lr + 4)^2 - (log10 reg + 2)^2, best at (1e-4, 1e-2)."""

    def __init__(self):
        self.calls = []

    def __call__(self, params):
        self.calls.append(dict(params))
        return -(math.log10(params["lr"]) + 4) ** 2 - (math.log10(params["reg"]) + 2) ** 2


# --- sampling -----------------------------------------------------------------------------------


def test_log_uniform_log10_is_uniform_ks_test():
    samples = log_uniform(1e-6, 1e-3, size=4000, rng=0)
    assert samples.shape == (4000,) and samples.min() >= 1e-6 and samples.max() <= 1e-3
    assert stats.kstest(np.log10(samples), stats.uniform(loc=-6, scale=3).cdf).pvalue > 0.01
    # and it is *not* uniform in the values themselves: most mass sits in the lowest decades
    assert stats.kstest(samples, stats.uniform(loc=1e-6, scale=1e-3 - 1e-6).cdf).pvalue < 1e-6
    assert isinstance(log_uniform(1e-5, 1e5, rng=1), float)
    np.testing.assert_array_equal(log_uniform(1, 10, size=(2, 3), rng=3), log_uniform(1, 10, size=(2, 3), rng=3))


def test_log_grid_geometric():
    np.testing.assert_allclose(log_grid(1e-6, 1e-3, 4), [1e-6, 1e-5, 1e-4, 1e-3])


@pytest.mark.parametrize("low, high, match", [
    (0.0, 1.0, r"log-scale bounds must be > 0, got low=0, high=1"),
    (-1e-3, 1.0, r"log-scale bounds must be > 0, got low=-0.001"),
    (1e-3, 1e-6, r"low must be <= high, got low=0.001 > high=1e-06"),
    (float("nan"), 1.0, r"low must be finite, got nan"),
])
def test_log_uniform_bad_bounds(low, high, match):
    with pytest.raises(ValueError, match=match):
        log_uniform(low, high)
    with pytest.raises(ValueError, match=match):
        LogUniform(low, high)


def test_bad_types_and_counts():
    with pytest.raises(TypeError, match="low must be a real number, got str"):
        log_uniform("1e-3", 1.0)
    with pytest.raises(TypeError, match="rng must be None, an int seed or a numpy Generator, got str"):
        log_uniform(1e-3, 1.0, rng="seed")
    with pytest.raises(ValueError, match="n_trials must be an int >= 1, got 0"):
        random_search(Counting(), {"lr": LogUniform(1e-5, 1e-3)}, 0)
    with pytest.raises(ValueError, match="space must be a non-empty dict"):
        random_search(Counting(), {}, 3)
    with pytest.raises(ValueError, match=r"space\['lr'\] must list at least one value, got an empty list"):
        grid_search(Counting(), {"lr": []})
    with pytest.raises(TypeError, match="grid_search needs a list of values for 'lr', got LogUniform"):
        grid_search(Counting(), {"lr": LogUniform(1e-5, 1e-3)})
    with pytest.raises(ValueError, match="direction must be 'maximize' or 'minimize', got 'max'"):
        grid_search(Counting(), {"lr": [1e-3], "reg": [1.0]}, direction="max")
    with pytest.raises(ValueError, match=r"shrink must be in \(0, 1\], got 0"):
        Stage(5, shrink=0)
    with pytest.raises(ValueError, match="stages must hold at least one Stage"):
        coarse_to_fine(Counting(), {"lr": LogUniform(1e-5, 1e-3)}, [])


# --- searches -----------------------------------------------------------------------------------


def test_grid_search_tries_every_combination_once():
    objective = Counting()
    lrs, regs = [1e-5, 1e-4, 1e-3], [1e-3, 1e-2, 1e-1, 1.0]
    result = grid_search(objective, {"lr": lrs, "reg": regs, "epochs": 2})
    assert len(objective.calls) == 12 and len(result.trials) == 12
    assert [(c["lr"], c["reg"]) for c in objective.calls] == list(itertools.product(lrs, regs))
    assert all(c["epochs"] == 2 for c in objective.calls)  # scalars are fixed values
    assert result.best["params"]["lr"] == 1e-4 and result.best["params"]["reg"] == 1e-2
    assert result.best["score"] == pytest.approx(0.0)
    assert result.warnings == []


def test_random_search_call_count_ranges_and_best():
    objective = Counting()
    space = {"lr": LogUniform(1e-6, 1e-2), "reg": Uniform(0.001, 0.5), "act": ["relu", "tanh"]}
    result = random_search(objective, space, 25, rng=np.random.default_rng(0))
    assert len(objective.calls) == 25
    assert all(1e-6 <= c["lr"] <= 1e-2 and 0.001 <= c["reg"] <= 0.5 and c["act"] in ("relu", "tanh")
               for c in objective.calls)
    scores = [Counting()(c) for c in objective.calls]  # recompute independently
    assert result.best["params"] == objective.calls[int(np.argmax(scores))]
    np.testing.assert_allclose(result.best_so_far(), np.maximum.accumulate(scores))
    assert [t["score"] for t in result.top(3)] == sorted(scores, reverse=True)[:3]
    again = random_search(Counting(), space, 25, rng=0)
    assert [t["params"] for t in again.trials] == [t["params"] for t in random_search(Counting(), space, 25, rng=0).trials]


def test_minimize_direction():
    result = grid_search(lambda p: (p["x"] - 2) ** 2, {"x": [0, 1, 2, 3, 4]}, direction="minimize")
    assert result.best["params"]["x"] == 2
    np.testing.assert_allclose(result.best_so_far(), [4, 1, 0, 0, 0])


def test_coarse_to_fine_narrows_around_the_optimum():
    objective = Counting()
    space = {"lr": LogUniform(1e-7, 1.0), "reg": LogUniform(1e-5, 1e3)}
    stages = [Stage(40, fixed={"epochs": 1}), Stage(30, fixed={"epochs": 5}), Stage(30, fixed={"epochs": 5})]
    result = coarse_to_fine(objective, space, stages, rng=1)
    assert len(objective.calls) == 100 and [t["stage"] for t in result.trials] == [0] * 40 + [1] * 30 + [2] * 30
    assert all(c["epochs"] == 1 for c in objective.calls[:40]) and all(c["epochs"] == 5 for c in objective.calls[40:])
    widths = [math.log10(s["lr"].high / s["lr"].low) for s in result.spaces]
    assert widths[0] == pytest.approx(7) and all(b <= a / 3 + 1e-9 for a, b in zip(widths, widths[1:]))
    final = result.spaces[-1]
    for name, optimum in (("lr", -4.0), ("reg", -2.0)):  # each range moved onto the optimum
        lo, hi = math.log10(final[name].low), math.log10(final[name].high)
        assert lo - 0.3 < optimum < hi + 0.3 and abs((lo + hi) / 2 - optimum) < 0.5
    stage0_best = max(t["score"] for t in result.trials if t["stage"] == 0)
    assert result.best["stage"] == 2 and result.best["score"] > stage0_best
    assert result.best["score"] > -0.05  # within ~0.2 decades of (1e-4, 1e-2)
    # every trial of a later stage lies inside that stage's narrowed range
    assert all(final["lr"].low <= t["params"]["lr"] <= final["lr"].high for t in result.trials if t["stage"] == 2)


def test_random_beats_grid_with_one_important_parameter():
    out = random_vs_grid(n_per_axis=3, repeats=2000, rng=0)
    assert out["grid"].shape == out["random"].shape == (2000,)
    # grid by hand for one problem: 9 points, x in {1/6, 1/2, 5/6}
    c = out["center"][0]
    xs = np.array([1, 3, 5]) / 6
    by_hand = max(np.exp(-0.5 * ((x - c) / 0.05) ** 2) + 0.01 * y for x in xs for y in xs)
    assert out["grid"][0] == pytest.approx(by_hand)
    assert out["random"].mean() > out["grid"].mean() + 0.1
    assert np.median(out["random"]) > np.median(out["grid"])


# --- divergence guard -------------------------------------------------------------------------


def test_is_diverging_rule():
    assert not is_diverging(2.9, 1.0) and is_diverging(3.1, 1.0)
    assert is_diverging(float("nan"), 1.0) and is_diverging(float("inf"), 1.0)


def _tiny_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return TensorBatches(x, y, 8, shuffle=False)


def test_guard_stops_a_diverging_trial_early():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    guard = DivergenceGuard(factor=3.0)
    history = fit(model, _tiny_problem(), epochs=20, optimizer=torch.optim.SGD(model.parameters(), lr=30.0),
                  callbacks=[guard], device="cpu", progress=False)
    losses = history.step_loss
    assert len(losses) < 20 * 8 / 4  # stopped within the first few epochs, not after 160 steps
    assert history.stop_reason.startswith("diverged: loss")
    first = next(i for i, c in enumerate(losses) if is_diverging(c, losses[0]))
    assert first == len(losses) - 1  # it stopped at the first step above 3x, not later
    assert guard.diverged_at == len(losses)


def test_guard_does_not_stop_a_healthy_run_and_raise_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    history = fit(model, _tiny_problem(), epochs=3, lr=1e-2, callbacks=[DivergenceGuard()], device="cpu",
                  progress=False)
    assert len(history.step_loss) == 24 and history.stop_reason == ""
    with pytest.raises(Diverged, match=r"diverged: loss .* > 3 x initial"):
        fit(model, _tiny_problem(), epochs=5, optimizer=torch.optim.SGD(model.parameters(), lr=50.0),
            callbacks=[DivergenceGuard(action="raise")], device="cpu", progress=False)
    with pytest.raises(ValueError, match="action must be 'stop' or 'raise', got 'halt'"):
        DivergenceGuard(action="halt")


def test_search_records_diverged_trials_and_lecture_objective():
    objective = TwoLayerNetObjective(n_samples=400, epochs=2)
    result = grid_search(objective, {"lr": [1e-2, 10.0], "reg": [1e-4]})
    ok, bad = result.trials
    assert ok["status"] == "ok" and 0.5 < ok["score"] <= 1.0
    assert bad["status"] == "diverged" and math.isnan(bad["score"]) and "3 x initial" in bad["reason"]
    assert bad["seconds"] < ok["seconds"] * 2  # stopped early rather than training on
    assert result.best is ok
    assert any("1 of 2 trials diverged" in w for w in result.warnings)
    # reported per-epoch values are recorded as the trial's curve
    assert [step for step, _ in ok["curve"]] == [1, 2] and ok["curve"][-1][1] == pytest.approx(ok["score"])
    everything_fails = random_search(lambda p: float("nan"), {"lr": LogUniform(1e-3, 1e-1)}, 3, rng=0)
    assert everything_fails.best is None and "every trial diverged" in everything_fails.warnings[0]


def test_lecture_objective_on_cifar10_when_present(tmp_path, monkeypatch):
    """The CIFAR-10 variant on a local fake in the on-disk format: 3072 raw pixel values minus the
    mean image, 1000 validation images, labels that a 2-layer net can learn."""
    import functools

    import lecture_lib.data.classification as classification
    from fake_data import write_fake_cifar

    arrays = write_fake_cifar(tmp_path, per_batch=300, n_test=50, learnable=True)
    # the fake's MD5 sums are not CIFAR-10's: skip that check, the format is the real one
    monkeypatch.setattr(classification, "load_cifar10_split",
                        functools.partial(classification.load_cifar10_split, verify_checksums=False))
    objective = TwoLayerNetObjective(epochs=3, cifar10_root=str(tmp_path), n_samples=400)
    split = objective.data()
    assert split.x_train.shape == (400, 3072) and split.x_val.shape == (1000, 3072) and split.x_test.shape == (50, 3072)
    # test image 0: its pickled R, G, B planes as (row, column, channel) pixels minus the training mean
    raw = classification.load_cifar10_split(tmp_path, n_train=400, seed=0)
    expected = arrays["test_batch"][0][0].reshape(3, 32, 32).transpose(1, 2, 0).reshape(-1) - raw.x_train.numpy().mean(0)
    np.testing.assert_allclose(split.x_test[0].numpy(), expected, atol=1e-3)
    assert split.y_test.tolist() == arrays["test_batch"][1]
    assert abs(float(split.x_train.mean())) < 1e-3
    assert objective({"lr": 1e-5, "reg": 1e-3}) > 0.9  # chance would be 0.1
    assert objective.data() is split  # cached per process
    assert TwoLayerNetObjective(n_samples=400).data().x_train.shape[1] == 64  # digits stay the default


# --- edge warning -------------------------------------------------------------------------------


def test_edge_warning_fires_at_the_upper_edge():
    result = random_search(lambda p: math.log10(p["lr"]), {"lr": LogUniform(1e-6, 1e-3)}, 60, rng=0)
    assert len(result.warnings) == 1
    assert result.warnings[0] == (f"best lr {result.best['params']['lr']:.1e} is within 10% of the upper edge "
                                  "1e-03 of its range")
    inside = random_search(Counting(), {"lr": LogUniform(1e-6, 1e-2), "reg": LogUniform(1e-4, 1.0)}, 60, rng=0)
    assert inside.warnings == []


def test_edge_warning_lower_edge_linear_and_grid():
    assert edge_warnings({"p": 0.01}, {"p": Uniform(0.0, 1.0)}) == [
        "best p 0.01 is within 10% of the lower edge 0 of its range"]
    assert edge_warnings({"lr": 2.5e-4}, {"lr": LogUniform(2.5e-4, 1e-1)}) == [
        "best lr 2.5e-04 is within 10% of the lower edge 2.5e-04 of its range"]
    assert edge_warnings({"n": 64}, {"n": [16, 32, 64]}) == ["best n 64 is the largest value tried; try larger ones"]
    assert edge_warnings({"n": 32}, {"n": [16, 32, 64]}) == []


# --- blocked k-fold -----------------------------------------------------------------------------


@pytest.mark.parametrize("n_samples, n_folds", [(10, 2), (23, 5), (7, 7), (100, 3)])
def test_blocked_kfold_equals_unshuffled_sklearn_kfold(n_samples, n_folds):
    folds = blocked_kfold(n_samples, n_folds)
    reference = list(KFold(n_splits=n_folds, shuffle=False).split(np.zeros(n_samples)))
    assert len(folds) == n_folds
    for (train, val), (ref_train, ref_val) in zip(folds, reference):
        np.testing.assert_array_equal(train, ref_train)
        np.testing.assert_array_equal(val, ref_val)
        assert np.all(np.diff(val) == 1)  # contiguous
        assert np.intersect1d(train, val).size == 0  # disjoint
        np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n_samples))
    np.testing.assert_array_equal(np.sort(np.concatenate([v for _, v in folds])), np.arange(n_samples))


def test_blocked_kfold_gap_and_errors():
    train, val = blocked_kfold(20, 4, gap=2)[1]
    np.testing.assert_array_equal(val, np.arange(5, 10))
    np.testing.assert_array_equal(train, np.concatenate([np.arange(0, 3), np.arange(12, 20)]))
    with pytest.raises(ValueError, match="n_folds must be an int >= 2, got 1"):
        blocked_kfold(10, 1)
    with pytest.raises(ValueError, match="n_folds must be <= n_samples, got n_folds=11 > n_samples=10"):
        blocked_kfold(10, 11)
    with pytest.raises(ValueError, match="gap must be an int >= 0, got -1"):
        blocked_kfold(10, 2, gap=-1)


def test_blocked_folds_are_honest_on_correlated_data():
    from sklearn.neighbors import KNeighborsClassifier

    x, y = correlated_sequence(n_samples=600, block_length=50, signal=0.0, seed=0)  # labels carry no signal

    def cv_accuracy(folds):
        return np.mean([KNeighborsClassifier(1).fit(x[tr], y[tr]).score(x[va], y[va]) for tr, va in folds])

    shuffled = list(KFold(5, shuffle=True, random_state=0).split(x))
    assert cv_accuracy(shuffled) > 0.9  # neighbours in time leak the label
    assert abs(cv_accuracy(blocked_kfold(len(y), 5)) - 0.5) < 0.15  # chance, as it should be


# --- hypergradients ---------------------------------------------------------------------------


def _unroll_problem(steps=6):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=g, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    batches = [(x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]) for i in range(steps)]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    return model, batches, (x[48:], y[48:])


@pytest.mark.parametrize("checkpoint_every", [None, 1, 2, 4])
def test_hypergradient_matches_finite_differences(checkpoint_every):
    model, batches, val = _unroll_problem()
    before = [p.detach().clone() for p in model.parameters()]
    h = (-0.5, -2.0)
    res = hypergradient(model, batches, val, *h, checkpoint_every=checkpoint_every)
    eps = 1e-5
    fd = []
    for i in range(2):
        plus, minus = list(h), list(h)
        plus[i] += eps
        minus[i] -= eps
        fd.append((unrolled_val_loss(model, batches, val, *plus) - unrolled_val_loss(model, batches, val, *minus))
                  / (2 * eps))
    torch.testing.assert_close(res.grad, torch.tensor(fd, dtype=torch.float64), rtol=1e-5, atol=1e-8)
    assert res.val_loss == pytest.approx(unrolled_val_loss(model, batches, val, *h), rel=1e-12)
    for w, p in zip(before, model.parameters()):  # the model itself is untouched
        torch.testing.assert_close(w, p.detach())


def test_checkpointing_stores_less_and_tuning_lowers_val_loss():
    model, batches, val = _unroll_problem(steps=6)
    full = hypergradient(model, batches, val, -1.0, -3.0)
    every_3 = hypergradient(model, batches, val, -1.0, -3.0, checkpoint_every=3)
    assert every_3.stored_bytes < full.stored_bytes
    path = tune_by_hypergradient(model, batches, val, -2.0, -3.0, hyper_steps=8, hyper_lr=1.0)
    assert len(path) == 9 and path[-1]["val_loss"] < path[0]["val_loss"]
    with pytest.raises(ValueError, match=r"train_batches must hold at least one \(inputs, targets\) batch, got 0"):
        hypergradient(model, [], val, -1.0, -3.0)


# --- data and plots -----------------------------------------------------------------------------


def test_digits_split_standardized_with_train_statistics():
    split = load_digits_split(val_fraction=0.2, test_fraction=0.2, seed=0)
    assert len(split.y_train) + len(split.y_val) + len(split.y_test) == 1797
    assert split.num_features == 64 and split.num_classes == 10
    np.testing.assert_allclose(split.x_train.mean(0).numpy(), 0, atol=1e-4)
    with pytest.raises(ValueError, match="val_fraction \\+ test_fraction must be < 1, got 1"):
        load_digits_split(0.5, 0.5)


def test_search_plots():
    result = random_search(Counting(), {"lr": LogUniform(1e-6, 1e-2), "reg": LogUniform(1e-4, 1.0)}, 10, rng=0)
    result.trials[0]["status"], result.trials[0]["score"] = "diverged", float("nan")
    fig, (a, b, c) = plt.subplots(1, 3)
    ax = plot_search_2d(result, "lr", "reg", ax=a)
    assert ax is a and ax.get_xscale() == "log" and ax.get_yscale() == "log" and ax.get_xlabel() == "lr"
    # the trials span several decades: no labels on minor ticks (they overlapped), legend under the axes
    from matplotlib.ticker import NullFormatter
    assert isinstance(ax.xaxis.get_minor_formatter(), NullFormatter)
    a.figure.canvas.draw()
    legend_box, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend_box.y1 < axes_box.y0
    narrow = random_search(Counting(), {"lr": LogUniform(2e-4, 9e-4), "reg": LogUniform(1e-4, 1.0)}, 10, rng=0)
    ax = plot_search_2d(narrow, "lr", "reg", ax=b)  # less than a decade: only 2 and 5 x 10^k get labels
    b.figure.canvas.draw()
    labels = {t.get_text() for t in ax.xaxis.get_minorticklabels() if t.get_text()}
    assert labels == {"$2\\times10^{-4}$", "$5\\times10^{-4}$"}
    assert plot_best_so_far(result, ax=c).get_ylabel() == "best score"
    assert isinstance(result, SearchResult)
