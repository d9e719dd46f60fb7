"""The stored result ``ensembles_shapes`` (``lecture_lib.weights``): the experiment's data and
recipe."""

from __future__ import annotations

import functools
from dataclasses import replace

import torch
from torch import Tensor

from lecture_lib.ensembles.experiment import (
    EnsembleExperiment,
    EnsembleMembers,
    evaluate_ensembles,
    train_ensembles,
)


@functools.lru_cache(maxsize=4)
def _shape_tensors(split: str, n: int) -> tuple[Tensor, Tensor]:
    from lecture_lib.data.classification import (
        ShapeClassification,  # data only when asked for
    )

    return ShapeClassification(split, n, seed=0).tensors()


def ensemble_train_loader(config: EnsembleExperiment = EnsembleExperiment()):
    """Shuffled training batches of ShapeClassification (``config.n_train`` images).

    A fresh generator seeded with ``config.seed`` per call: every training run from this loader
    sees the same sequence of orders.
    """
    from torch.utils.data import DataLoader, TensorDataset

    x_train, y_train = _shape_tensors("train", config.n_train)
    return DataLoader(TensorDataset(x_train, y_train), batch_size=config.batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(config.seed))


# The BatchNorm statistics of parameter averages are re-estimated with one pass over this many
# training images (ShapeClassification("train", SMALL_BN_IMAGES), the images the page's short live
# run trains on). Measured on the stored networks and the full test set: all 5 000 training
# images give accuracies within 0.001 of these (0.104 / 0.590 / 0.714 against 0.104 / 0.591 /
# 0.715) for five times the work.
SMALL_BN_IMAGES = 1_000


def ensemble_test_loaders(config: EnsembleExperiment = EnsembleExperiment(), n_test: int | None = None):
    """``(test_loader, bn_loader)``: the test images and the training images for BN re-estimation.

    ``n_test=None``: the full ``config.n_test`` test images; otherwise a test set of ``n_test``
    images (``ShapeClassification("test", n_test)``, a set of its own: the images depend on the
    size), cheap enough for the stale test and quick mode. BatchNorm statistics are re-estimated
    on :data:`SMALL_BN_IMAGES` training images either way.
    """
    from torch.utils.data import DataLoader, TensorDataset

    x_test, y_test = _shape_tensors("test", config.n_test if n_test is None else n_test)
    x_bn, y_bn = _shape_tensors("train", min(SMALL_BN_IMAGES, config.n_train))
    # test batches of 250: the fastest size for these small networks on a CPU (measured); the BN
    # pass keeps batches of 500 (its cumulative average of batch statistics depends on the size)
    return (DataLoader(TensorDataset(x_test, y_test), batch_size=250),
            DataLoader(TensorDataset(x_bn, y_bn), batch_size=500))


ENSEMBLES_STORED = EnsembleExperiment()


def _flat_accuracies(result: dict) -> dict[str, float]:
    flat = dict(result["accuracy"])
    for kind, values in result["members"].items():
        flat.update({f"{kind}_member_{k}": v for k, v in enumerate(values)})
    return flat


def ensembles_recipe():
    """``make weights NAME=ensembles_shapes``: the whole comparison of the page, stored.

    ``evaluate(members, n_images)`` returns every row of :func:`evaluate_ensembles` plus each
    member's accuracy (``true_member_k``, ``snapshot_member_k``), on the test set or, with
    ``n_images``, on a test set of that size (:func:`ensemble_test_loaders`); headline
    ``snapshot_average``.
    """
    from lecture_lib.weights import Recipe

    config = ENSEMBLES_STORED

    def train(members, seed):
        seeded = replace(config, seed=seed)
        return train_ensembles(members, ensemble_train_loader(seeded), seeded)

    def evaluate(members, n_images=None):
        test_loader, bn_loader = ensemble_test_loaders(config, n_test=n_images)
        return _flat_accuracies(evaluate_ensembles(members, test_loader, bn_loader))

    return Recipe(name="ensembles_shapes", build=lambda: EnsembleMembers.from_config(config), train=train,
                  evaluate=evaluate, metric="snapshot_average", check_images=500, seed=config.seed,
                  description=f"{config.n_models} independent small_cnn({config.width}) x {config.epochs} epochs + "
                              f"{config.n_snapshots} snapshots within one {config.epochs}-epoch run, ShapeClassification")
