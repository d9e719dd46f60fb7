"""lecture_lib.monitors against NumPy, scikit-learn and values computed by hand."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from lecture_lib import lecture  # noqa: E402
from lecture_lib.monitors import (  # noqa: E402
    RATIO_TARGET, RATIO_TOO_HIGH, RATIO_TOO_LOW, ActivationStats, GradientStats, UpdateRatio, WeightTrajectory,
    accuracy_gap, activation_stats, diagnose_learning_rate, feature_profile, gradient_stats, loss_grid, pca_2d,
    plot_accuracy, plot_activation_histograms, plot_activation_stats, plot_feature_profile, plot_gradient_histograms,
    plot_gradient_stats, plot_loss, plot_spatial_profile, plot_trajectory, plot_update_ratio, ratio_verdict,
    smooth, spatial_profile, update_ratio)
from lecture_lib.train import Callback, History, fit  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(3, 6, generator=g)[y] * 2 + torch.randn(n, 6, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=16), x, y


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))


# --- pure functions ---------------------------------------------------------------------------


def test_smooth_is_debiased_ema_by_hand():
    values = [4.0, 2.0, 3.0]
    beta = 0.5
    s1 = 0.5 * 4.0
    s2 = 0.5 * s1 + 0.5 * 2.0
    s3 = 0.5 * s2 + 0.5 * 3.0
    np.testing.assert_allclose(smooth(values, beta), [s1 / 0.5, s2 / 0.75, s3 / 0.875])
    np.testing.assert_allclose(smooth(values, 0.0), values)
    assert smooth([], 0.9).shape == (0,)
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\), got 1.0"):
        smooth(values, 1.0)


def test_activation_stats_equal_numpy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 5, 4, 4, generator=g)
    relu = torch.relu(x)
    relu[:, 2] = 0  # unit 2 never fires: one dead unit of 5
    a = relu.numpy()
    s = activation_stats(relu)
    assert s["mean"] == pytest.approx(a.mean(), rel=1e-5)
    assert s["std"] == pytest.approx(a.std(), rel=1e-5)
    assert s["zero"] == pytest.approx((a == 0).mean())
    assert s["dead"] == pytest.approx(1 / 5)
    assert np.isnan(s["saturated"])
    t = torch.tanh(3 * x)
    s = activation_stats(t, bounds=(-1.0, 1.0), margin=0.01)
    assert s["saturated"] == pytest.approx((np.abs(t.numpy()) >= 0.98).mean())


def test_activation_stats_as_the_lecture_lists_them_equal_numpy_and_torch():
    # magnitude, centre (mean or median), breadth (sd or quartiles), spatial / feature-rank variations
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 4, 5, 7, generator=g) * torch.tensor([0.5, 1.0, 2.0, 4.0])[None, :, None, None] + 0.3
    x[:, :, 0, :] *= 3  # a bright first row: variation over positions
    a = x.numpy().astype(np.float64)
    s = activation_stats(x)
    assert s["magnitude"] == pytest.approx(np.sqrt(np.mean(a ** 2)), rel=1e-6)
    assert s["median"] == pytest.approx(np.median(a), rel=1e-6)
    q = torch.quantile(x.flatten().double(), torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert (s["q1"], s["q3"]) == pytest.approx((np.percentile(a, 25), np.percentile(a, 75)), rel=1e-6)
    assert (s["q1"], s["q3"]) == pytest.approx(tuple(q.tolist()), rel=1e-6)
    per_unit = np.sqrt((a ** 2).mean(axis=(0, 2, 3)))
    assert s["feature_spread"] == pytest.approx(per_unit.std() / per_unit.mean(), rel=1e-6)
    per_position = np.sqrt((a ** 2).mean(axis=(0, 1)))
    assert s["spatial_spread"] == pytest.approx(per_position.std() / per_position.mean(), rel=1e-6)
    assert np.isnan(activation_stats(x[:, :, 0, 0])["spatial_spread"])  # [N, C]: no positions


def test_feature_and_spatial_profiles_equal_numpy():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(8, 5, 3, 4, generator=g) * torch.arange(1.0, 6.0)[None, :, None, None]
    x[:, 1] = 0  # a dead unit ends the ranking with a 0
    a = x.numpy().astype(np.float64)
    np.testing.assert_allclose(feature_profile(x), np.sort(np.sqrt((a ** 2).mean(axis=(0, 2, 3))))[::-1], rtol=1e-6)
    assert feature_profile(x)[-1] == 0 and np.all(np.diff(feature_profile(x)) <= 0)
    np.testing.assert_allclose(spatial_profile(x), np.sqrt((a ** 2).mean(axis=(0, 1))), rtol=1e-6)
    w = torch.randn(6, 3, 3, 3, generator=g)  # a conv weight gradient: units are dim 0, positions the kernel
    np.testing.assert_allclose(feature_profile(w, unit_dim=0),
                               np.sort(np.linalg.norm(w.numpy().reshape(6, -1), axis=1) / np.sqrt(27))[::-1],
                               rtol=1e-6)
    assert spatial_profile(w).shape == (3, 3)
    with pytest.raises(ValueError, match=r"x must have at least 2 dimensions \(\[N, C, \*\]\), got shape \[5\]"):
        feature_profile(torch.zeros(5))
    with pytest.raises(ValueError, match=r"unit_dim must index a dimension of x \(shape \[2, 3\]\), got 2"):
        feature_profile(torch.zeros(2, 3), unit_dim=2)
    with pytest.raises(ValueError, match=r"x must have spatial dimensions .*got shape \[2, 3\]"):
        spatial_profile(torch.zeros(2, 3))


def test_activation_stats_bad_and_empty():
    with pytest.raises(ValueError, match=r"activations must have shape \[N, C, \*\], got \[5\]"):
        activation_stats(torch.zeros(5))
    assert np.isnan(activation_stats(torch.zeros(0, 3))["mean"])


def test_gradient_stats_equal_numpy():
    g = torch.tensor([[1e-3, -2e-2], [0.0, 5e-1]])
    s = gradient_stats(g)
    a = g.numpy()
    assert s["mean"] == pytest.approx(a.mean()) and s["std"] == pytest.approx(a.std())
    assert s["norm"] == pytest.approx(np.linalg.norm(a)) and s["abs_max"] == pytest.approx(0.5)
    assert s["hist"].sum() == 3  # the exact zero has no log10
    bins = np.linspace(-12, 2, 57)
    expected = np.histogram(np.log10([1e-3, 2e-2, 5e-1]), bins)[0]
    np.testing.assert_array_equal(s["hist"], expected)


def test_gradient_stats_as_the_lecture_lists_them():
    g = torch.Generator().manual_seed(5)
    grad = torch.randn(4, 3, 3, 3, generator=g) * torch.tensor([1.0, 2.0, 3.0, 10.0])[:, None, None, None]
    a = grad.numpy().astype(np.float64)
    s = gradient_stats(grad)
    assert s["magnitude"] == pytest.approx(np.linalg.norm(a) / np.sqrt(a.size), rel=1e-6)
    assert (s["median"], s["q1"], s["q3"]) == pytest.approx(
        (np.median(a), np.percentile(a, 25), np.percentile(a, 75)), rel=1e-6)
    rows = np.sqrt((a ** 2).reshape(4, -1).mean(axis=1))
    assert s["feature_spread"] == pytest.approx(rows.std() / rows.mean(), rel=1e-6)
    positions = np.sqrt((a ** 2).mean(axis=(0, 1)))
    assert s["spatial_spread"] == pytest.approx(positions.std() / positions.mean(), rel=1e-6)
    bias = gradient_stats(torch.tensor([1.0, -1.0]))
    assert np.isnan(bias["feature_spread"]) and np.isnan(bias["spatial_spread"]) and bias["magnitude"] == 1.0
    assert np.isnan(gradient_stats(torch.zeros(0))["median"])


def test_one_update_ratio_rule_from_the_lecture():
    # "want ~1e-3"; the example 0.0002 / 0.02 = 0.01: "0.01 is probably too high"
    example = lecture.UPDATE_RATIO_EXAMPLE
    assert RATIO_TARGET == lecture.UPDATE_RATIO_TARGET == 1e-3
    assert RATIO_TOO_HIGH == example["ratio"] == 1e-2
    assert RATIO_TOO_LOW == pytest.approx(1e-4) and RATIO_TARGET / RATIO_TOO_LOW == pytest.approx(
        RATIO_TOO_HIGH / RATIO_TARGET)
    assert ratio_verdict(example["update"] / example["weight"]) == "too high"
    assert ratio_verdict(RATIO_TARGET) == "good"
    assert ratio_verdict(RATIO_TOO_LOW) == "good" and ratio_verdict(0.99e-4) == "too low"
    assert ratio_verdict(0.99e-2) == "good" and ratio_verdict(float("inf")) == "too high"
    assert ratio_verdict(np.float32(5e-3)) == "good"
    with pytest.raises(TypeError, match="ratio must be a real number, got str"):
        ratio_verdict("0.01")
    with pytest.raises(ValueError, match=r"ratio must be a number >= 0, got nan"):
        ratio_verdict(float("nan"))


def test_update_ratio_by_hand():
    before = torch.tensor([3.0, 4.0], dtype=torch.float64)
    after = torch.tensor([3.0, 4.005], dtype=torch.float64)
    assert update_ratio(before, after) == pytest.approx(0.005 / 5.0)
    with pytest.raises(ValueError, match=r"same shape, got \[2\] and \[3\]"):
        update_ratio(before, torch.zeros(3))


def test_pca_2d_equals_sklearn():
    rng = np.random.default_rng(0)
    points = np.cumsum(rng.normal(size=(30, 12)) * [5, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], axis=0)
    coords, components, mean, explained = pca_2d(points)
    ref = PCA(n_components=2).fit(points)
    np.testing.assert_allclose(mean, ref.mean_)
    np.testing.assert_allclose(explained, ref.explained_variance_ratio_, rtol=1e-8)
    # sign of a principal direction is arbitrary: compare up to sign per component
    signs = np.sign(np.sum(components * ref.components_, axis=1))
    np.testing.assert_allclose(components * signs[:, None], ref.components_, atol=1e-8)
    np.testing.assert_allclose(coords * signs, ref.transform(points), atol=1e-8)
    with pytest.raises(ValueError, match=r"points must have shape \[T, P\] with T >= 2, got \[1, 4\]"):
        pca_2d(np.zeros((1, 4)))


def test_loss_grid_equals_direct_evaluation_and_restores_weights():
    _, x, y = data()
    model = net()
    saved = [p.detach().clone() for p in model.parameters()]
    p = sum(q.numel() for q in model.parameters())
    rng = np.random.default_rng(1)
    origin = nn.utils.parameters_to_vector(model.parameters()).detach().double().numpy()
    components = rng.normal(size=(2, p))
    alphas, betas = np.array([-0.1, 0.0, 0.2]), np.array([0.0, 0.3])
    grid = loss_grid(model, F.cross_entropy, x, y, origin, components, alphas, betas)
    assert grid.shape == (2, 3)
    for j, b in enumerate(betas):
        for i, a in enumerate(alphas):
            probe = net()
            nn.utils.vector_to_parameters(torch.as_tensor(origin + a * components[0] + b * components[1],
                                                          dtype=torch.float32), probe.parameters())
            assert grid[j, i] == pytest.approx(F.cross_entropy(probe(x), y).item(), rel=1e-5)
    for w, q in zip(saved, model.parameters()):
        torch.testing.assert_close(w, q.detach())
    with pytest.raises(ValueError, match=rf"origin must have shape \[{p}\] and components \[2, {p}\]"):
        loss_grid(model, F.cross_entropy, x, y, origin[:3], components, alphas, betas)


def test_diagnose_learning_rate():
    falling = list(np.linspace(2.0, 0.5, 50))
    assert diagnose_learning_rate(falling, 1e-3) == "good"
    assert diagnose_learning_rate(falling, 1e-5) == "too low"
    assert diagnose_learning_rate(falling, 5e-2) == "too high"
    assert diagnose_learning_rate(falling, 1e-2) == "too high"  # the lecture's example, "probably too high"
    assert diagnose_learning_rate(falling[::-1], 1e-3) == "too high"
    assert diagnose_learning_rate([1.0, float("nan")], 1e-3) == "too high"
    with pytest.raises(ValueError, match="step_loss must hold at least one value, got 0"):
        diagnose_learning_rate([], 1e-3)


def test_accuracy_gap():
    h = History(epochs=[{"train_acc": 0.9, "val_acc": 0.8}, {"train_acc": 1.0, "val_acc": 0.7}])
    np.testing.assert_allclose(accuracy_gap(h), [0.1, 0.3])


# --- callbacks in fit -------------------------------------------------------------------------


def test_update_ratio_callback_plain_sgd_equals_lr_grad_over_weight():
    lr = 0.05

    class Expected(Callback):  # lr * ||g|| / ||w||, from the gradient before the step
        def __init__(self):
            self.values = []

        def on_after_backward(self, s):
            w, g = s.model[0].weight, s.model[0].weight.grad
            self.values.append(lr * g.norm().item() / w.norm().item())

    loader, _, _ = data()
    model = net()
    ratio, expected = UpdateRatio(every=1), Expected()
    fit(model, loader, epochs=2, optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        callbacks=[expected, ratio], device="cpu", progress=False)
    assert list(ratio.ratios) == ["0.weight", "2.weight", "4.weight"]  # weights only by default
    np.testing.assert_allclose(ratio.ratios["0.weight"], expected.values, rtol=1e-4)
    assert ratio.steps == list(range(8))
    assert ratio.median() > 0


def test_activation_stats_callback_matches_direct_forward():
    loader, x, y = data()
    monitor = ActivationStats(every=2)
    model = net()
    captured = {}

    class Capture(Callback):  # the activations the monitor should have seen, computed directly
        def on_batch_start(self, s):
            if s.step % 2 == 0:
                with torch.no_grad():
                    captured.setdefault("tanh", []).append(torch.tanh(s.model[0](s.inputs)))

    fit(model, loader, epochs=1, lr=1e-2, callbacks=[Capture(), monitor], val_loader=loader, device="cpu",
        progress=False)
    assert list(monitor.stats) == ["1", "3"] and monitor.steps == [0, 2]
    assert len(monitor.stats["1"]["std"]) == 2  # validation passes are not recorded
    for k, act in enumerate(captured["tanh"]):
        a = act.numpy()
        assert monitor.stats["1"]["std"][k] == pytest.approx(a.std(), rel=1e-5)
        assert monitor.stats["1"]["saturated"][k] == pytest.approx((np.abs(a) >= 0.98).mean())
        np.testing.assert_array_equal(monitor.hists["1"][k], np.histogram(np.clip(a, -1, 1), monitor.bins)[0])
    assert not model[1]._forward_hooks  # hooks removed at the end
    with pytest.raises(ValueError, match=r"layers must name modules of the model .*got unknown \['nope'\]"):
        fit(net(), loader, epochs=1, callbacks=[ActivationStats(layers=["nope"])], device="cpu", progress=False)


def test_activation_and_gradient_profiles_recorded_for_a_conv_net():
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(16, 1, 6, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
    acts, grads = ActivationStats(every=1), GradientStats(every=1)
    seen = {}

    class Capture(Callback):
        def on_batch_start(self, s):
            with torch.no_grad():
                seen.setdefault("relu", []).append(torch.relu(s.model[0](s.inputs)))

        def on_after_backward(self, s):
            seen.setdefault("grad", []).append(s.model[0].weight.grad.clone())

    fit(model, DataLoader(TensorDataset(x, y), batch_size=8), epochs=1, lr=0.1, callbacks=[Capture(), acts, grads],
        device="cpu", progress=False)
    assert list(acts.spatial) == ["1"]  # the ReLU has positions; nothing else is a nonlinearity
    for k in range(2):
        np.testing.assert_allclose(acts.profiles["1"][k], feature_profile(seen["relu"][k]), rtol=1e-6)
        np.testing.assert_allclose(acts.spatial["1"][k], spatial_profile(seen["relu"][k]), rtol=1e-6)
        assert acts.stats["1"]["median"][k] == pytest.approx(float(np.median(seen["relu"][k].numpy())), abs=1e-7)
        np.testing.assert_allclose(grads.profiles["0.weight"][k], feature_profile(seen["grad"][k], unit_dim=0),
                                   rtol=1e-6)
    fig, axes = plt.subplots(1, 4)
    assert plot_spatial_profile(acts, "1", ax=axes[0]).images[0].get_array().shape == (6, 6)
    with pytest.raises(ValueError, match=r"name must be a layer with spatial dimensions, one of \['1'\], got '3'"):
        plot_spatial_profile(acts, "3", ax=axes[0])
    ax = plot_feature_profile(acts, ax=axes[1])
    assert len(ax.lines) == 1 and ax.get_yscale() == "log"
    assert len(plot_feature_profile(grads, ax=axes[2]).lines) == 2  # conv and linear weights
    ax = plot_activation_stats(acts, "median", ax=axes[3])
    assert len(ax.collections) == 1  # the quartile band around the median


def test_gradient_stats_callback_and_trajectory():
    loader, _, _ = data()
    grads, traj = GradientStats(every=2), WeightTrajectory(every=1)
    model = net()

    class Norm(Callback):
        def __init__(self):
            self.norms = []

        def on_after_backward(self, s):
            if s.step % 2 == 0:
                self.norms.append(s.model[2].weight.grad.norm().item())

    norm = Norm()
    fit(model, loader, epochs=2, callbacks=[norm, grads, traj], device="cpu", progress=False)
    assert grads.steps == [0, 2, 4, 6]
    np.testing.assert_allclose(grads.stats["2.weight"]["norm"], norm.norms, rtol=1e-5)
    assert traj.points.shape == (9, sum(p.numel() for p in model.parameters()))
    np.testing.assert_allclose(traj.points[-1], nn.utils.parameters_to_vector(model.parameters()).detach().numpy(),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="every must be an int >= 1, got 0"):
        GradientStats(every=0)


# --- plots --------------------------------------------------------------------------------------


def test_plots_draw_on_given_axes():
    loader, x, y = data()
    acts, grads, ratio, traj = ActivationStats(every=1), GradientStats(), UpdateRatio(), WeightTrajectory()
    model = net()
    history = fit(model, loader, epochs=3, lr=1e-2, val_loader=loader, callbacks=[acts, grads, ratio, traj],
                  device="cpu", progress=False)
    fig, axes = plt.subplots(2, 4)
    axes = axes.ravel()
    assert plot_loss(history, ax=axes[0]) is axes[0] and len(axes[0].lines) == 2
    assert plot_accuracy(history, ax=axes[1]).get_title() == "Accuracy: train vs validation"
    ax = plot_activation_stats(acts, "saturated", ax=axes[2])  # only the bounded (tanh) layer saturates
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["1 (Tanh)"] and ax.get_ylim()[0] == 0
    ax = plot_activation_stats(acts, "dead", ax=axes[7])  # only the ReLU layer can die
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["3 (ReLU)"] and ax.get_title() == "Dead ReLU units"
    assert ax.get_ylim() == (0.0, max(0.05, 1.15 * max(acts.stats["3"]["dead"])))
    assert plot_activation_histograms(acts, ax=axes[3]).get_xlabel() == "activation value"
    ax = plot_gradient_histograms(grads, "0.weight", ax=axes[4])
    g = model[0].weight.grad.abs()  # the last step's gradient, recorded too (every=1); 48 entries
    log_g = torch.log10(g[g > 0])
    low, high = ax.get_ylim()  # y range shrunk to the bins that hold >= 0.1 % of the gradients, not -12..2
    assert ax.images and -12.0 < low <= log_g.min().item() and log_g.max().item() <= high < 2.0
    ax = plot_update_ratio(ratio, ax=axes[5])
    assert ax.get_yscale() == "log" and len(ax.lines) == 4  # the lecture's target, then one per layer
    band = ax.patches[0].get_y(), ax.patches[0].get_y() + ax.patches[0].get_height()
    assert band == pytest.approx((1e-4, 1e-2))  # the course's one rule, drawn in data coordinates
    assert ax.lines[0].get_ydata()[0] == pytest.approx(1e-3)  # "want ~1e-3"
    assert [t.get_text() for t in ax.get_legend().get_texts()][2:] == list(ratio.ratios)
    coords, comps, mean, explained = pca_2d(traj.points)
    alphas = np.linspace(coords[:, 0].min() - 1, coords[:, 0].max() + 1, 5)
    betas = np.linspace(coords[:, 1].min() - 1, coords[:, 1].max() + 1, 4)
    grid = loss_grid(model, F.cross_entropy, x, y, mean, comps, alphas, betas)
    ax = plot_trajectory(coords, alphas, betas, grid, explained, ax=axes[6])
    assert ax.get_xlabel().startswith("PC 1") and ax.collections
    assert fig.axes[-1].get_ylabel() == "training loss"  # the contours' colorbar
    assert [t.get_text() for t in plot_loss(history, ax=axes[0]).get_legend().get_texts()][0] == "raw (per step)"
    assert plot_loss([1.0, 0.5], ax=None).get_ylabel() == "loss"
    with pytest.raises(ValueError, match="stat must be one of"):
        plot_activation_stats(acts, "mode")
    with pytest.raises(ValueError, match="name must be one of"):
        plot_gradient_histograms(grads, "missing")
    fig, ax = plt.subplots()
    plot_gradient_stats(grads, "magnitude", ax=ax)
    assert ax.get_yscale() == "log" and len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[0].get_ydata(), grads.stats["0.weight"]["magnitude"])
    with pytest.raises(ValueError, match="stat must be one of"):
        plot_gradient_stats(grads, "hist", ax=ax)


def test_trajectory_labels_tell_close_contour_levels_apart():
    # a nearly flat landscape (0.358 to 0.360): "%.2g" would label every contour "0.36"
    alphas, betas = np.linspace(-1, 1, 9), np.linspace(-1, 1, 7)
    grid = 0.358 + 0.002 * (alphas[None, :] + 1) / 2 + 0 * betas[:, None]
    fig, ax = plt.subplots()
    plot_trajectory(np.array([[-0.5, 0.0], [0.5, 0.1]]), alphas, betas, grid, ax=ax)
    labels = [t.get_text() for t in ax.texts]
    assert len(set(labels)) >= 5  # distinct texts (one level may be labelled twice); "%.2g" gives 1
    assert fig.axes[-1].get_ylabel() == "training loss"
    plt.close(fig)
