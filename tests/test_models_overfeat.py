"""lecture_lib.models.overfeat: the convolutional network equals the FC network on every window."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lecture_lib.data.localization import SingleObjectDataset
from lecture_lib.models.localization import evaluate_localization, localization_forward
from lecture_lib.models.overfeat import (ConvOverfeat, OverfeatConfig, OverfeatNet, fc_to_conv, sliding_windows,
                                         window_boxes_to_image)
from lecture_lib.train import fit

SMALL = dict(widths=(4, 8, 8), hidden=12)


def explicit_windows(model, image, stride):
    """The most literal reference: a Python loop over window positions, one crop at a time."""
    w = model.config.window
    rows = (image.shape[-2] - w) // stride + 1
    cols = (image.shape[-1] - w) // stride + 1
    scores = torch.empty(model.config.num_classes, rows, cols, dtype=image.dtype)
    boxes = torch.empty(4, rows, cols, dtype=image.dtype)
    for i in range(rows):
        for j in range(cols):
            crop = image[None, :, i * stride : i * stride + w, j * stride : j * stride + w]
            logits, box = model(crop)
            scores[:, i, j], boxes[:, i, j] = logits[0], box[0]
    return scores, boxes


@pytest.mark.parametrize("image_size", [(32, 32), (40, 56), (75, 64)])
@pytest.mark.parametrize("seed", range(2))
def test_conv_version_equals_fc_net_on_every_window(image_size, seed):
    torch.manual_seed(seed)
    model = OverfeatNet(OverfeatConfig(num_classes=3, window=32, **SMALL)).double().eval()
    conv = fc_to_conv(model)
    images = torch.randn(2, 3, *image_size, dtype=torch.float64)
    class_map, box_map = conv(images)
    rows, cols = (image_size[0] - 32) // 8 + 1, (image_size[1] - 32) // 8 + 1
    assert class_map.shape == (2, 3, rows, cols) and box_map.shape == (2, 4, rows, cols)
    for n in range(2):
        scores, boxes = explicit_windows(model, images[n], stride=8)
        torch.testing.assert_close(class_map[n], scores, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(box_map[n], boxes, rtol=1e-12, atol=1e-12)
    # the batched sliding-window helper (the benchmark's baseline) is the same thing
    torch.testing.assert_close(sliding_windows(model, images), (class_map, box_map), rtol=1e-12, atol=1e-12)


def test_float32_equal_to_rounding():
    torch.manual_seed(3)
    model = OverfeatNet(OverfeatConfig(window=24, widths=(8, 16), hidden=32)).eval()
    images = torch.rand(3, 3, 64, 48)
    torch.testing.assert_close(fc_to_conv(model)(images), sliding_windows(model, images))


def test_on_a_window_sized_image_it_is_the_classifier():
    torch.manual_seed(4)
    model = OverfeatNet(OverfeatConfig(**SMALL)).eval()
    x = torch.rand(5, 3, 32, 32)
    class_map, box_map = fc_to_conv(model)(x)
    logits, boxes = model(x)
    assert class_map.shape == (5, 4, 1, 1)
    torch.testing.assert_close(class_map[:, :, 0, 0], logits)
    torch.testing.assert_close(box_map[:, :, 0, 0], boxes)


def test_weights_are_reshaped_not_retrained():
    model = OverfeatNet(OverfeatConfig(**SMALL))
    conv = fc_to_conv(model)
    f = model.config.feature_size
    assert conv.fc.weight.shape == (12, 8, f, f)
    torch.testing.assert_close(conv.fc.weight.flatten(1), model.fc.weight)
    torch.testing.assert_close(conv.classifier.weight[:, :, 0, 0], model.classifier.weight)
    torch.testing.assert_close(conv.box_regressor.bias, model.box_regressor.bias)
    # same as F.linear on the flattened window features == F.conv2d with the reshaped kernel
    feats = torch.randn(2, 8, f, f)
    torch.testing.assert_close(F.conv2d(feats, conv.fc.weight, conv.fc.bias)[:, :, 0, 0],
                               F.linear(feats.flatten(1), model.fc.weight, model.fc.bias))


def test_stride_and_feature_size():
    config = OverfeatConfig(window=32, widths=(16, 32, 64))
    assert config.stride == 8
    assert config.feature_size == 2  # 32 -> 30 -> 15 -> 13 -> 6 -> 4 -> 2


def test_window_boxes_to_image_hand_computed():
    # two windows side by side (stride 8, window 32); each says "the left half of me"
    box_map = torch.tensor([0.0, 0.0, 0.5, 1.0]).view(1, 4, 1, 1).expand(1, 4, 1, 2)
    boxes = window_boxes_to_image(box_map, window=32, stride=8)
    assert boxes.tolist() == [[[[0.0, 0.0, 16.0, 32.0], [8.0, 0.0, 24.0, 32.0]]]]


def test_trains_with_fit_like_a_localizer():
    # OverfeatNet has the (class_logits, boxes) outputs of a class-agnostic Localizer
    torch.manual_seed(0)
    data = SingleObjectDataset(16, image_size=32)
    model = OverfeatNet(OverfeatConfig(**SMALL))
    history = fit(model, DataLoader(data, batch_size=16), epochs=10, lr=1e-2, forward_fn=localization_forward,
                  progress=False, device="cpu")
    assert history.step_loss[-1] < history.step_loss[0]
    result = evaluate_localization(model, DataLoader(data, batch_size=8))
    model.eval()
    labels, boxes = model.predict(torch.stack([data[i][0] for i in range(8)]))
    logits, expected_boxes = model(torch.stack([data[i][0] for i in range(8)]))
    assert torch.equal(labels, logits.argmax(1)) and torch.equal(boxes, expected_boxes)
    assert 0.0 <= result["accuracy"] <= 1.0
    # after training, BatchNorm's running statistics are not the defaults; the copy keeps them
    assert not torch.allclose(model.features[1].running_var, torch.ones(4))
    big = torch.rand(2, 3, 48, 56)
    torch.testing.assert_close(fc_to_conv(model)(big), sliding_windows(model, big))


def test_bad_input():
    with pytest.raises(ValueError, match="window 8 is too small for 3 conv blocks"):
        OverfeatConfig(window=8)
    with pytest.raises(ValueError, match="hidden must be a positive int, got 0"):
        OverfeatConfig(hidden=0)
    model = OverfeatNet(OverfeatConfig(**SMALL))
    with pytest.raises(ValueError, match=r"windows must have shape \[N, 3, 32, 32\], got \[1, 3, 40, 40\]"):
        model(torch.rand(1, 3, 40, 40))
    with pytest.raises(ValueError, match=r"H, W >= 32, got \[1, 3, 20, 64\]"):
        fc_to_conv(model)(torch.rand(1, 3, 20, 64))
    with pytest.raises(ValueError, match=r"H, W >= 32"):
        sliding_windows(model, torch.rand(1, 3, 31, 64))
    with pytest.raises(TypeError, match="model must be an OverfeatNet, got Linear"):
        fc_to_conv(torch.nn.Linear(2, 2))
    assert isinstance(fc_to_conv(model), ConvOverfeat)


# --------------------------------------------------------------------------- multi-scale inference

def _trained_like(seed=5):
    torch.manual_seed(seed)
    model = OverfeatNet(OverfeatConfig(num_classes=3, window=32, **SMALL)).eval()
    return model, fc_to_conv(model)


def test_multiscale_at_scale_one_is_the_map_after_nms():
    from lecture_lib.models.overfeat import multiscale_detections
    from torchvision.ops import batched_nms

    model, conv = _trained_like()
    image = torch.rand(3, 64, 72)
    found = multiscale_detections(conv, image, scales=(1.0,), nms_threshold=0.4, max_detections=1000)
    class_map, box_map = sliding_windows(model, image[None])  # the explicit windows as reference
    probabilities = class_map.softmax(1)[0].flatten(1)
    scores, labels = probabilities.max(0)
    boxes = window_boxes_to_image(box_map, 32, 8)[0].reshape(-1, 4)
    boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])], 1)
    keep = batched_nms(boxes, scores, labels, 0.4)
    torch.testing.assert_close(found["boxes"], boxes[keep], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(found["scores"], scores[keep], rtol=1e-5, atol=1e-6)
    assert found["labels"].tolist() == (labels[keep] + 1).tolist()  # labels 1..C, 0 = background


def test_multiscale_maps_boxes_of_a_resized_image_back():
    from lecture_lib.models.overfeat import multiscale_detections

    model, conv = _trained_like(6)
    image = torch.rand(3, 96, 80)
    found = multiscale_detections(conv, image, scales=(0.5,), nms_threshold=1.0, max_detections=1000)
    small = F.interpolate(image[None], size=(48, 40), mode="bilinear", align_corners=False, antialias=True)
    class_map, box_map = conv(small)
    boxes = window_boxes_to_image(box_map, 32, 8)[0].reshape(-1, 4) * 2  # 48 -> 96, 40 -> 80: x2
    boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])], 1)
    assert len(found["boxes"]) == class_map.shape[-2] * class_map.shape[-1]  # NMS at 1.0 removes nothing
    order = class_map.softmax(1)[0].flatten(1).max(0).values.argsort(descending=True)
    torch.testing.assert_close(found["boxes"], boxes[order], rtol=1e-5, atol=1e-4)


def test_multiscale_merges_scales_and_checks_inputs():
    from lecture_lib.models.overfeat import multiscale_detections

    model, conv = _trained_like(7)
    image = torch.rand(3, 64, 64)
    one = multiscale_detections(conv, image, scales=(1.0,), nms_threshold=1.0, max_detections=10_000)
    both = multiscale_detections(conv, image, scales=(1.0, 0.5), nms_threshold=1.0, max_detections=10_000)
    assert len(one["boxes"]) == 25 and len(both["boxes"]) == 25 + 1  # 5 x 5 windows, then 1 x 1
    none = multiscale_detections(conv, image, scales=(0.25,))  # 16 x 16 < one window: skipped
    assert none["boxes"].shape == (0, 4) and none["labels"].dtype == torch.int64
    with pytest.raises(TypeError, match="ConvOverfeat"):
        multiscale_detections(model, image)
    with pytest.raises(ValueError, match=r"image must be a Tensor\[3, H, W\]"):
        multiscale_detections(conv, image[None])
    with pytest.raises(ValueError, match="scales must be positive"):
        multiscale_detections(conv, image, scales=(1.0, -0.5))
