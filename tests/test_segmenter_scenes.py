"""lecture_lib.train.segmenter_scenes: the chapter's stored result (five segmenters, their budgets,
training and evaluation in one call). The stored files themselves are checked by test_weights.py."""

import pytest
import torch

from lecture_lib.models.fcn import FCN
from lecture_lib.models.unet import UNet, scene_config
from lecture_lib.train import segmenter_scenes as ss
from lecture_lib.weights import Recipe, get_recipe


def test_five_models_with_the_chapter_configs_and_budgets():
    models = ss.scene_segmenters()
    assert tuple(models) == ss.SCENE_MODELS == ("unet", "unet_60s", "fcn32s", "fcn16s", "fcn8s")
    assert isinstance(models["unet"], UNet) and models["unet"].config == scene_config(128, 5)
    assert [models[f"fcn{v}"].config.variant for v in ("32s", "16s", "8s")] == ["32s", "16s", "8s"]
    assert all(isinstance(models[f"fcn{v}"], FCN) for v in ("32s", "16s", "8s"))
    # the FCN / U-Net comparison is at one budget; the headline U-Net gets issue 21's 6 minutes
    assert ss.SCENE_BUDGETS["unet"] == 360.0
    assert len({ss.SCENE_BUDGETS[name] for name in ss.SCENE_MODELS[1:]}) == 1


def test_train_and_evaluate_tiny():
    torch.manual_seed(0)
    models = ss.scene_segmenters()
    history = ss.train_scene_segmenters(models, seed=0, budget_scale=1e-3, n_train=4)
    assert set(history) == set(ss.SCENE_MODELS)
    for name, h in history.items():
        assert h["steps"] >= 1 and len(h["loss"]) >= 1 and h["seconds"] == pytest.approx(ss.SCENE_BUDGETS[name] * 1e-3)
    assert not any(m.training for m in models.values())
    result = ss.evaluate_scene_segmenters(models, n_images=2)
    assert set(result) == {"mean_iou", "pixel_accuracy"} | {f"mean_iou_{n}" for n in ss.SCENE_MODELS[1:]}
    assert all(0 <= v <= 1 for v in result.values())


def test_bad_arguments():
    models = ss.scene_segmenters()
    with pytest.raises(ValueError, match="budget_scale must be > 0, got 0"):
        ss.train_scene_segmenters(models, budget_scale=0)
    del models["fcn8s"]
    with pytest.raises(ValueError, match=r"models must hold .* missing \['fcn8s'\]"):
        ss.train_scene_segmenters(models, budget_scale=1e-3, n_train=2)


def test_recipe():
    recipe = ss.scene_segmenters_recipe()
    assert isinstance(recipe, Recipe) and recipe.name == "segmenters_scenes" and recipe.metric == "mean_iou"
    assert recipe.build().state_dict().keys() == ss.scene_segmenters().state_dict().keys()
    get_recipe("segmenters_scenes", {"segmenters_scenes": "lecture_lib.train.segmenter_scenes:scene_segmenters_recipe"})


def test_half_precision_models_train_in_float32_and_keep_the_rounded_weights():
    torch.manual_seed(0)
    models = ss.scene_segmenters(dtype=torch.float16)
    assert {p.dtype for p in models.parameters()} == {torch.float16}
    before = {k: v.clone() for k, v in models.state_dict().items()}
    ss.train_scene_segmenters(models, budget_scale=1e-3, n_train=4)
    after = models.state_dict()
    assert {p.dtype for p in models.parameters()} == {torch.float16}
    assert any(not torch.equal(before[k], after[k]) for k in before)  # trained
    # a float32 model loaded from the half one computes with exactly the stored values
    full = ss.scene_segmenters()
    full.load_state_dict(after)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = ss._float32(models["fcn8s"]).eval()(x)
        torch.testing.assert_close(full["fcn8s"].eval()(x), expected, rtol=0, atol=0)
    result = ss.evaluate_scene_segmenters(models, n_images=2)
    assert 0 <= result["mean_iou"] <= 1
