"""lecture_lib.models.rcnn: the separable warp against torchvision's RoI align, the CNN's layout."""

import pytest
import torch
from torchvision.ops import roi_align

from lecture_lib.models.rcnn import RCNN, RCNNConfig, sliding_window_proposals, warp_regions


def _random_boxes(n, height, width, generator):
    """Boxes inside, across and far outside the image, tiny and large, as float64."""
    xy = torch.rand(n, 2, dtype=torch.float64, generator=generator) * torch.tensor([width, height]) * 1.6
    xy = xy - torch.tensor([width, height]) * 0.3
    wh = torch.rand(n, 2, dtype=torch.float64, generator=generator) * torch.tensor([width, height]) + 0.05
    return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize("sampling_ratio", [1, 2, 3, 0, -1])  # <= 0: adaptive
@pytest.mark.parametrize("output_size", [5, 16])
def test_warp_equals_torchvision_roi_align(sampling_ratio, output_size):
    generator = torch.Generator().manual_seed((sampling_ratio + 2) * 100 + output_size)
    images = torch.rand(3, 3, 20, 27, dtype=torch.float64, generator=generator)
    flat = torch.tensor([[3.0, 4.0, 3.0, 9.0], [2.0, 5.0, 8.0, 5.0]], dtype=torch.float64)  # zero width / height
    boxes = [torch.cat([_random_boxes(38, 20, 27, generator), flat]), torch.empty(0, 4, dtype=torch.float64),
             _random_boxes(7, 20, 27, generator)]
    ours = warp_regions(images, boxes, output_size, sampling_ratio)
    expected = roi_align(images, boxes, output_size, spatial_scale=1.0, sampling_ratio=sampling_ratio, aligned=True)
    assert ours.shape == (47, 3, output_size, output_size)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(warp_regions(images, boxes, output_size, sampling_ratio, ops="torchvision"), expected)


def test_warp_gradient_equals_torchvision():
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 16, 12, dtype=torch.float64, generator=generator, requires_grad=True)
    boxes = [_random_boxes(9, 16, 12, generator), _random_boxes(4, 16, 12, generator)]
    weights = torch.rand(13, 3, 8, 8, dtype=torch.float64, generator=generator)
    ours, = torch.autograd.grad((warp_regions(images, boxes, 8) * weights).sum(), images)
    expected, = torch.autograd.grad((roi_align(images, boxes, 8, 1.0, 2, True) * weights).sum(), images)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)


def test_warp_in_chunks():
    """A wide image makes warp_regions split the regions into several products: same crops."""
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(1, 3, 12, 1100, dtype=torch.float64, generator=generator)
    boxes = [_random_boxes(100, 12, 1100, generator)]  # chunks of 2**22 // (3 * 32 * 1100) = 39 regions
    expected = roi_align(images, boxes, 32, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(warp_regions(images, boxes, 32), expected, rtol=0, atol=1e-12)


def test_warp_float32_sliding_windows():
    """The page's case: float32 images, the default sliding windows (to float32 rounding)."""
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    windows = sliding_window_proposals((64, 64))
    expected = roi_align(images, [windows, windows], 32, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(warp_regions(images, [windows, windows], 32), expected, rtol=1e-5, atol=1e-5)


def test_warp_rejects_bad_input():
    image = torch.rand(1, 3, 8, 8)
    box = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    with pytest.raises(TypeError, match="sampling_ratio must be an int"):
        warp_regions(image, [box], 4, sampling_ratio=1.5)
    with pytest.raises(ValueError, match=r"images must be a floating point Tensor\[B, C, H, W\], got \[3, 8, 8\]"):
        warp_regions(image[0], [box], 4)
    with pytest.raises(ValueError, match="x1 <= x2"):
        warp_regions(image, [box.flip(1)], 4)
    with pytest.raises(ValueError, match="one Tensor"):
        warp_regions(image, box, 4)


def test_channels_last_cnn_gives_the_plain_result():
    torch.manual_seed(0)
    model = RCNN(RCNNConfig()).eval()
    image = torch.rand(1, 3, 64, 64)
    crops = warp_regions(image, [sliding_window_proposals((64, 64))], 32)
    with torch.no_grad():
        logits, deltas = model.classify_crops(crops)
        plain = model.predictor(model.fc(model.features(crops.contiguous())))
    torch.testing.assert_close(logits, plain[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(deltas, plain[1], rtol=1e-5, atol=1e-6)


# --- the stored R-CNN's recipe ("rcnn_shapes") ----------------------------------------------------

def test_recipe_scores_the_stored_model_on_the_first_test_scenes():
    from lecture_lib.data.shapes import ShapesDataset
    from lecture_lib.models.rcnn import RCNN_DATA, evaluate_rcnn, rcnn_recipe, rcnn_scenes
    from lecture_lib.weights import load

    scenes = rcnn_scenes("test", 3)
    page = ShapesDataset(3, image_size=64, n_objects=(1, 3), split="test", task="detection")
    for (image, target), (expected, expected_target) in zip(scenes, page):
        torch.testing.assert_close(image, expected)
        torch.testing.assert_close(target["boxes"], expected_target["boxes"])
    recipe = rcnn_recipe()
    model = recipe.build()
    assert model.config.batch_size_per_image == RCNN_DATA["batch_size_per_image"]
    untrained = evaluate_rcnn(model, n_images=8)
    load("rcnn_shapes", model)
    trained = evaluate_rcnn(model, n_images=8)
    assert trained["images"] == 8 and set(trained) == {"voc_map_50", "coco_map", "images"}
    assert untrained["voc_map_50"] < 0.05 < 0.3 < trained["voc_map_50"], (untrained, trained)
