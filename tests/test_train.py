"""lecture_lib.train.fit: metrics against sklearn / torch.nn.functional, hook order, SGD by hand,
stopping, schedulers, clipping, and checkpoint/resume equal to one uninterrupted run."""

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lecture_lib.train import Callback, History, TrainState, accuracy, close_transient, evaluate, fit
from lecture_lib.train.loop import StepRecipe, train_one_epoch


def blobs(n=96, d=5, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    centers = torch.randn(classes, d, generator=g) * 3
    return centers[y] + torch.randn(n, d, generator=g), y


def loaders(batch_size=16, shuffle=False, seed=0):
    x, y = blobs(seed=seed)
    train = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=batch_size, shuffle=shuffle)
    val = DataLoader(TensorDataset(x[64:], y[64:]), batch_size=batch_size)
    return train, val, (x[64:], y[64:])


def mlp(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def _log(self, name, state):
        self.calls.append((name, state.epoch, state.batch_index))

    def on_fit_start(self, s): self._log("fit_start", s)
    def on_epoch_start(self, s): self._log("epoch_start", s)
    def on_batch_start(self, s): self._log("batch_start", s)
    def on_after_backward(self, s): self._log("after_backward", s)
    def on_step_end(self, s): self._log("step_end", s)
    def on_epoch_end(self, s): self._log("epoch_end", s)
    def on_fit_end(self, s): self._log("fit_end", s)


# --- metric -----------------------------------------------------------------------------------


def test_accuracy_equals_sklearn_classification_and_segmentation():
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(50, 4, generator=g), torch.randint(0, 4, (50,), generator=g)
    assert accuracy(logits, y) == pytest.approx(accuracy_score(y, logits.argmax(1)))
    seg, mask = torch.randn(2, 3, 5, 7, generator=g), torch.randint(0, 3, (2, 5, 7), generator=g)
    assert accuracy(seg, mask) == pytest.approx(accuracy_score(mask.flatten(), seg.argmax(1).flatten()))
    mask[0, 0] = 255  # VOC's "void" label is left out
    keep = mask.flatten() != 255
    assert accuracy(seg, mask, ignore_index=255) == pytest.approx(
        accuracy_score(mask.flatten()[keep], seg.argmax(1).flatten()[keep]))


def test_accuracy_bad_shapes_and_empty():
    with pytest.raises(ValueError, match=r"outputs must have shape \[N, C, \*S\].*got outputs \[4, 3\] and targets \[5\]"):
        accuracy(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    assert accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)) != accuracy(
        torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))  # nan


# --- fit ----------------------------------------------------------------------------------------


def test_fit_learns_and_val_metrics_equal_references():
    train, val, (xv, yv) = loaders()
    model = mlp()
    history = fit(model, train, epochs=5, lr=1e-2, val_loader=val, device="cpu", progress=False)
    assert isinstance(history, History) and len(history) == 5
    assert len(history.step_loss) == 5 * 4
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert set(history.epochs[0]) >= {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}
    model.eval()
    with torch.no_grad():
        logits = model(xv)
    # the last validation happened with the final weights: independent references agree
    assert history["val_loss"][-1] == pytest.approx(F.cross_entropy(logits, yv).item(), rel=1e-5)
    assert history["val_acc"][-1] == pytest.approx(accuracy_score(yv, logits.argmax(1)))
    assert history["val_acc"][-1] > 0.9
    assert history.seconds > 0


def test_progress_bar_over_epochs_stays_with_the_last_epoch(capsys):
    """The per-epoch bars vanish; the bar over the epochs stays as the run's record (in a
    notebook and in the static book built from it), ending with the final validation accuracy."""
    train, val, (xv, yv) = loaders()
    model = mlp()
    fit(model, train, epochs=3, lr=1e-2, val_loader=val, device="cpu", progress=True)
    shown = [line.strip() for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.strip()]
    model.eval()
    with torch.no_grad():
        acc = accuracy_score(yv, model(xv).argmax(1))
    assert shown[-1].startswith("fit: 100%") and "3/3" in shown[-1], shown[-3:]
    assert f"val_acc={acc:.4g}" in shown[-1] and "train_loss=" in shown[-1]
    assert any(line.startswith("epoch 3/3") for line in shown)


def test_transient_notebook_bar_takes_no_room_once_closed():
    """tqdm.notebook hides a closed leave=False bar with visibility: hidden (its 32 px stay, in the
    saved notebook and the static book); close_transient also sets display: none."""
    from tqdm.notebook import tqdm as notebook_tqdm

    plain = notebook_tqdm(total=2, leave=False)
    plain.update(2)
    plain.close()
    assert plain.container.layout.visibility == "hidden" and plain.container.layout.display is None
    bar = notebook_tqdm(total=2, leave=False)
    bar.update(2)
    close_transient(bar)
    assert bar.container.layout.display == "none"
    console = __import__("tqdm").tqdm(total=2, leave=False, disable=True)
    close_transient(console)  # a console bar has no container: it just closes


def test_fit_segmentation_per_pixel_logits():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 2, 6, 6, generator=g)
    masks = (images[:, 0] > 0).long()  # the class is readable from channel 0
    loader = DataLoader(TensorDataset(images, masks), batch_size=4)
    torch.manual_seed(0)
    model = nn.Conv2d(2, 2, kernel_size=1)
    history = fit(model, loader, epochs=30, lr=5e-2, val_loader=loader, device="cpu", progress=False)
    with torch.no_grad():
        out = model(images)
    assert history["val_loss"][-1] == pytest.approx(F.cross_entropy(out, masks).item(), rel=1e-5)
    assert history["val_acc"][-1] == pytest.approx((out.argmax(1) == masks).float().mean().item())
    assert history["val_acc"][-1] > 0.95


def test_hook_order():
    x, y = blobs(n=8)
    rec = Recorder()
    fit(mlp(), DataLoader(TensorDataset(x, y), batch_size=4), epochs=2, callbacks=[rec], device="cpu",
        progress=False)
    batch = ["batch_start", "after_backward", "step_end"]
    epoch = ["epoch_start", *batch, *batch, "epoch_end"]
    assert [c[0] for c in rec.calls] == ["fit_start", *epoch, *epoch, "fit_end"]
    assert [c[1:] for c in rec.calls if c[0] == "step_end"] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_hooks_see_gradients_before_and_updates_after_sgd_step():
    """Plain SGD by hand: w_after = w_before - lr * grad, with grad read in on_after_backward."""
    lr = 0.1

    class Check(Callback):
        def __init__(self):
            self.checked = 0

        def on_after_backward(self, s):
            self.before = [p.detach().clone() for p in s.model.parameters()]
            self.grads = [p.grad.detach().clone() for p in s.model.parameters()]

        def on_step_end(self, s):
            for w0, g, p in zip(self.before, self.grads, s.model.parameters()):
                torch.testing.assert_close(p.detach(), w0 - lr * g)
            self.checked += 1

    train, _, _ = loaders()
    model, check = mlp(), Check()
    fit(model, train, epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=lr), callbacks=[check],
        device="cpu", progress=False)
    assert check.checked == 4


def test_gradients_equal_autograd_of_the_batch_loss():
    class Grab(Callback):
        def on_after_backward(self, s):
            if s.step == 0:
                self.batch = (s.inputs.clone(), s.targets.clone())
                self.weights = [p.detach().clone() for p in s.model.parameters()]
                self.grads = [p.grad.clone() for p in s.model.parameters()]

    train, _, _ = loaders()
    model, grab = mlp(), Grab()
    fit(model, train, epochs=1, callbacks=[grab], device="cpu", progress=False)
    reference = mlp()
    with torch.no_grad():
        for p, w in zip(reference.parameters(), grab.weights):
            p.copy_(w)
    F.cross_entropy(reference(grab.batch[0]), grab.batch[1]).backward()
    for p, g in zip(reference.parameters(), grab.grads):
        torch.testing.assert_close(p.grad, g)


def test_callback_can_stop_training():
    class StopAt(Callback):
        def on_step_end(self, s):
            if s.step == 3:
                s.stop, s.stop_reason = True, "enough"

    train, val, _ = loaders()
    history = fit(mlp(), train, epochs=5, val_loader=val, callbacks=[StopAt()], device="cpu", progress=False)
    assert len(history.step_loss) == 3
    assert len(history) == 1 and history.stop_reason == "enough"


@pytest.mark.parametrize("interval, expected_factor", [("epoch", 0.5 ** 2), ("batch", 0.5 ** 8)])
def test_scheduler_interval(interval, expected_factor):
    train, _, _ = loaders()  # 4 batches per epoch
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = fit(model, train, epochs=2, optimizer=opt, scheduler=sched, scheduler_interval=interval,
                  device="cpu", progress=False)
    assert history["lr"][-1] == pytest.approx(0.1 * expected_factor)


def test_max_grad_norm_clips_global_norm():
    class Norms(Callback):
        def __init__(self):
            self.norms = []

        def on_step_end(self, s):  # .grad still holds the (clipped) gradient after the step
            self.norms.append(torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(p.grad) for p in s.model.parameters()])).item())

    train, _, _ = loaders()
    norms = Norms()
    fit(mlp(), train, epochs=1, lr=1.0, max_grad_norm=1e-3, callbacks=[norms], device="cpu", progress=False)
    assert max(norms.norms) == pytest.approx(1e-3, rel=1e-4)


def test_no_metric_and_no_val_give_nan():
    train, _, _ = loaders()
    history = fit(mlp(), train, epochs=1, metric=None, loss_fn=F.cross_entropy, device="cpu", progress=False)
    row = history.epochs[0]
    assert row["train_acc"] != row["train_acc"] and row["val_loss"] != row["val_loss"]


def test_forward_fn_for_non_pair_batches():
    x, y = blobs(n=16)
    loader = [{"image": x[:8], "label": y[:8]}, {"image": x[8:], "label": y[8:]}]

    def forward_fn(model, batch):
        out = model(batch["image"])
        return F.cross_entropy(out, batch["label"]), batch["image"], batch["label"], out

    model = mlp()
    history = fit(model, loader, epochs=2, forward_fn=forward_fn, val_loader=loader, device="cpu", progress=False)
    assert len(history.step_loss) == 4
    model.eval()
    with torch.no_grad():
        logits = model(x)
    # validation went through forward_fn too: the same numbers as sklearn / F.cross_entropy on all 16
    assert history["val_acc"][-1] == pytest.approx(accuracy_score(y, logits.argmax(1)))
    assert history["val_loss"][-1] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)


def test_train_one_epoch_alone_means_over_samples():
    """The loop's parts work on their own: one epoch of plain SGD, losses weighted by batch size."""
    x, y = blobs(n=20)
    loader = [(x[:16], y[:16]), (x[16:], y[16:])]  # batches of 16 and 4 samples
    model = mlp()
    state = TrainState(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), scheduler=None,
                       history=History(), device=torch.device("cpu"), epochs=1)
    recipe = StepRecipe(forward_fn=lambda m, b: (F.cross_entropy(m(b[0]), b[1]), *b, m(b[0])),
                        scaler=torch.amp.GradScaler("cpu", enabled=False))
    row = train_one_epoch(state, loader, recipe)
    first, second = state.history.step_loss
    assert state.step == 2 and row["train_loss"] == pytest.approx((16 * first + 4 * second) / 20)
    assert 0 <= row["train_acc"] <= 1 and row["train_acc"] * 20 == pytest.approx(round(row["train_acc"] * 20))


def test_evaluate_empty_loader():
    assert evaluate(mlp(), [], device="cpu")["loss"] != evaluate(mlp(), [], device="cpu")["loss"]


# --- checkpoint / resume ---------------------------------------------------------------------


def _run(tmp_path, epochs, resume, stop_after_epoch=None):
    """Shuffled loader + dropout + scheduler: resume must restore weights, optimizer, scheduler
    *and* RNG states to equal one uninterrupted run."""
    torch.manual_seed(123)
    model = mlp(seed=5, dropout=0.3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)
    train, val, _ = loaders(shuffle=True)
    callbacks = []
    if stop_after_epoch is not None:
        class Crash(Callback):
            def on_epoch_start(self, s):
                if s.epoch == stop_after_epoch:
                    raise KeyboardInterrupt  # like Ctrl-C in the middle of training
        callbacks.append(Crash())
    history = fit(model, train, epochs=epochs, optimizer=opt, scheduler=sched, val_loader=val,
                  callbacks=callbacks, device="cpu", progress=False,
                  checkpoint_path=tmp_path / "run.ckpt" if tmp_path else None, resume=resume)
    return model, history


def test_resume_equals_uninterrupted_run(tmp_path):
    straight_model, straight = _run(None, epochs=4, resume=False)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, epochs=4, resume=False, stop_after_epoch=2)
    assert (tmp_path / "run.ckpt").exists() and not (tmp_path / "run.ckpt.tmp").exists()
    torch.manual_seed(999)  # a different global RNG state before resuming: the checkpoint restores it
    resumed_model, resumed = _run(tmp_path, epochs=4, resume=True)
    assert len(resumed) == 4 and len(resumed.step_loss) == 16
    for a, b in zip(straight_model.parameters(), resumed_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed.step_loss == straight.step_loss
    assert resumed["val_loss"] == straight["val_loss"] and resumed["lr"] == straight["lr"]


def test_resume_without_checkpoint_starts_from_scratch(tmp_path):
    _, history = _run(tmp_path, epochs=1, resume=True)
    assert len(history) == 1


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(epochs=0), ValueError, r"epochs must be an int >= 1, got 0"),
    (dict(epochs=2.5), ValueError, r"epochs must be an int >= 1, got 2.5"),
    (dict(epochs=1, scheduler_interval="step"), ValueError, r"scheduler_interval must be one of .*got 'step'"),
    (dict(epochs=1, callbacks=[print]), TypeError, r"callbacks must be .*Callback instances, got builtin_function"),
    (dict(epochs=1, max_grad_norm=0), ValueError, r"max_grad_norm must be > 0 or None, got 0"),
    (dict(epochs=1, lr=-1.0), ValueError, r"lr must be > 0, got -1.0"),
    (dict(epochs=1, amp=True, device="cpu"), ValueError, r"amp=True needs a cuda device, got 'cpu'"),
    (dict(epochs=1, resume=True), ValueError, r"resume=True needs a checkpoint_path, got None"),
])
def test_bad_arguments(kwargs, error, match):
    train, _, _ = loaders()
    with pytest.raises(error, match=match):
        fit(mlp(), train, progress=False, **{"device": "cpu", **kwargs})


def test_bad_model_and_batches():
    train, _, _ = loaders()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        fit(lambda x: x, train, epochs=1)
    with pytest.raises(ValueError, match=r"each batch must be a pair \(inputs, targets\).*got Tensor"):
        fit(mlp(), [torch.zeros(2, 5)], epochs=1, device="cpu", progress=False)


# --- GPU ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a cuda GPU")
def test_amp_on_cuda_trains_and_resumes(tmp_path):
    train, val, (xv, yv) = loaders()
    model = mlp()
    history = fit(model, train, epochs=3, lr=1e-2, val_loader=val, progress=False,
                  checkpoint_path=tmp_path / "gpu.ckpt")  # default device cuda, amp on
    assert next(model.parameters()).device.type == "cuda"
    assert history["train_loss"][-1] < history["train_loss"][0]
    with torch.no_grad():
        logits = model.eval()(xv.cuda()).float().cpu()
    assert history["val_acc"][-1] == pytest.approx(accuracy_score(yv, logits.argmax(1)), abs=1 / len(yv))
    more = fit(mlp(), train, epochs=4, progress=False, checkpoint_path=tmp_path / "gpu.ckpt", resume=True)
    assert len(more) == 4


def test_fit_in_a_saved_notebook_leaves_one_visible_bar_and_no_blank_ones():
    """What the book saves: executed like jupyter-book does (nbclient, widget state stored), a
    3-epoch fit leaves the bar over the epochs and one transient bar with display: none, not
    one hidden-but-32-px-tall bar per epoch."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    code = ("import torch\nfrom torch import nn\nfrom torch.utils.data import DataLoader, TensorDataset\n"
            "from lecture_lib.train import fit\n"
            "torch.manual_seed(0)\nx, y = torch.randn(64, 5), torch.randint(0, 3, (64,))\n"
            "history = fit(nn.Linear(5, 3), DataLoader(TensorDataset(x, y), batch_size=16), epochs=3, device='cpu')")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True).execute()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    views = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for o in nb.cells[0].outputs
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    layouts = [state[state[v]["state"]["layout"].removeprefix("IPY_MODEL_")]["state"] for v in views]
    assert len(views) == 2, f"expected the epochs bar and one transient bar, got {len(views)} bars"
    assert layouts[0].get("display") != "none" and layouts[1].get("display") == "none"
