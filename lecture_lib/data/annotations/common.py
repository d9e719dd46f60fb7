"""What the annotation formats share: the ``Annotations`` they read into, the error they raise
(naming file, place and expectation), number parsing, the per-image dicts, and class lists."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class AnnotationError(ValueError):
    """A malformed annotation file: the message names the file, the place and what was expected."""


@dataclass
class Annotations:
    """Ground truth read from files: ``images[i]`` (``{"id", "file_name", "width", "height"}``,
    sizes None when unknown) goes with ``targets[i]``; ``classes`` maps each label to its name."""

    images: list
    targets: list
    classes: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


def _fail(path, where: str, message: str):
    raise AnnotationError(f"{path}: {where}: {message}" if where else f"{path}: {message}")


def _number(value, path, where: str, minimum=None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(path, where, f"expected a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        _fail(path, where, f"expected a number >= {minimum:g}, got {value!r}")
    return float(value)


def _parse_number(text, path, where: str, minimum=None, maximum=None) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        _fail(path, where, f"expected a number, got {text!r}")
    if not math.isfinite(value):
        _fail(path, where, f"expected a finite number, got {text!r}")
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        bounds = f"in [{minimum:g}, {maximum:g}]" if maximum is not None else f">= {minimum:g}"
        _fail(path, where, f"expected a number {bounds}, got {text!r}")
    return value


def _target(boxes, labels, **extra) -> dict:
    out = {"boxes": torch.tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)),
           "labels": torch.tensor(np.asarray(labels, dtype=np.int64))}
    for key, values in extra.items():
        if values is not None:
            out[key] = values if isinstance(values, Tensor) else torch.tensor(values)
    return out


def _prediction(boxes, scores, labels, masks=None) -> dict:
    out = {"boxes": torch.tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)),
           "scores": torch.tensor(np.asarray(scores, dtype=np.float64)),
           "labels": torch.tensor(np.asarray(labels, dtype=np.int64))}
    if masks is not None:
        out["masks"] = masks
    return out


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def read_class_list(path) -> list[str]:
    """Class names, one per line (``classes.txt``, darknet's ``obj.names``) or the ``names`` of an
    Ultralytics ``data.yaml`` (a list, or a dict from class index to name)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such class list file")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise AnnotationError(f"{path}: not valid YAML: {error}") from None
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            if sorted(names) != list(range(len(names))):
                _fail(path, "names", f"expected class indices 0..{len(names) - 1}, got {sorted(names)}")
            names = [names[k] for k in range(len(names))]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            _fail(path, "names", f"expected a list of class names, got {names!r}")
        return names
    names = [line.strip() for line in path.read_text().splitlines()]
    while names and not names[-1]:
        names.pop()
    for i, name in enumerate(names, start=1):
        if not name:
            _fail(path, f"line {i}", "expected a class name, got an empty line")
    return names
