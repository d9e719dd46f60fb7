"""The lecture's experiment as an objective: a 2-layer net with 50 hidden units trained with
SGD + momentum, scored by its validation accuracy ("For example: run coarse search for 5 epochs").

    objective = TwoLayerNetObjective()
    objective({"lr": 3e-4, "reg": 1e-2})           # validation accuracy after 5 epochs
    objective({"lr": 3e-4}, report=print)            # report(epoch, val_acc) after every epoch
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from lecture_lib.lecture import EXPLOSION_FACTOR
from lecture_lib.train.callbacks import DivergenceGuard, ReportCallback

__all__ = ["TwoLayerNetObjective"]

_DATA_CACHE: dict = {}


@dataclass
class TwoLayerNetObjective:
    """Validation accuracy of a 2-layer net (``hidden`` ReLU units) trained with SGD on digits (or CIFAR-10).

    ``params``: ``lr`` (required), ``reg`` (L2 weight decay, default 0), ``epochs`` (default
    ``self.epochs``). Inputs are 8-bit pixel values (the digits' 0..16 intensities times 16)
    minus the training mean, as CS231n feeds CIFAR-10 pixels, so the lecture's learning-rate
    range 1e-6..1e-3 is the right one. With ``cifar10_root`` (the folder holding
    ``cifar-10-batches-py``) the data are CIFAR-10 itself, the lecture's data set: 3072 raw pixel
    values minus the mean image, 1000 validation images (``n_samples`` then caps the training
    images; see ``load_cifar10_split``). Training stops
    with ``Diverged`` when the loss exceeds 3x its initial value. Picklable, so Optuna worker
    processes can run it. ``device`` defaults to the CPU: a 50-unit network is faster there
    than on a GPU (pass ``device="cuda"`` or ``str(get_device())`` for bigger variants).
    """

    hidden: int = 50
    epochs: int = 5
    batch_size: int = 64
    n_samples: int | None = None
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    cifar10_root: str | None = None

    def data(self):
        """The split (8-bit pixel values minus the training mean); cached per process."""
        key = (self.seed, self.n_samples, self.cifar10_root)
        if key not in _DATA_CACHE:
            if self.cifar10_root is not None:
                from lecture_lib.data.classification import load_cifar10_split

                split, scale = load_cifar10_split(self.cifar10_root, n_train=self.n_samples, seed=self.seed), 1
            else:
                from lecture_lib.data.tabular import load_digits_split

                split = load_digits_split(seed=self.seed, standardize=False, n_samples=self.n_samples)
                scale = 16  # digits' intensities 0..16 -> 0..256
            mean = split.x_train.mean(dim=0) * scale
            for name in ("x_train", "x_val", "x_test"):
                setattr(split, name, getattr(split, name) * scale - mean)
            _DATA_CACHE[key] = split
        return _DATA_CACHE[key]

    def __call__(self, params: Mapping[str, Any], report: Callable[[int, float], None] | None = None) -> float:
        from lecture_lib.data.tabular import TensorBatches
        from lecture_lib.train import fit

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        if "lr" not in params:
            raise ValueError(f"params must hold 'lr', got {sorted(params)}")
        split = self.data()
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        model = nn.Sequential(nn.Linear(split.num_features, self.hidden), nn.ReLU(),
                              nn.Linear(self.hidden, split.num_classes))
        optimizer = torch.optim.SGD(model.parameters(), lr=float(params["lr"]), momentum=0.9,
                                    weight_decay=float(params.get("reg", 0.0)))
        callbacks = [DivergenceGuard(EXPLOSION_FACTOR, action="raise")]
        if report is not None:
            callbacks.append(ReportCallback(report, "val_acc"))
        train = TensorBatches(split.x_train, split.y_train, self.batch_size, shuffle=True, generator=generator)
        val = [(split.x_val, split.y_val)]
        history = fit(model, train, epochs=int(params.get("epochs", self.epochs)), optimizer=optimizer,
                      val_loader=val, callbacks=callbacks, device=self.device or "cpu", progress=False)
        return history["val_acc"][-1]
