"""Stored results of the long trainings: run once by ``make weights``, loaded and evaluated live.

A training that takes more than about 30 s in full mode (the detectors, Mask R-CNN, the
ensembles, the full UNet) is described by a :class:`Recipe` -- how to build the model, train it
(seeded, on the CPU) and evaluate it -- registered by name in :mod:`lecture_lib.weights.recipes`.
``make weights NAME=...`` runs the recipe and stores, in this package folder (shipped as package
data):

* ``<name>.pt``: the trained ``state_dict`` (plain tensors, never a pickled module; loaded with
  ``torch.load(..., weights_only=True)``);
* ``<name>.json``: the recipe, seed, wall time, machine, library versions, the metrics on the
  full test set and on the small *check slice*, and the training history;
* ``manifest.json``: ``{name: {"file", "sha256", "bytes", "meta"}}`` for every stored result.

A page calls :func:`load` (or :func:`load_or_train`, which honours ``TRAIN_FROM_SCRATCH`` and the
environment variable ``LECTURE_TRAIN=1``) and then evaluates the model live::

    model = recipe.build()
    meta = load_or_train("ensembles_shapes", model, train_from_scratch=TRAIN_FROM_SCRATCH)

Nothing falls back quietly: a missing, truncated or mismatched file raises :class:`WeightsError`
naming the file and the ``make weights NAME=...`` command that rebuilds it.
"""

from __future__ import annotations

import importlib
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch
from torch import nn

from lecture_lib.config import seed_everything
from lecture_lib.weights.files import (MANIFEST, WEIGHTS_DIR, WeightsError, _differences, _jsonable, load, manifest,
                                      rebuild_command, save)
from lecture_lib.weights.recipes import RECIPES

__all__ = [
    "WEIGHTS_DIR",
    "MANIFEST",
    "RECIPES",
    "Recipe",
    "WeightsError",
    "get_recipe",
    "manifest",
    "load",
    "load_or_train",
    "train",
    "evaluate",
    "save",
    "train_requested",
    "rebuild_command",
]

# env LECTURE_TRAIN=1 makes every page retrain from scratch (same switch as TRAIN_FROM_SCRATCH)
TRAIN_ENV = "LECTURE_TRAIN"


@dataclass(frozen=True)
class Recipe:
    """How one stored result is made and checked (returned by a function listed in ``RECIPES``).

    Attributes:
        name: the key in ``RECIPES`` and the stem of the stored files.
        build: ``build() -> nn.Module``, the model as the library builds it today (untrained).
        train: ``train(model, seed) -> dict``: trains ``model`` in place, seeded, on the device the
            model is on (``make weights`` keeps it on the CPU); returns the training history as a
            JSON-able dict (lists of numbers) for the page's curves.
        evaluate: ``evaluate(model, n_images=None) -> dict[str, float]`` on the recipe's test set,
            only its first ``n_images`` when given (so the check slice is cheap to rebuild).
        metric: the headline key of ``evaluate``'s dict (the stale test compares it).
        check_images: size of the slice that the stale test re-evaluates.
        seed: passed to ``train``.
        description: one line for the JSON and the manifest listing.
    """

    name: str
    build: Callable[[], nn.Module]
    train: Callable[[nn.Module, int], Mapping[str, Any]]
    evaluate: Callable[..., Mapping[str, float]]
    metric: str
    check_images: int = 16
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"Recipe.name must be an identifier (it names files), got {self.name!r}")
        for field_name in ("build", "train", "evaluate"):
            if not callable(getattr(self, field_name)):
                raise TypeError(f"Recipe.{field_name} must be callable, got {type(getattr(self, field_name)).__name__}")
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"Recipe.metric must be a non-empty key of evaluate()'s dict, got {self.metric!r}")
        if isinstance(self.check_images, bool) or not isinstance(self.check_images, int) or self.check_images < 1:
            raise ValueError(f"Recipe.check_images must be an int >= 1, got {self.check_images!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Recipe.seed must be an int >= 0, got {self.seed!r}")


# --- the registry -----------------------------------------------------------------------------


def get_recipe(name: str, recipes: Mapping[str, str] | None = None) -> Recipe:
    """Import and call the function that ``RECIPES[name]`` names (``"module.path:function"``)."""
    recipes = RECIPES if recipes is None else recipes
    if name not in recipes:
        raise WeightsError(f"no recipe named {name!r}; known: {sorted(recipes)} "
                           "(a recipe is registered by one line in lecture_lib/weights/recipes.py)")
    target = recipes[name]
    module_name, sep, function_name = target.partition(":")
    if not sep or not module_name or not function_name:
        raise WeightsError(f"RECIPES[{name!r}] must be 'module.path:function', got {target!r}")
    function = getattr(importlib.import_module(module_name), function_name, None)
    if function is None:
        raise WeightsError(f"RECIPES[{name!r}] names {target!r}, but {module_name} has no {function_name!r}")
    recipe = function()
    if not isinstance(recipe, Recipe):
        raise TypeError(f"{target}() must return a lecture_lib.weights.Recipe, got {type(recipe).__name__}")
    if recipe.name != name:
        raise WeightsError(f"{target}() returned a recipe named {recipe.name!r}, but it is registered as {name!r}")
    return recipe


# --- training and evaluating with a recipe ----------------------------------------------------


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("torchvision", "numpy", "scikit-image", "scikit-learn"):
        try:
            from importlib.metadata import version
            versions[package] = version(package)
        except Exception:  # not installed: leave it out
            pass
    return versions


def _machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}


def train(name: str, model: nn.Module | None = None, seed: int | None = None) -> tuple[nn.Module, dict]:
    """Train the recipe ``name`` from scratch, in place (the same code path as ``make weights``).

    Seeds everything with ``seed``, takes the initial weights from a fresh ``recipe.build()``
    (so a page's model starts where ``make weights`` started), seeds again and calls
    ``recipe.train(model, seed)``.

    Args:
        model: the model to train, on the device it should train on (default: ``recipe.build()``,
            on the CPU); it must have the recipe's keys and shapes.
        seed: default the recipe's seed.

    Returns:
        (model in eval mode, meta): ``meta`` has the recipe, seed, wall and CPU seconds, machine,
        library versions and the training history (no metrics: see :func:`evaluate`).
    """
    recipe = get_recipe(name)
    seed = recipe.seed if seed is None else seed
    seed_everything(seed)
    fresh = recipe.build()  # the initial weights of `make weights`, whoever built ``model``
    if model is None:
        model = fresh
    else:
        parts = _differences(fresh.state_dict(), model.state_dict())
        if parts:
            raise ValueError(f"model must be what recipe {name!r} builds (recipe.build()), but "
                             f"{'; '.join(parts).replace('the file', 'the recipe')}")
        model.load_state_dict(fresh.state_dict())
    seed_everything(seed)
    wall, cpu = time.perf_counter(), time.process_time()
    history = recipe.train(model, seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model.eval()
    history = _jsonable(history)  # a dict, or a dataclass such as lecture_lib.train.History
    if not isinstance(history, dict):
        raise TypeError(f"recipe {name!r}: train() must return the history as a dict, got {type(history).__name__}")
    meta = {
        "name": name,
        "recipe": RECIPES[name],
        "description": recipe.description,
        "metric": recipe.metric,
        "check_images": recipe.check_images,
        "seed": seed,
        "train_wall_seconds": wall,
        # process CPU seconds per thread: stays fair on a shared machine (see benchmarks/bench_unet.py)
        "train_cpu_seconds_per_thread": cpu / max(torch.get_num_threads(), 1),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": _versions(),
        "history": history,
    }
    return model, meta


def evaluate(name: str, model: nn.Module, check_only: bool = False) -> dict:
    """The recipe's metrics on its full test set and on the check slice.

    Returns:
        ``{"test": {...}, "check": {...}}`` (``"test"`` left out when ``check_only``).
    """
    recipe = get_recipe(name)
    result = {}
    if not check_only:
        result["test"] = {k: float(v) for k, v in recipe.evaluate(model).items()}
    result["check"] = {k: float(v) for k, v in recipe.evaluate(model, n_images=recipe.check_images).items()}
    for part, metrics in result.items():
        if recipe.metric not in metrics:
            raise WeightsError(f"recipe {name!r}: evaluate() returned no {recipe.metric!r} "
                               f"(its headline metric) on the {part} set, only {sorted(metrics)}")
    return result


def train_requested(train_from_scratch: bool = False) -> bool:
    """True when the page asks to retrain (``TRAIN_FROM_SCRATCH``) or env ``LECTURE_TRAIN=1`` is set."""
    env = os.environ.get(TRAIN_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    return bool(train_from_scratch) or env


def load_or_train(name: str, model: nn.Module, train_from_scratch: bool = False,
                  directory: str | os.PathLike | None = None) -> dict:
    """The page's one call: load the stored result, or retrain with the recipe when asked.

    ``train_from_scratch=True`` (the page's ``TRAIN_FROM_SCRATCH`` switch) or the environment
    variable ``LECTURE_TRAIN=1`` trains ``model`` in place with the same recipe and seed as
    ``make weights`` (on the device ``model`` is on: move it to a GPU first if you have one);
    otherwise the stored state dict is loaded (:func:`load`, which raises rather than fall back).

    Returns:
        dict: metadata with at least ``"history"`` (the whole run's curves) and ``"source"``
        (``"stored"`` or ``"trained"``). The page evaluates ``model`` live for its numbers.
    """
    if train_requested(train_from_scratch):
        _, meta = train(name, model)
        meta["source"] = "trained"
        return meta
    meta = load(name, model, directory)
    meta["source"] = "stored"
    return meta
