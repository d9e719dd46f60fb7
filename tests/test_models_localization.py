"""lecture_lib.models.localization and lecture_lib.data.localization: shapes, losses against
torch.nn.functional, the per-class box selection, IoU against torchvision, a short fit, bad input."""

import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tvops
from torch.utils.data import DataLoader

from lecture_lib.data.localization import (MultiObjectDataset, SingleObjectDataset, denormalize_boxes,
                                           normalize_boxes)
from lecture_lib.data.shapes import ShapesDataset
from lecture_lib.models.localization import (LocalizationConfig, Localizer, MultiObjectConfig,
                                             MultiObjectLocalizer, evaluate_localization,
                                             evaluate_multi_object, localization_forward, localization_loss,
                                             multi_object_forward, multi_object_loss, paired_iou,
                                             select_class_boxes)
from lecture_lib.train import fit

SMALL = dict(widths=(4, 8), hidden=16)


# --- data ---------------------------------------------------------------------------------


def test_single_object_dataset_matches_shapes_scenes():
    data = SingleObjectDataset(6, image_size=(32, 40), seed=3, split="val")
    scenes = ShapesDataset(6, image_size=(32, 40), n_objects=1, seed=3, split="val", task="detection")
    for i in range(6):
        image, target = data[i]
        image_ref, target_ref = scenes[i]
        assert torch.equal(image, image_ref)
        assert target["label"].item() == target_ref["labels"][0].item() - 1  # 0..3 indexes SHAPES
        # boxes as fractions: x / width (40), y / height (32)
        expected = target_ref["boxes"][0] / torch.tensor([40.0, 32.0, 40.0, 32.0])
        torch.testing.assert_close(target["box"], expected)
        torch.testing.assert_close(denormalize_boxes(target["box"], (32, 40)), target_ref["boxes"][0])
    images, targets = next(iter(DataLoader(data, batch_size=4)))
    assert images.shape == (4, 3, 32, 40) and targets["label"].shape == (4,) and targets["box"].shape == (4, 4)


def test_multi_object_dataset_slots_sorted_left_to_right_and_padded():
    data = MultiObjectDataset(12, max_objects=3, image_size=32, seed=1)
    scenes = ShapesDataset(12, image_size=32, n_objects=(1, 3), seed=1, task="detection")
    padded = 0
    for i in range(12):
        _, target = data[i]
        _, ref = scenes[i]
        n = len(ref["labels"])
        assert (target["labels"][:n] > 0).all() and (target["labels"][n:] == 0).all()
        assert (target["boxes"][n:] == 0).all()
        centres = (target["boxes"][:n, 0] + target["boxes"][:n, 2]) / 2
        assert (centres[1:] >= centres[:-1]).all()
        # the same objects, only reordered
        ref_boxes = normalize_boxes(ref["boxes"], (32, 32))
        assert sorted(map(tuple, target["boxes"][:n].tolist())) == sorted(map(tuple, ref_boxes.tolist()))
        padded += n < 3
    assert padded > 0  # the test saw empty slots


def test_dataset_bad_input():
    with pytest.raises(ValueError, match="max_objects must be a positive int, got 0"):
        MultiObjectDataset(4, max_objects=0)
    with pytest.raises(ValueError, match=r"must not exceed max_objects = 2, got \(1, 3\)"):
        MultiObjectDataset(4, max_objects=2, n_objects=(1, 3))


@pytest.mark.parametrize("make", [lambda: SingleObjectDataset(3, image_size=16),
                                  lambda: MultiObjectDataset(3, max_objects=2, image_size=16)])
def test_items_are_kept_and_indexed_like_a_sequence(make):
    data = make()
    first = data[0]
    assert data[0] is first  # built once, then kept
    image = data[-1][0]
    assert torch.equal(image, data[2][0]) and not torch.equal(image, first[0])
    for index in (3, -4):
        with pytest.raises(IndexError, match=f"index {index} out of range for a data set of 3 images"):
            data[index]


# --- heads and losses ---------------------------------------------------------------------


@pytest.mark.parametrize("head, box_shape", [("agnostic", (5, 4)), ("per_class", (5, 4, 4))])
def test_localizer_output_shapes(head, box_shape):
    model = Localizer(LocalizationConfig(num_classes=4, head=head, **SMALL))
    class_logits, boxes = model(torch.rand(5, 3, 32, 32))
    assert class_logits.shape == (5, 4) and boxes.shape == box_shape
    labels, picked = model.predict(torch.rand(5, 3, 32, 32))
    assert labels.shape == (5,) and picked.shape == (5, 4)


def test_per_class_head_has_4c_box_outputs():
    agnostic = Localizer(LocalizationConfig(num_classes=6, head="agnostic", **SMALL))
    per_class = Localizer(LocalizationConfig(num_classes=6, head="per_class", **SMALL))
    assert agnostic.box_regressor.out_features == 4
    assert per_class.box_regressor.out_features == 4 * 6


def test_select_class_boxes_hand_computed():
    boxes = torch.arange(2 * 3 * 4.0).view(2, 3, 4)
    picked = select_class_boxes(boxes, torch.tensor([2, 0]))
    assert picked.tolist() == [[8.0, 9.0, 10.0, 11.0], [12.0, 13.0, 14.0, 15.0]]


def test_predict_uses_the_box_of_the_predicted_class():
    model = Localizer(LocalizationConfig(num_classes=3, head="per_class", **SMALL))
    images = torch.rand(6, 3, 32, 32)
    model.eval()
    class_logits, boxes = model(images)
    labels, picked = model.predict(images)
    assert torch.equal(labels, class_logits.argmax(1))
    torch.testing.assert_close(picked, boxes[torch.arange(6), class_logits.argmax(1)])


def test_localization_loss_equals_cross_entropy_plus_weighted_mse():
    g = torch.Generator().manual_seed(0)
    logits, boxes, target = torch.randn(7, 4, generator=g), torch.rand(7, 4, generator=g), torch.rand(7, 4, generator=g)
    labels = torch.randint(0, 4, (7,), generator=g)
    expected = F.cross_entropy(logits, labels) + 2.5 * ((boxes - target) ** 2).mean()
    torch.testing.assert_close(localization_loss(logits, boxes, labels, target, box_weight=2.5), expected)


def test_per_class_loss_trains_only_the_true_class_box():
    g = torch.Generator().manual_seed(1)
    boxes = torch.rand(5, 4, 4, generator=g, requires_grad=True)
    labels = torch.tensor([0, 3, 1, 1, 2])
    localization_loss(torch.randn(5, 4, generator=g), boxes, labels, torch.rand(5, 4, generator=g)).backward()
    has_grad = boxes.grad.abs().sum(-1) > 0  # [N, C]
    expected = F.one_hot(labels, 4).bool()
    assert torch.equal(has_grad, expected)


def test_multi_object_loss_ignores_boxes_of_empty_slots():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 5, 2, generator=g)  # [N, C, K]
    boxes = torch.rand(3, 2, 4, generator=g, requires_grad=True)
    target = torch.rand(3, 2, 4, generator=g)
    labels = torch.tensor([[1, 0], [2, 4], [0, 0]])
    loss = multi_object_loss(logits, boxes, labels, target, box_weight=3.0)
    occupied = labels > 0
    expected = F.cross_entropy(logits, labels) + 3.0 * F.mse_loss(boxes[occupied], target[occupied])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert (boxes.grad[~occupied] == 0).all() and (boxes.grad[occupied] != 0).any()
    # no object at all: only the classification term
    torch.testing.assert_close(multi_object_loss(logits, boxes, torch.zeros(3, 2, dtype=torch.long), target),
                               F.cross_entropy(logits, torch.zeros(3, 2, dtype=torch.long)))


def test_multi_object_localizer_shapes():
    model = MultiObjectLocalizer(MultiObjectConfig(max_objects=3, num_classes=5, **SMALL))
    class_logits, boxes = model(torch.rand(4, 3, 32, 32))
    assert class_logits.shape == (4, 5, 3) and boxes.shape == (4, 3, 4)
    labels, _ = model.predict(torch.rand(4, 3, 32, 32))
    assert labels.shape == (4, 3)


# --- IoU and evaluation ---------------------------------------------------------------------


def test_paired_iou_equals_torchvision_diagonal():
    g = torch.Generator().manual_seed(4)
    xy = torch.rand(20, 2, generator=g)
    a = torch.cat([xy, xy + torch.rand(20, 2, generator=g)], 1)
    b = a + torch.randn(20, 4, generator=g) * 0.1
    b = torch.cat([torch.min(b[:, :2], b[:, 2:]), torch.max(b[:, :2], b[:, 2:])], 1)
    torch.testing.assert_close(paired_iou(a, b), tvops.box_iou(a, b).diagonal())
    # swapped corners (x2 < x1) are read as the same box
    swapped = b[:, [2, 3, 0, 1]]
    torch.testing.assert_close(paired_iou(a, swapped), tvops.box_iou(a, b).diagonal())
    assert paired_iou(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0,)


class _Oracle(torch.nn.Module):
    """Returns given outputs whatever the images: a stand-in model with known predictions."""

    def __init__(self, class_logits, boxes):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.class_logits, self.boxes = class_logits, boxes

    def predict(self, images):
        return self.class_logits.argmax(1), self.boxes


def test_evaluate_localization_hand_computed():
    images = torch.zeros(2, 3, 8, 8)
    target = {"label": torch.tensor([1, 0]), "box": torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]])}
    # first prediction right class, box shifted by half its width (IoU 1/3); second wrong class, exact box
    logits = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    boxes = torch.tensor([[0.25, 0.0, 0.75, 0.5], [0.0, 0.0, 1.0, 1.0]])
    result = evaluate_localization(_Oracle(logits, boxes), [(images, target)])
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["mean_iou"] == pytest.approx((1 / 3 + 1) / 2)


def test_evaluate_multi_object_hand_computed():
    images = torch.zeros(2, 3, 8, 8)
    target = {"labels": torch.tensor([[1, 0], [2, 3]]), "boxes": torch.tensor(
        [[[0.0, 0.0, 0.5, 0.5], [0, 0, 0, 0]], [[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]]])}
    logits = F.one_hot(torch.tensor([[1, 0], [2, 0]]), 4).permute(0, 2, 1).float()  # second image: 1 object found
    boxes = target["boxes"].clone()
    result = evaluate_multi_object(_Oracle(logits, boxes), [(images, target)])
    assert result["slot_accuracy"] == pytest.approx(3 / 4)
    assert result["mean_iou"] == pytest.approx(1.0)
    assert result["count_accuracy"] == pytest.approx(0.5)


# --- training with lecture_lib.train.fit ------------------------------------------------------


@pytest.mark.parametrize("head", ["agnostic", "per_class"])
def test_fit_reduces_the_localization_loss(head):
    torch.manual_seed(0)
    data = SingleObjectDataset(16, image_size=32)
    model = Localizer(LocalizationConfig(head=head, **SMALL))
    history = fit(model, DataLoader(data, batch_size=16), epochs=25, lr=1e-2, forward_fn=localization_forward,
                  progress=False, device="cpu")
    assert history.step_loss[-1] < 0.6 * history.step_loss[0]
    result = evaluate_localization(model, DataLoader(data, batch_size=16))
    assert 0.0 <= result["mean_iou"] <= 1.0 and 0.0 <= result["accuracy"] <= 1.0


def test_fit_multi_object():
    torch.manual_seed(0)
    data = MultiObjectDataset(16, max_objects=2, image_size=32)
    model = MultiObjectLocalizer(MultiObjectConfig(max_objects=2, **SMALL))
    history = fit(model, DataLoader(data, batch_size=16), epochs=15, lr=1e-2, forward_fn=multi_object_forward,
                  progress=False, device="cpu")
    assert history.step_loss[-1] < history.step_loss[0]
    assert set(evaluate_multi_object(model, DataLoader(data, batch_size=8))) == {
        "slot_accuracy", "mean_iou", "count_accuracy"}


# --- bad input ------------------------------------------------------------------------------


def test_bad_config_and_input():
    with pytest.raises(ValueError, match=r"head must be one of \('agnostic', 'per_class'\), got 'both'"):
        LocalizationConfig(head="both")
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        LocalizationConfig(num_classes=0)
    with pytest.raises(ValueError, match="widths must be a non-empty tuple of positive ints"):
        LocalizationConfig(widths=(8, -1))
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        MultiObjectConfig(num_classes=1)
    model = Localizer(LocalizationConfig(**SMALL))
    with pytest.raises(ValueError, match=r"images must have shape \[N, 3, H, W\], got \[3, 32, 32\]"):
        model(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"boxes must have shape \[N, C, 4\], got \[2, 4\]"):
        select_class_boxes(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must have shape \[2\], got \[3\]"):
        select_class_boxes(torch.zeros(2, 3, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"boxes and target_boxes must have the same shape"):
        localization_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"both have shape \[N, 4\]"):
        paired_iou(torch.zeros(2, 4), torch.zeros(3, 4))
