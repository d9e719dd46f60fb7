"""lecture_lib.train.segmenter_predict: test-time augmentation against a hand-written average of
the eight views (torch.rot90 / flip), the inference copy against the model itself, bad input."""

import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from torch import nn

from lecture_lib.data.shapes import NUM_CLASSES, preset_dataset
from lecture_lib.models.unet import UNet, UNetConfig
from lecture_lib.train.segmenter import evaluate_segmenter as reexported_evaluate
from lecture_lib.train.segmenter_predict import (
    evaluate_segmenter,
    predict_masks,
    predict_probabilities,
    symmetries,
)


@pytest.fixture(scope="module")
def data():
    scenes = preset_dataset("scenes64", 6, split="test")
    return [(image[:, :32, :32].clone(), mask[:32, :32].clone()) for image, mask in scenes]


def trained_bn_unet(seed=0):
    """A small U-Net whose BatchNorm statistics are not the defaults (so folding them matters)."""
    torch.manual_seed(seed)
    model = UNet(UNetConfig(num_classes=NUM_CLASSES, base_channels=4, depth=2, stem_stride=2))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 3, 32, 32) * 2)
    return model.eval()


def reference_tta(model, images, views):
    """The average of the softmax over the views, each turned back: written out by hand."""
    with torch.no_grad():
        total = torch.zeros(images.shape[0], NUM_CLASSES, *images.shape[2:])
        for turns, mirrored in views:
            x = torch.rot90(images, turns, (2, 3))
            x = torch.flip(x, (3,)) if mirrored else x
            p = model(x).softmax(1)
            p = torch.flip(p, (3,)) if mirrored else p
            total += torch.rot90(p, -turns, (2, 3))
    return total / len(views)


def test_symmetries_are_the_eight_of_the_square_and_four_flips_otherwise():
    assert len(set(symmetries(8, 8))) == 8
    assert set(symmetries(8, 12)) == {(0, False), (0, True), (2, False), (2, True)}
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    seen = set()
    for turns, mirrored in symmetries(4, 4):
        x = torch.rot90(image, turns, (2, 3))
        seen.add(tuple((torch.flip(x, (3,)) if mirrored else x).flatten().tolist()))
    assert len(seen) == 8  # eight distinct images: every symmetry once


def test_predictions_equal_the_model_itself_and_leave_it_untouched(data):
    model = trained_bn_unet()
    model.train()  # predict in eval mode, give the model back as it was
    images = torch.stack([image for image, _ in data])
    with torch.no_grad():
        expected = model.eval()(images).softmax(1)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.testing.assert_close(predict_probabilities(model, images, batch_size=4), expected, atol=1e-5, rtol=1e-4)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(predict_masks(model, images), expected.argmax(1))


@pytest.mark.parametrize("size", [(32, 32), (32, 24)])
def test_tta_equals_the_hand_written_average_of_the_views(data, size):
    model = trained_bn_unet(1)
    images = torch.stack([image[:, :size[0], :size[1]] for image, _ in data])
    views = [(k, m) for k in (range(4) if size[0] == size[1] else (0, 2)) for m in (False, True)]
    expected = reference_tta(model, images, views)
    got = predict_probabilities(model, images, batch_size=4, tta=True)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(predict_masks(model, images, tta=True), expected.argmax(1))
    # it is not the plain prediction: the U-Net is not invariant to the views
    assert not torch.allclose(got, predict_probabilities(model, images), atol=1e-3)


def test_tta_of_an_equivariant_model_is_its_plain_prediction(data):
    torch.manual_seed(0)
    pointwise = nn.Conv2d(3, NUM_CLASSES, 1)  # a 1 x 1 convolution commutes with every view
    images = torch.stack([image for image, _ in data])
    torch.testing.assert_close(predict_probabilities(pointwise, images, tta=True), predict_probabilities(pointwise, images),
                               atol=1e-6, rtol=1e-5)


def test_evaluate_with_tta_equals_sklearn_on_the_tta_masks(data):
    model = trained_bn_unet(2)
    assert reexported_evaluate is evaluate_segmenter
    cm = evaluate_segmenter(model, data, NUM_CLASSES, batch_size=4, tta=True)
    images = torch.stack([image for image, _ in data])
    masks = torch.stack([mask for _, mask in data])
    pred = reference_tta(model, images, symmetries(32, 32)).argmax(1)
    expected = sk_confusion_matrix(masks.flatten(), pred.flatten(), labels=range(NUM_CLASSES))
    assert cm.matrix.tolist() == expected.tolist()


def test_bad_input_is_named(data):
    model = trained_bn_unet()
    images = torch.stack([image for image, _ in data])
    with pytest.raises(TypeError, match="images must be a floating-point tensor, got torch.uint8"):
        predict_masks(model, (images * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0"):
        predict_masks(model, images, batch_size=0)
    with pytest.raises(ValueError, match=r"images must be a Tensor\[N, C, H, W\], got \[3, 32, 32\]"):
        predict_probabilities(model, images[0], tta=True)
    with pytest.raises(ValueError, match="at least one image"):
        predict_probabilities(model, images[:0])
    assert predict_masks(model, images[:0]).shape == (0, 32, 32)


@pytest.mark.parametrize("variant", ["32s", "8s"])
def test_fcn_inference_copy_equals_the_fcn(variant):
    from lecture_lib.models import fcn
    from lecture_lib.train.segmenter_predict import _inference_copy
    from lecture_lib.upsampling import ConvTranspose2d

    torch.manual_seed(0)
    model = fcn.FCN(fcn.scene_config(64, NUM_CLASSES, variant)).eval()
    images = torch.rand(2, 3, 64, 64)
    copy = _inference_copy(model)
    assert not any(type(m) is ConvTranspose2d for m in copy.modules())  # swapped for PyTorch's
    assert any(type(m) is ConvTranspose2d for m in model.modules())     # the model keeps the course's
    with torch.no_grad():
        torch.testing.assert_close(copy(images.contiguous(memory_format=torch.channels_last)), model(images),
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("image_size", [128, 64])
def test_unet_inference_copy_folds_every_batch_norm(image_size):
    # the full-resolution layers are ChannelsLastConv2d: their BatchNorms fold like the others'
    from lecture_lib.models import unet
    from lecture_lib.train.segmenter_predict import _inference_copy

    torch.manual_seed(0)
    model = UNet(unet.scene_config(image_size, NUM_CLASSES))
    with torch.no_grad():  # statistics a trained network could have
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
    model.eval()
    copy = _inference_copy(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in copy.modules())
    images = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(copy(images.contiguous(memory_format=torch.channels_last)), model(images),
                                   atol=1e-4, rtol=1e-4)
