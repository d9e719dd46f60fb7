"""Mask R-CNN: mask targets, loss, pasting, mask IoU and the model vs torchvision / pycocotools."""

import math

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection import roi_heads as tv

from lecture_lib.data.shapes import ShapesDataset
from lecture_lib.models.fast_rcnn import FastRCNNConfig
from lecture_lib.models.faster_rcnn import FasterRCNNConfig, RPNConfig
from lecture_lib.models.mask_rcnn import (
    MaskHead,
    MaskRCNN,
    MaskRCNNConfig,
    instance_targets,
    mask_iou,
    mask_loss,
    matched_mask_ious,
    paste_masks_in_image,
    project_masks_on_boxes,
)
from lecture_lib.models.rcnn import detection_forward


def random_boxes(n, size=32.0, generator=None):
    xy = torch.rand(n, 2, generator=generator) * size * 0.7
    wh = torch.rand(n, 2, generator=generator) * size * 0.4 + 1
    return torch.cat([xy, xy + wh], dim=1)


def tiny_config(**kwargs):
    head = FastRCNNConfig(widths=(8, 16), roi_size=3, hidden=32, bg_iou_low=0.0, batch_size_per_image=16)
    rpn = RPNConfig(anchor_sizes=(12.0,), pre_nms_top_n=(100, 50), post_nms_top_n=(30, 20))
    return MaskRCNNConfig(head=head, rpn=rpn, mask_roi_size=7, mask_widths=(16,), **kwargs)


@pytest.fixture(scope="module")
def batch():
    data = ShapesDataset(2, image_size=32, n_objects=(1, 2), seed=3, task="detection")
    return instance_targets(data, range(2))


# --- targets and loss ----------------------------------------------------------------------------

@pytest.mark.parametrize("ops", ["torchvision", "lecture_lib"])
def test_project_masks_on_boxes_equals_torchvision(ops):
    g = torch.Generator().manual_seed(0)
    gt_masks = torch.rand(3, 32, 32, generator=g) > 0.5
    boxes = random_boxes(7, generator=g)
    matched = torch.randint(0, 3, (7,), generator=g)
    ours = project_masks_on_boxes(gt_masks, boxes, matched, 6, ops=ops)
    torch.testing.assert_close(ours, tv.project_masks_on_boxes(gt_masks, boxes, matched, 6))
    assert project_masks_on_boxes(gt_masks, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 6).shape == (0, 6, 6)


def test_project_masks_by_hand():
    # left half (columns 0-3) of an 8 x 8 mask; box = whole image, M = 2. RoI align (aligned=False)
    # reads pixel c at coordinate c; 8 / 2 = 4 px per bin -> 4 x 4 samples at 0.5, 1.5, 2.5, 3.5
    # (left bin): 1, 1, 1 and (pixel 3 + pixel 4) / 2 = 0.5 -> 0.875; the right bin sees zeros.
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[:, :, :4] = True
    target = project_masks_on_boxes(mask, torch.tensor([[0.0, 0.0, 8.0, 8.0]]), torch.tensor([0]), 2)
    torch.testing.assert_close(target, torch.tensor([[[0.875, 0.0], [0.875, 0.0]]]))


def test_mask_loss_equals_torchvision_and_decouples_classes():
    g = torch.Generator().manual_seed(1)
    gt_masks = [torch.rand(2, 32, 32, generator=g) > 0.5, torch.rand(3, 32, 32, generator=g) > 0.5]
    gt_labels = [torch.tensor([1, 3]), torch.tensor([2, 2, 4])]
    proposals = [random_boxes(4, generator=g), random_boxes(5, generator=g)]
    matched = [torch.tensor([0, 1, 1, 0]), torch.tensor([2, 0, 1, 2, 1])]
    logits = torch.randn(9, 5, 14, 14, generator=g, requires_grad=True)
    ours = mask_loss(logits, proposals, gt_masks, gt_labels, matched)
    torch.testing.assert_close(ours, tv.maskrcnn_loss(logits, proposals, gt_masks, gt_labels, matched))
    # only the mask of the true class counts: the gradient is zero on every other channel
    ours.backward()
    true_class = torch.cat([lab[i] for lab, i in zip(gt_labels, matched)])
    used = F.one_hot(true_class, 5).bool()
    assert (logits.grad.abs().sum((2, 3))[~used] == 0).all() and (logits.grad.abs().sum((2, 3))[used] > 0).all()


def test_mask_loss_by_hand_and_empty():
    # zero logits: BCE = log 2 whatever the target
    masks = [torch.rand(1, 16, 16) > 0.5]
    loss = mask_loss(torch.zeros(2, 3, 4, 4), [random_boxes(2, 16.0)], masks, [torch.tensor([2])],
                     [torch.tensor([0, 0])])
    assert loss.item() == pytest.approx(math.log(2))
    # no positive RoI: 0 that keeps the graph, as torchvision
    logits = torch.randn(0, 3, 4, 4, requires_grad=True)
    args = ([torch.zeros(0, 4)], [torch.zeros(0, 16, 16)], [torch.zeros(0, dtype=torch.int64)],
            [torch.zeros(0, dtype=torch.int64)])
    loss = mask_loss(logits, *args)
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    assert loss.item() == tv.maskrcnn_loss(logits, *args).item()


# --- inference -----------------------------------------------------------------------------------

@pytest.mark.parametrize("padding", [0, 1, 2])
def test_paste_masks_equals_torchvision(padding):
    g = torch.Generator().manual_seed(2)
    boxes = torch.cat([random_boxes(6, 40.0, generator=g),
                       torch.tensor([[0.0, 0.0, 40.0, 30.0], [35.5, 25.2, 40.0, 30.0], [-1.0, 3.0, 4.5, 9.9]])])
    masks = torch.rand(9, 1, 7, 7, generator=g)
    ours = paste_masks_in_image(masks, boxes, (30, 40), padding=padding)
    assert ours.shape == (9, 1, 30, 40)
    torch.testing.assert_close(ours, tv.paste_masks_in_image(masks, boxes, (30, 40), padding=padding))
    assert paste_masks_in_image(torch.zeros(0, 1, 7, 7), torch.zeros(0, 4), (30, 40)).shape == (0, 1, 30, 40)
    ones = paste_masks_in_image(torch.ones(5, 1, 28, 28), torch.rand(5, 4).sort(dim=1).values * 60, (64, 64))
    assert ones.max() <= 1.0  # probabilities stay probabilities


def test_paste_masks_by_hand():
    # padding 0: the box (2, 3, 5, 7) covers columns 2..5 and rows 3..7 (the legacy "+1" pixel)
    pasted = paste_masks_in_image(torch.ones(1, 1, 4, 4), torch.tensor([[2.0, 3.0, 5.0, 7.0]]), (10, 10), padding=0)
    expected = torch.zeros(10, 10)
    expected[3:8, 2:6] = 1
    torch.testing.assert_close(pasted[0, 0], expected)


def test_mask_iou_equals_pycocotools():
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(4, 12, 10, generator=g) > 0.6, torch.rand(3, 12, 10, generator=g) > 0.3
    rle = lambda m: mask_utils.encode(np.asfortranarray(m.permute(1, 2, 0).numpy().astype(np.uint8)))  # noqa: E731
    expected = mask_utils.iou(rle(a), rle(b), [0, 0, 0])
    torch.testing.assert_close(mask_iou(a, b), torch.tensor(expected, dtype=torch.float32))
    assert mask_iou(a, torch.zeros(0, 12, 10, dtype=torch.bool)).shape == (4, 0)


def test_matched_mask_ious_by_hand():
    true = torch.zeros(2, 8, 8, dtype=torch.bool)
    true[0, :4, :4] = True
    true[1, 4:, 4:] = True
    target = {"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0], [4.0, 4.0, 8.0, 8.0]]), "labels": torch.tensor([1, 2]),
              "masks": true}
    found = torch.zeros(3, 1, 8, 8)
    found[0, 0, :4, :4] = 0.9          # object 0 exactly: IoU 1
    found[1, 0, 4:, 4:6] = 0.8         # half of object 1: IoU 0.5
    found[2, 0, :4, :4] = 1.0          # a duplicate of object 0 with a lower score: no second match
    pred = {"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0], [4.0, 4.0, 8.0, 8.0], [0.0, 0.0, 4.0, 4.0]]),
            "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([1, 2, 1]), "masks": found}
    torch.testing.assert_close(matched_mask_ious([pred], [target]).sort().values, torch.tensor([0.5, 1.0]))
    assert matched_mask_ious([pred], [target], score_threshold=0.95).shape == (0,)


# --- the modules ---------------------------------------------------------------------------------

def test_mask_head_shapes_and_both_kernel_sets():
    torch.manual_seed(0)
    head = MaskHead(16, 5, stride=4, roi_size=7, widths=(8, 8))
    slow = MaskHead(16, 5, stride=4, roi_size=7, widths=(8, 8), ops="lecture_lib")
    slow.load_state_dict(head.state_dict())
    features = torch.randn(2, 16, 8, 8)
    boxes = [random_boxes(3), random_boxes(2)]
    out = head(features, boxes)
    assert out.shape == (5, 5, 14, 14) and isinstance(head.upsample, torch.nn.ConvTranspose2d)
    torch.testing.assert_close(slow(features, boxes), out)
    assert head(features, [torch.zeros(0, 4), torch.zeros(0, 4)]).shape == (0, 5, 14, 14)


def test_train_and_eval_outputs_match_torchvision_inference(batch):
    images, targets = batch
    torch.manual_seed(0)
    model = MaskRCNN(tiny_config())
    losses = model.train()(images, targets)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}
    assert all(v.dim() == 0 and math.isfinite(v.item()) for v in losses.values())
    model.eval()
    with torch.no_grad():
        detections = model(images)
        features = model.backbone(images)
        logits = model.mask_head(features, [d["boxes"] for d in detections])
    probs = tv.maskrcnn_inference(logits, [d["labels"] for d in detections])
    for d, p in zip(detections, probs):
        n = d["boxes"].shape[0]
        assert d["masks"].shape == (n, 1, 32, 32) and d["masks"].dtype == torch.float32
        assert ((d["masks"] >= 0) & (d["masks"] <= 1)).all()
        torch.testing.assert_close(d["masks"], tv.paste_masks_in_image(p, d["boxes"], (32, 32)))


def test_no_objects_gives_zero_mask_loss_with_a_graph(batch):
    images, _ = batch
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, 32, 32, dtype=torch.bool)}
    losses = MaskRCNN(tiny_config()).train()(images, [empty, empty])
    assert losses["loss_mask"].item() == 0 and losses["loss_mask"].requires_grad
    sum(losses.values()).backward()


def test_training_decreases_the_mask_loss(batch):
    torch.manual_seed(0)
    model = MaskRCNN(tiny_config()).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(40):
        loss, *_, losses = detection_forward(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(losses["loss_mask"].item())
    assert np.mean(history[-5:]) < 0.7 * np.mean(history[:5]), history


def test_bad_input_raises_clear_errors(batch):
    images, targets = batch
    model = MaskRCNN(tiny_config()).train()
    no_masks = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    with pytest.raises(ValueError, match=r"targets\[0\] must have 'masks'"):
        model(images, no_masks)
    wrong_size = [{**t, "masks": t["masks"][:, :16]} for t in targets]
    with pytest.raises(ValueError, match=r"must match the image size \[32, 32\], got masks of size \[16, 32\]"):
        model(images, wrong_size)
    wrong_count = [{**t, "masks": torch.zeros(5, 32, 32, dtype=torch.bool)} for t in targets]
    with pytest.raises(ValueError, match="one mask per box"):
        model(images, wrong_count)
    with pytest.raises(TypeError, match="must be a torch.Tensor of shape"):
        model(images, [{**t, "masks": t["masks"].tolist()} for t in targets])
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, H, W\]"):
        model(images[0], targets)
    with pytest.raises(TypeError, match="config must be a MaskRCNNConfig"):
        MaskRCNN(FasterRCNNConfig())
    with pytest.raises(ValueError, match="mask_roi_size must be a positive int"):
        MaskRCNNConfig(mask_roi_size=0)
    with pytest.raises(ValueError, match="mask_widths"):
        MaskRCNNConfig(mask_widths=())
    with pytest.raises(ValueError, match=r"masks must have shape \[N, 1, M, M\], got \[2, 7, 7\]"):
        paste_masks_in_image(torch.zeros(2, 7, 7), torch.zeros(2, 4), (8, 8))
    with pytest.raises(ValueError, match="one row per mask"):
        paste_masks_in_image(torch.zeros(2, 1, 7, 7), torch.zeros(3, 4), (8, 8))
    with pytest.raises(ValueError, match=r"matched_idxs must be in \[0, 1\]"):
        project_masks_on_boxes(torch.zeros(2, 8, 8), torch.zeros(1, 4), torch.tensor([2]), 4)
    with pytest.raises(ValueError, match="mask_logits has 3 masks but the proposals hold 2 boxes"):
        mask_loss(torch.zeros(3, 2, 4, 4), [torch.zeros(2, 4)], [torch.zeros(1, 8, 8)], [torch.tensor([1])],
                  [torch.zeros(2, dtype=torch.int64)])
    with pytest.raises(ValueError, match="must match the image size"):
        mask_iou(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match="one dict per image, got lengths 1 and 0"):
        matched_mask_ious([{}], [])
    with pytest.raises(ValueError, match=r"preds\[0\] and targets\[0\] must both have 'masks'"):
        matched_mask_ious([{"boxes": torch.zeros(0, 4)}], [targets[0]])


def test_aligned_masks_survive_the_round_trip_through_28_x_28():
    # torchvision's conventions (aligned=False) shift masks by half a pixel: on the 128-pixel scenes
    # a perfect 28 x 28 mask pasted back keeps a mean IoU of about 0.92; aligned=True about 0.997
    from lecture_lib.data.shapes import preset_dataset
    from lecture_lib.metrics.masks import mask_iou as iou

    scenes = preset_dataset("scenes128", 6, split="test")
    means = {}
    for aligned in (False, True):
        ious = []
        for i in range(len(scenes)):
            s = scenes.scene(i)
            m = project_masks_on_boxes(s.instance_masks, s.boxes, torch.arange(len(s.boxes)), 28, aligned=aligned)
            pasted = paste_masks_in_image(m[:, None], s.boxes, (128, 128), aligned=aligned)
            ious += iou(pasted[:, 0] >= 0.5, s.instance_masks).diag().tolist()
        means[aligned] = sum(ious) / len(ious)
    assert means[True] > 0.98 and means[True] > means[False] + 0.03


def test_aligned_paste_fills_its_box_exactly():
    boxes = torch.tensor([[2.0, 3.0, 9.0, 7.0], [0.0, 0.0, 12.0, 10.0]])
    pasted = paste_masks_in_image(torch.ones(2, 1, 28, 28), boxes, (10, 12), aligned=True)
    expected = torch.zeros(2, 1, 10, 12)
    expected[0, 0, 3:7, 2:9] = 1
    expected[1] = 1
    torch.testing.assert_close(pasted, expected)
    assert paste_masks_in_image(torch.ones(0, 1, 28, 28), boxes[:0], (10, 12), aligned=True).shape == (0, 1, 10, 12)
    # the mask's left half lands on the box's left half
    half = torch.zeros(1, 1, 28, 28)
    half[..., :14] = 1
    pasted = paste_masks_in_image(half, torch.tensor([[0.0, 0.0, 8.0, 4.0]]), (4, 8), aligned=True)
    assert pasted[0, 0, :, :4].min() == 1 and pasted[0, 0, :, 4:].max() == 0


def test_mask_rcnn_aligned_config_trains_and_predicts():
    data = ShapesDataset(2, image_size=32, n_objects=(1, 2), seed=1)
    images, targets = instance_targets(data, range(2))
    config = MaskRCNNConfig(head=FastRCNNConfig(widths=(8, 16), hidden=32, batch_size_per_image=16,
                                                roi_op="align"), mask_widths=(8,), mask_aligned=True)
    model = MaskRCNN(config)
    losses = model(images, targets)
    assert set(losses) >= {"loss_mask"} and torch.isfinite(losses["loss_mask"])
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert out[0]["masks"].shape[1:] == (1, 32, 32)


def test_aligned_paste_keeps_probabilities_in_range():
    g = torch.Generator().manual_seed(3)
    masks = torch.rand(20, 1, 28, 28, generator=g)
    masks[:, :, 5:20, 5:20] = 1.0
    xy = torch.rand(20, 2, generator=g) * 80
    boxes = torch.cat([xy, xy + torch.rand(20, 2, generator=g) * 40 + 3], dim=1)
    pasted = paste_masks_in_image(masks, boxes, (128, 128), aligned=True)
    assert pasted.min() >= 0 and pasted.max() <= 1
