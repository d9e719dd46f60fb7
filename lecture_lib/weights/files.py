"""The stored files of ``lecture_lib.weights``: the manifest, loading a state dict strictly (size,
sha256, keys and shapes checked) and saving one with its JSON."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parent
MANIFEST = "manifest.json"


class WeightsError(ValueError):
    """A stored result is missing, truncated, stale or does not fit the model; says how to rebuild it."""


def rebuild_command(name: str) -> str:
    """The command that (re)builds one stored result: ``make weights NAME=<name>``."""
    return f"make weights NAME={name}"



def _directory(directory: str | os.PathLike | None) -> Path:
    return WEIGHTS_DIR if directory is None else Path(directory)


def manifest(directory: str | os.PathLike | None = None) -> dict[str, dict]:
    """The manifest ``{name: {"file", "sha256", "bytes", "meta"}}`` ({} when there is none yet)."""
    path = _directory(directory) / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path} is not a readable JSON manifest ({error}); rebuild the stored results "
                           "with `make weights`") from error
    if not isinstance(data, dict):
        raise WeightsError(f"{path} must hold a JSON object {{name: entry}}, got {type(data).__name__}")
    return data


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _differences(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading strictly where ``expected`` is (missing/extra keys, shapes)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: stored {list(state[k].shape)}, model {list(expected[k].shape)}"
              for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys the file lacks (e.g. {missing[:3]})")
    if unexpected:
        parts.append(f"{len(unexpected)} keys the model lacks (e.g. {unexpected[:3]})")
    if shapes:
        parts.append(f"{len(shapes)} shapes differ (e.g. {shapes[:3]})")
    return parts


def _check_state_dict(state: Mapping[str, torch.Tensor], model: nn.Module, path: Path, name: str) -> None:
    """Same keys and shapes as ``model.state_dict()``, else WeightsError listing the differences."""
    parts = _differences(state, model.state_dict())
    if parts:
        raise WeightsError(f"{path} does not fit the model the library builds today: {'; '.join(parts)}. "
                           f"The stored result is stale: rebuild it with `{rebuild_command(name)}`")


def load(name: str, model: nn.Module, directory: str | os.PathLike | None = None) -> dict:
    """Load the stored state dict ``name`` into ``model`` (in place, then eval mode); return its JSON metadata.

    Checks, in order: the manifest lists ``name``; the ``.pt`` and ``.json`` files exist; the
    ``.pt`` has the manifest's size and sha256; it loads with ``weights_only=True``; its keys and
    shapes are exactly those of ``model.state_dict()``.

    Args:
        name: a key of the manifest (and of ``RECIPES``).
        model: the untrained model as the recipe builds it; its tensors are overwritten on the
            device they are on.
        directory: where the stored results live (default: this package folder).

    Returns:
        dict: the ``<name>.json`` metadata (recipe, seed, metrics, history, ...).

    Raises:
        WeightsError (a ValueError): naming the file and ``make weights NAME=<name>``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    folder = _directory(directory)
    command = rebuild_command(name)
    entries = manifest(folder)
    if name not in entries:
        raise WeightsError(f"{folder / MANIFEST} lists no stored result {name!r} (it lists {sorted(entries)}); "
                           f"build it with `{command}`")
    entry = entries[name]
    path = folder / entry.get("file", f"{name}.pt")
    meta_path = folder / entry.get("meta", f"{name}.json")
    for p in (path, meta_path):
        if not p.exists():
            raise WeightsError(f"{p} is missing; build it with `{command}`")
    size = path.stat().st_size
    if "bytes" in entry and size != entry["bytes"]:
        raise WeightsError(f"{path} has {size} bytes, the manifest says {entry['bytes']} (truncated or replaced); "
                           f"rebuild it with `{command}`")
    digest = _sha256(path)
    if digest != entry.get("sha256"):
        raise WeightsError(f"{path} has sha256 {digest[:12]}..., the manifest says {str(entry.get('sha256'))[:12]}... "
                           f"(corrupted or replaced); rebuild it with `{command}`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise WeightsError(f"{path} could not be read as a state dict ({type(error).__name__}: {error}); "
                           f"rebuild it with `{command}`") from error
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} must hold a state dict {{name: Tensor}}, got {type(state).__name__}; "
                           f"rebuild it with `{command}`")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise WeightsError(f"{meta_path} is not readable JSON ({error}); rebuild it with `{command}`") from error
    _check_state_dict(state, model, path, name)
    model.load_state_dict(state, strict=True)
    model.eval()
    return meta


def save(name: str, model: nn.Module, meta: Mapping[str, Any],
         directory: str | os.PathLike | None = None) -> dict:
    """Write ``<name>.pt`` (the state dict on the CPU), ``<name>.json`` and the manifest entry.

    Returns:
        dict: the manifest entry ``{"file", "sha256", "bytes", "meta"}``.
    """
    folder = _directory(directory)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    path, meta_path = folder / f"{name}.pt", folder / f"{name}.json"
    torch.save(state, path)
    entry = {"file": path.name, "sha256": _sha256(path), "bytes": path.stat().st_size, "meta": meta_path.name}
    meta_path.write_text(json.dumps(_jsonable({**meta, **entry}), indent=1) + "\n")
    entries = manifest(folder)
    entries[name] = entry
    (folder / MANIFEST).write_text(json.dumps(dict(sorted(entries.items())), indent=1) + "\n")
    return entry


def _jsonable(value: Any) -> Any:
    """Numbers, strings, lists and dicts only (tensors and NumPy scalars become numbers; nan -> None)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):  # NumPy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__dataclass_fields__"):
        return _jsonable(vars(value))
    return str(value)
