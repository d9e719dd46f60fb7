"""Semantic segmentation metrics: confusion matrix, pixel accuracy, per-class and mean IoU.

Everything is read off the ``C x C`` confusion matrix ``cm`` whose entry ``cm[t, p]`` counts
pixels of true class ``t`` predicted as ``p`` (rows = target, as in scikit-learn):

- pixel accuracy = ``trace(cm) / cm.sum()``: dominated by the big classes (mostly background),
- IoU of class ``c`` = ``TP / (TP + FP + FN)`` = ``cm[c, c] / (row c + column c - cm[c, c])``,
- mean IoU = the average over the classes that occur in the target or the prediction (a class
  absent from both has 0 / 0 and is left out, not counted as 0 or 1). This is the PASCAL VOC
  measure (Long et al. 2015 report it as "mean IU").

Pixels whose target is ``ignore_index`` (VOC marks object borders with 255) count nowhere.
To evaluate a whole data set, sum the confusion matrices of its batches (:class:`ConfusionMatrix`)
and compute the metrics once from the sum: the mean of per-image IoUs is a different number.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "confusion_matrix",
    "pixel_accuracy",
    "per_class_iou",
    "mean_iou",
    "iou_from_confusion_matrix",
    "ConfusionMatrix",
]


def _check_labels(pred, target, num_classes: int | None, ignore_index: int | None) -> tuple[Tensor, Tensor]:
    """Validate label maps; return the flattened ``(pred, target)`` of the non-ignored pixels."""
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of class ids, got {type(t).__name__}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer class ids, got dtype {t.dtype} "
                            f"(for scores / logits [N, C, H, W] take .argmax(1) first)")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {list(pred.shape)} and {list(target.shape)}")
    if num_classes is not None and (not isinstance(num_classes, int) or isinstance(num_classes, bool)
                                    or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if ignore_index is not None and (not isinstance(ignore_index, int) or isinstance(ignore_index, bool)):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, t in (("pred", pred), ("target", target)):
        if t.numel() and int(t.min()) < 0:
            raise ValueError(f"{name} must hold class ids >= 0, got {int(t.min())}")
        if num_classes is not None and t.numel() and int(t.max()) >= num_classes:
            raise ValueError(f"{name} must hold class ids < num_classes = {num_classes}, got {int(t.max())}"
                             + ("" if ignore_index is not None or name == "pred"
                                else " (pass ignore_index for void labels such as 255)"))
    return pred, target


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """Count pixels per (true class, predicted class).

    Args:
        pred (Tensor[...] int): predicted class ids.
        target (Tensor[...] int): true class ids, same shape as ``pred``.
        num_classes: number of classes ``C`` (ids ``0 .. C - 1``; larger ids raise).
        ignore_index: target value whose pixels are skipped (e.g. 255 in VOC).

    Returns:
        Tensor[C, C] int64: ``cm[t, p]`` pixels of true class ``t`` predicted as ``p``
        (rows = target), as ``sklearn.metrics.confusion_matrix``.
    """
    pred, target = _check_labels(pred, target, num_classes, ignore_index)
    # one bincount over the pair index t * C + p: no Python loop over classes
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def pixel_accuracy(pred: Tensor, target: Tensor, ignore_index: int | None = None) -> float:
    """Fraction of (non-ignored) pixels whose predicted class is right; NaN if there are none."""
    pred, target = _check_labels(pred, target, None, ignore_index)
    if target.numel() == 0:
        return float("nan")
    return float((pred == target).double().mean())


def iou_from_confusion_matrix(cm: Tensor) -> Tensor:
    """Per-class IoU ``TP / (TP + FP + FN)`` from a ``Tensor[C, C]`` confusion matrix (rows =
    target); NaN for classes absent from both target and prediction."""
    if not isinstance(cm, Tensor) or cm.dim() != 2 or cm.shape[0] != cm.shape[1]:
        shape = list(cm.shape) if isinstance(cm, Tensor) else type(cm).__name__
        raise ValueError(f"cm must be a square matrix [C, C], got {shape}")
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp  # predicted as c or truly c
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def per_class_iou(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """IoU of every class: ``Tensor[C]`` float64, NaN for classes absent from both inputs.

    Equals ``sklearn.metrics.jaccard_score(target, pred, average=None)`` on the present classes.
    """
    return iou_from_confusion_matrix(confusion_matrix(pred, target, num_classes, ignore_index))


def mean_iou(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None) -> float:
    """Mean over classes of the IoU, leaving out classes absent from both target and prediction.

    Returns NaN when no class is present at all (every pixel ignored, or empty inputs).
    """
    iou = per_class_iou(pred, target, num_classes, ignore_index)
    present = ~iou.isnan()
    return float(iou[present].mean()) if bool(present.any()) else float("nan")


class ConfusionMatrix:
    """Accumulate a confusion matrix over batches; read the data set's metrics at the end.

    >>> cm = ConfusionMatrix(num_classes=5)
    >>> for images, masks in loader:                       # doctest: +SKIP
    ...     cm.update(model(images).argmax(1), masks)
    >>> cm.mean_iou(), cm.pixel_accuracy()                 # doctest: +SKIP
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: Tensor, target: Tensor) -> "ConfusionMatrix":
        """Add the pixels of one batch (``pred``, ``target``: class ids of the same shape)."""
        self.matrix += confusion_matrix(pred.detach().cpu(), target.detach().cpu(), self.num_classes,
                                        self.ignore_index)
        return self

    def pixel_accuracy(self) -> float:
        total = int(self.matrix.sum())
        return float(self.matrix.diagonal().sum()) / total if total else float("nan")

    def per_class_iou(self) -> Tensor:
        return iou_from_confusion_matrix(self.matrix)

    def mean_iou(self) -> float:
        iou = self.per_class_iou()
        present = ~iou.isnan()
        return float(iou[present].mean()) if bool(present.any()) else float("nan")
