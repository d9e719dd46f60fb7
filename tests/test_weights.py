"""lecture_lib.weights: the stored results are not stale, and every way a file can be wrong raises.

The stale test (one per manifest entry) loads each stored state dict into the model the library
builds today, checks the sha256 and re-evaluates the recipe's check slice: a change to a model
that makes its stored result stale fails here, naming ``make weights NAME=...``.
"""

import importlib.util
import json
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from torch import nn

from lecture_lib import weights
from lecture_lib.weights import RECIPES, Recipe, WeightsError, load, load_or_train, save

ROOT = Path(__file__).resolve().parents[1]
STORED = weights.manifest()
MAX_TOTAL_BYTES = 25 * 1024 * 1024  # issue 20: all stored results together <= 25 MB


# --- the stale test ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STORED))
def test_stored_result_loads_and_reevaluates(name):
    command = f"make weights NAME={name}"
    assert name in RECIPES, f"{name} is stored but has no recipe in lecture_lib/weights/recipes.py"
    recipe = weights.get_recipe(name)
    model = recipe.build()
    try:
        meta = load(name, model)  # sha256, weights_only, same keys and shapes
    except WeightsError as error:
        pytest.fail(f"{error}")
    recorded = meta["metrics"]["check"][recipe.metric]
    assert meta["check_images"] == recipe.check_images, (
        f"{name}: the recipe's check slice changed ({meta['check_images']} -> {recipe.check_images}); run `{command}`")
    again = weights.evaluate(name, model, check_only=True)["check"][recipe.metric]
    assert abs(again - recorded) <= 0.01, (
        f"{name}: {recipe.metric} on the check slice of {recipe.check_images} is now {again:.4f}, "
        f"{recorded:.4f} when it was stored: the stored result is stale, rebuild it with `{command}`")


def test_every_recipe_is_stored():
    missing = sorted(set(RECIPES) - set(STORED))
    assert not missing, "recipes without stored results: " + ", ".join(f"`make weights NAME={n}`" for n in missing)


def test_stored_metadata_is_complete():
    for name, entry in STORED.items():
        meta = json.loads((weights.WEIGHTS_DIR / entry["meta"]).read_text())
        for key in ("recipe", "seed", "train_wall_seconds", "machine", "versions", "metrics", "history"):
            assert key in meta, f"{entry['meta']} lacks {key!r}; rebuild it with `make weights NAME={name}`"
        assert set(meta["metrics"]) == {"test", "check"}
        assert meta["sha256"] == entry["sha256"]


def test_total_size_within_budget():
    files = [p for p in weights.WEIGHTS_DIR.iterdir() if p.suffix in {".pt", ".json"}]
    total = sum(p.stat().st_size for p in files)
    assert total <= MAX_TOTAL_BYTES, f"stored results take {total / 1e6:.1f} MB, the budget is 25 MB"
    listed = {entry["file"] for entry in STORED.values()}
    stray = sorted(p.name for p in files if p.suffix == ".pt" and p.name not in listed)
    assert not stray, f"{stray} are not in manifest.json (left over? run `make weights`)"


def test_weights_ship_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["lecture_lib.weights"]
    assert "*.pt" in patterns and "*.json" in patterns


def test_recipe_strings_name_functions():
    for name, target in RECIPES.items():
        module, sep, function = target.partition(":")
        assert sep and module.startswith("lecture_lib.") and function.isidentifier(), (name, target)


# --- a tiny recipe for the error paths ------------------------------------------------------

_X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
_Y = (_X[:, 0] > 0).long() + (_X[:, 1] > 0).long()


def _tiny_build():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _tiny_train(model, seed):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    model.train()
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(_X), _Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return {"loss": losses}


@torch.no_grad()
def _tiny_evaluate(model, n_images=None):
    n = len(_X) if n_images is None else n_images
    model.eval()
    return {"accuracy": (model(_X[:n]).argmax(1) == _Y[:n]).float().mean().item()}


def tiny_recipe():
    return Recipe(name="tiny", build=_tiny_build, train=_tiny_train, evaluate=_tiny_evaluate,
                  metric="accuracy", check_images=16, seed=3, description="test recipe")


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """Registers 'tiny' and stores it in tmp_path; returns that folder."""
    monkeypatch.setitem(RECIPES, "tiny", f"{__name__}:tiny_recipe")
    model, meta = weights.train("tiny")
    meta["metrics"] = weights.evaluate("tiny", model)
    save("tiny", model, meta, tmp_path)
    return tmp_path


def _expect(match_file, error):
    text = str(error.value)
    assert match_file in text and "make weights NAME=tiny" in text, text


def test_round_trip(tiny):
    model = _tiny_build()
    meta = load("tiny", model, tiny)
    reference = torch.load(tiny / "tiny.pt", weights_only=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    assert not model.training
    assert meta["seed"] == 3 and meta["recipe"].endswith(":tiny_recipe")
    assert len(meta["history"]["loss"]) == 20
    assert meta["metrics"]["check"]["accuracy"] == _tiny_evaluate(model, 16)["accuracy"]
    entry = json.loads((tiny / "manifest.json").read_text())["tiny"]
    import hashlib
    assert entry["sha256"] == hashlib.sha256((tiny / "tiny.pt").read_bytes()).hexdigest()


def test_training_is_seeded(tiny):
    a, _ = weights.train("tiny")
    b = _tiny_build()  # a differently initialized model starts from the recipe's weights too
    weights.train("tiny", b)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, b.state_dict()[key], rtol=0, atol=0)


def test_missing_manifest_entry(tiny):
    with pytest.raises(WeightsError, match="lists no stored result 'other'") as error:
        load("other", _tiny_build(), tiny)
    assert "make weights NAME=other" in str(error.value)
    with pytest.raises(WeightsError, match="lists no stored result"):
        load("tiny", _tiny_build(), tiny / "empty")


@pytest.mark.parametrize("suffix", [".pt", ".json"])
def test_missing_file(tiny, suffix):
    (tiny / f"tiny{suffix}").unlink()
    with pytest.raises(WeightsError, match="is missing") as error:
        load("tiny", _tiny_build(), tiny)
    _expect(f"tiny{suffix}", error)


def test_truncated_file(tiny):
    data = (tiny / "tiny.pt").read_bytes()
    (tiny / "tiny.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated") as error:
        load("tiny", _tiny_build(), tiny)
    _expect("tiny.pt", error)


def test_corrupted_file_same_size(tiny):
    data = bytearray((tiny / "tiny.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tiny / "tiny.pt").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256") as error:
        load("tiny", _tiny_build(), tiny)
    _expect("tiny.pt", error)


def _restore_manifest(folder, name="tiny"):
    """Make the manifest agree with whatever tiny.pt now holds (to reach the checks after sha256)."""
    entries = json.loads((folder / "manifest.json").read_text())
    path = folder / entries[name]["file"]
    import hashlib
    entries[name].update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), bytes=path.stat().st_size)
    (folder / "manifest.json").write_text(json.dumps(entries))


def test_pickled_module_is_refused(tiny):
    torch.save(_tiny_build(), tiny / "tiny.pt")  # a whole module, not a state dict
    _restore_manifest(tiny)
    with pytest.raises(WeightsError, match="could not be read as a state dict") as error:
        load("tiny", _tiny_build(), tiny)
    _expect("tiny.pt", error)


def test_non_state_dict_is_refused(tiny):
    torch.save([torch.zeros(3)], tiny / "tiny.pt")
    _restore_manifest(tiny)
    with pytest.raises(WeightsError, match="must hold a state dict") as error:
        load("tiny", _tiny_build(), tiny)
    _expect("tiny.pt", error)


def test_changed_architecture_is_stale(tiny):
    wider = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(WeightsError, match="shapes differ") as error:
        load("tiny", wider, tiny)
    _expect("tiny.pt", error)
    assert "0.weight: stored [8, 4], model [16, 4]" in str(error.value)
    for key, value in wider.state_dict().items():  # nothing was half-loaded
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    with pytest.raises(WeightsError, match="keys the file lacks") as error:
        load("tiny", nn.Sequential(*_tiny_build(), nn.Linear(3, 3)), tiny)
    _expect("tiny.pt", error)
    with pytest.raises(WeightsError, match="keys the model lacks") as error:
        load("tiny", nn.Sequential(nn.Linear(4, 8)), tiny)
    _expect("tiny.pt", error)


def test_unreadable_json(tiny):
    (tiny / "tiny.json").write_text("{not json")
    with pytest.raises(WeightsError, match="not readable JSON") as error:
        load("tiny", _tiny_build(), tiny)
    _expect("tiny.json", error)
    (tiny / "manifest.json").write_text("[1, 2")
    with pytest.raises(WeightsError, match="manifest"):
        load("tiny", _tiny_build(), tiny)
    (tiny / "manifest.json").write_text("[1, 2]")
    with pytest.raises(WeightsError, match="JSON object"):
        load("tiny", _tiny_build(), tiny)


def test_load_needs_a_module(tiny):
    with pytest.raises(TypeError, match="nn.Module, got dict"):
        load("tiny", {}, tiny)


def test_load_or_train(tiny, monkeypatch):
    monkeypatch.delenv("LECTURE_TRAIN", raising=False)
    stored = _tiny_build()
    meta = load_or_train("tiny", stored, directory=tiny)
    assert meta["source"] == "stored"
    trained = _tiny_build()
    meta = load_or_train("tiny", trained, train_from_scratch=True, directory=tiny / "nowhere")
    assert meta["source"] == "trained" and len(meta["history"]["loss"]) == 20
    for key, value in stored.state_dict().items():  # the same recipe and seed as make weights
        torch.testing.assert_close(trained.state_dict()[key], value, rtol=0, atol=0)
    monkeypatch.setenv("LECTURE_TRAIN", "1")
    assert weights.train_requested() and load_or_train("tiny", _tiny_build(), directory=tiny)["source"] == "trained"
    monkeypatch.setenv("LECTURE_TRAIN", "0")
    assert not weights.train_requested()
    # nothing stored and no training asked for: an error, never an untrained model
    with pytest.raises(WeightsError, match="make weights NAME=tiny"):
        load_or_train("tiny", _tiny_build(), directory=tiny / "nowhere")
    with pytest.raises(ValueError, match="must be what recipe 'tiny' builds"):
        load_or_train("tiny", nn.Linear(4, 3), train_from_scratch=True)


def test_registry_errors(monkeypatch):
    with pytest.raises(WeightsError, match="no recipe named 'nope'"):
        weights.get_recipe("nope")
    monkeypatch.setitem(RECIPES, "bad", "lecture_lib.ensembles.small_cnn")
    with pytest.raises(WeightsError, match="'module.path:function'"):
        weights.get_recipe("bad")
    monkeypatch.setitem(RECIPES, "bad", "lecture_lib.ensembles:no_such_function")
    with pytest.raises(WeightsError, match="has no 'no_such_function'"):
        weights.get_recipe("bad")
    monkeypatch.setitem(RECIPES, "bad", "lecture_lib.ensembles:small_cnn")
    with pytest.raises(TypeError, match="must return a lecture_lib.weights.Recipe, got Sequential"):
        weights.get_recipe("bad")
    monkeypatch.setitem(RECIPES, "renamed", f"{__name__}:tiny_recipe")
    with pytest.raises(WeightsError, match="returned a recipe named 'tiny'"):
        weights.get_recipe("renamed")


def test_recipe_validation():
    good = dict(name="ok", build=_tiny_build, train=_tiny_train, evaluate=_tiny_evaluate, metric="accuracy")
    Recipe(**good)
    for change, error, match in [({"name": "a-b.c"}, ValueError, "identifier"),
                                 ({"build": None}, TypeError, "build must be callable"),
                                 ({"metric": ""}, ValueError, "metric"),
                                 ({"check_images": 0}, ValueError, "check_images"),
                                 ({"check_images": True}, ValueError, "check_images"),
                                 ({"seed": -1}, ValueError, "seed")]:
        with pytest.raises(error, match=match):
            Recipe(**{**good, **change})


def test_evaluate_needs_the_headline_metric(tiny, monkeypatch):
    def wrong():
        return Recipe(name="tiny", build=_tiny_build, train=_tiny_train, evaluate=_tiny_evaluate, metric="map_50")
    monkeypatch.setattr(sys.modules[__name__], "tiny_recipe", wrong)
    with pytest.raises(WeightsError, match="no 'map_50'"):
        weights.evaluate("tiny", _tiny_build())


def test_make_weights_script(monkeypatch, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_weights", ROOT / "scripts" / "make_weights.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setitem(RECIPES, "tiny", f"{__name__}:tiny_recipe")
    assert script.main(["tiny", "--directory", str(tmp_path), "--threads", str(torch.get_num_threads())]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "tiny.json", "tiny.pt"]
    meta = load("tiny", _tiny_build(), tmp_path)
    assert meta["metric"] == "accuracy" and meta["versions"]["torch"] == torch.__version__
    assert meta["metrics"]["test"]["accuracy"] == _tiny_evaluate(_load_tiny(tmp_path))["accuracy"]
    assert "tiny: accuracy" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.main(["no_such_recipe"])


def _load_tiny(folder):
    model = _tiny_build()
    load("tiny", model, folder)
    return model


def test_history_may_be_a_dataclass(monkeypatch):
    from lecture_lib.train import History

    def with_history():
        return Recipe(name="tiny", build=_tiny_build, evaluate=_tiny_evaluate, metric="accuracy",
                      train=lambda model, seed: History(step_loss=[1.0, 0.5], seconds=1.0))
    monkeypatch.setattr(sys.modules[__name__], "tiny_recipe", with_history)
    monkeypatch.setitem(RECIPES, "tiny", f"{__name__}:tiny_recipe")
    _, meta = weights.train("tiny")
    assert meta["history"]["step_loss"] == [1.0, 0.5]

    def with_list():
        return Recipe(name="tiny", build=_tiny_build, evaluate=_tiny_evaluate, metric="accuracy",
                      train=lambda model, seed: [1.0])
    monkeypatch.setattr(sys.modules[__name__], "tiny_recipe", with_list)
    with pytest.raises(TypeError, match="history as a dict, got list"):
        weights.train("tiny")
