"""Checks of the metrics' inputs: each raises ``ValueError`` / ``TypeError`` saying what was
expected and what was given (detection.py and masks.py share them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from lecture_lib.metrics.conventions import COCO_IOU_THRESHOLDS, METHODS

_REAL = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8, torch.int16,
         torch.int32, torch.int64)
_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INT = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_image_lists(preds, targets) -> None:
    """``preds`` and ``targets`` must be lists (sequences) of the same length, one dict per image."""
    for name, value in (("preds", preds), ("targets", targets)):
        if isinstance(value, (Mapping, str, Tensor)) or not isinstance(value, Sequence):
            raise TypeError(f"{name} must be a list with one dict per image, got {type(value).__name__}")
    if len(preds) != len(targets):
        raise ValueError(
            f"preds and targets must have the same length (one dict per image), "
            f"got {len(preds)} preds and {len(targets)} targets"
        )


def _check_keys(d, where: str, keys: Sequence[str]) -> None:
    """``d`` must be a dict (mapping) holding every key in ``keys``."""
    if not isinstance(d, Mapping):
        raise TypeError(f"{where} must be a dict with keys {list(keys)}, got {type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{where} is missing key(s) {missing}: expected keys {list(keys)}, got {list(d)}")


def _check_vector(v, where: str, n: int, kind: str) -> None:
    """``v`` must be a Tensor[n] of the given kind: "float", "int", "real" or "flag" (bool or 0/1 ints)."""
    if not isinstance(v, Tensor):
        raise TypeError(f"{where} must be a torch.Tensor of shape [{n}], got {type(v).__name__}")
    if v.shape != (n,):
        raise ValueError(f"{where} must have shape [N] with N = {n} (one per object), got {list(v.shape)}")
    allowed = {"float": _FLOAT, "int": _INT, "real": _REAL, "flag": (torch.bool, *_INT)}[kind]
    if v.dtype not in allowed:
        what = {"float": "floating-point numbers", "int": "integers", "real": "real numbers",
                "flag": "bools (or 0/1 integers)"}[kind]
        raise TypeError(f"{where} must hold {what}, got dtype {v.dtype}")


def _check_targets_extra(t, where: str, n: int) -> None:
    """The optional per-object keys of a target: ``difficult``, ``iscrowd`` and ``area``."""
    flag = t.get("difficult")
    if flag is not None and (not isinstance(flag, Tensor) or flag.dtype != torch.bool or flag.shape != (n,)):
        got = f"{flag.dtype} {list(flag.shape)}" if isinstance(flag, Tensor) else type(flag).__name__
        raise TypeError(f"{where}['difficult'] must be a bool tensor of shape [{n}], got {got}")
    if t.get("iscrowd") is not None:
        _check_vector(t["iscrowd"], f"{where}['iscrowd']", n, "flag")
    if t.get("area") is not None:
        _check_vector(t["area"], f"{where}['area']", n, "real")


def _check_options(iou_thresholds, method, max_detections) -> np.ndarray:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if max_detections is not None and (
        isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1
    ):
        raise ValueError(f"max_detections must be a positive int or None, got {max_detections!r}")
    if iou_thresholds is None:
        return COCO_IOU_THRESHOLDS.copy() if method == "coco" else np.array([0.5])
    if isinstance(iou_thresholds, (int, float)):
        raise TypeError(f"iou_thresholds must be a sequence of floats, got the number {iou_thresholds!r}")
    if isinstance(iou_thresholds, Tensor):
        iou_thresholds = iou_thresholds.tolist()
    values = np.asarray(iou_thresholds, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"iou_thresholds must be a non-empty 1-D sequence, got shape {list(values.shape)}")
    if not np.all((values >= 0) & (values <= 1)):
        raise ValueError(f"iou_thresholds must lie in [0, 1], got {values.tolist()}")
    return values


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_curve(recall, precision) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, value in (("recall", recall), ("precision", precision)):
        a = np.asarray(value.detach().cpu().numpy() if isinstance(value, Tensor) else value, dtype=np.float64)
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one value per ranked detection), got shape {list(a.shape)}")
        if not np.all((a >= 0) & (a <= 1)):
            raise ValueError(f"{name} values must lie in [0, 1], got {a.tolist()}")
        arrays.append(a)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"recall and precision must have the same length, got {arrays[0].size} and {arrays[1].size}"
        )
    if np.any(np.diff(arrays[0]) < 0):
        raise ValueError("recall must be non-decreasing down the ranked list")
    return arrays[0], arrays[1]
