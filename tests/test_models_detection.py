"""R-CNN, Fast R-CNN, Faster R-CNN: the RPN, the models and their outputs vs torchvision.

The shared parts have their own files: tests/test_proposals.py, tests/test_roi_heads.py."""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.models.detection.rpn import RegionProposalNetwork as TVRegionProposalNetwork
from torchvision.models.detection.rpn import concat_box_prediction_layers

from lecture_lib.anchors import generate_anchors
from lecture_lib.data.shapes import ShapesDataset, collate_detection
from lecture_lib.models.fast_rcnn import FastRCNN, FastRCNNConfig
from lecture_lib.models.faster_rcnn import (
    FasterRCNN,
    FasterRCNNConfig,
    RPNConfig,
    RPNHead,
    generate_proposals,
    label_anchors,
    rpn_loss,
)
from lecture_lib.models.rcnn import (
    RCNN,
    RCNNConfig,
    detection_forward,
    detection_ops,
    selective_search,
    warp_regions,
)


def random_boxes(n, size=64.0, generator=None):
    xy = torch.rand(n, 2, generator=generator) * size * 0.8
    wh = torch.rand(n, 2, generator=generator) * size * 0.4 + 2
    return torch.cat([xy, xy + wh], dim=1)


@pytest.fixture(scope="module")
def batch():
    data = ShapesDataset(4, image_size=32, n_objects=(1, 2), seed=3, task="detection")
    return collate_detection([data[i] for i in range(2)])


TINY_HEAD = dict(widths=(8, 16), hidden=32, batch_size_per_image=16, window_sizes=(12.0,), window_stride=8)


# --- R-CNN's warp -------------------------------------------------------------------------------

def test_warp_regions_is_bilinear_resize():
    image = torch.rand(1, 3, 20, 24, dtype=torch.float64)
    whole = torch.tensor([[0.0, 0.0, 24.0, 20.0]], dtype=torch.float64)
    for size in (8, 30):  # down and up: sampling 1 point per output pixel is F.interpolate's rule
        crops = warp_regions(image, [whole], size, sampling_ratio=1)
        expected = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
        torch.testing.assert_close(crops, expected)
    box = torch.tensor([[4.0, 2.0, 20.0, 18.0]], dtype=torch.float64)  # an inner crop, shrunk 2x
    expected = F.interpolate(image[:, :, 2:18, 4:20], size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(warp_regions(image, [box], 8, sampling_ratio=1), expected)
    ours = warp_regions(image, [box], 8, ops="lecture_lib")
    torch.testing.assert_close(ours, warp_regions(image, [box], 8))
    with pytest.raises(ValueError, match="one Tensor"):
        warp_regions(image, [box, box], 8)


# --- RPN -----------------------------------------------------------------------------------------

def test_label_anchors_by_hand():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    anchors = torch.tensor([[0.0, 0.0, 10.0, 8.0],    # IoU 0.8 with gt 0 -> positive
                            [0.0, 0.0, 10.0, 7.0],    # IoU 0.7 -> positive (>=)
                            [0.0, 0.0, 10.0, 5.0],    # IoU 0.5 -> ignored
                            [0.0, 0.0, 10.0, 3.0],    # IoU 0.3 -> ignored (not < 0.3)
                            [0.0, 0.0, 10.0, 2.0],    # IoU 0.2 -> negative
                            [50.0, 50.0, 60.0, 55.0],  # IoU 0.5 with gt 1, its best anchor -> positive
                            [50.0, 50.0, 60.0, 54.0],  # IoU 0.4 with gt 1 -> ignored
                            [30.0, 30.0, 40.0, 40.0]])  # IoU 0 -> negative
    labels, matched = label_anchors(anchors, gt)
    assert labels.tolist() == [1, 1, -1, -1, 0, 1, -1, 0]
    assert matched[:6].tolist() == [0, 0, 0, 0, 0, 1]
    labels, _ = label_anchors(anchors, gt, allow_low_quality_matches=False)
    assert labels.tolist() == [1, 1, -1, -1, 0, -1, -1, 0]
    # a tie: both anchors are the best of gt 1 -> both positive
    tied = torch.tensor([[50.0, 50.0, 60.0, 55.0], [50.0, 55.0, 60.0, 60.0]])
    assert label_anchors(tied, gt[1:])[0].tolist() == [1, 1]
    assert label_anchors(anchors, gt[:0])[0].tolist() == [0] * 8


def test_label_anchors_equals_torchvision_matcher_and_rpn():
    g = torch.Generator().manual_seed(5)
    anchors = generate_anchors((8, 8), 8, (16, 32), (0.5, 1.0, 2.0))
    rpn = TVRegionProposalNetwork(None, None, 0.7, 0.3, 256, 0.5, dict(training=10, testing=10),
                                  dict(training=10, testing=10), 0.7)
    for _ in range(5):
        gt = random_boxes(3, generator=g)
        tv_labels, tv_matched_boxes = rpn.assign_targets_to_anchors([anchors], [{"boxes": gt}])
        labels, matched = label_anchors(anchors, gt)
        assert torch.equal(labels, tv_labels[0])
        pos = labels == 1  # torchvision reports box 0 for anchors that are not positive
        assert torch.equal(gt[matched][pos], tv_matched_boxes[0][pos])
        tv_matches = Matcher(0.7, 0.3, allow_low_quality_matches=True)(torchvision.ops.box_iou(gt, anchors))
        assert torch.equal(matched[tv_matches >= 0], tv_matches[tv_matches >= 0])


def test_rpn_head_order_matches_anchors_and_torchvision():
    head = RPNHead(8, num_anchors=6)
    features = torch.randn(2, 8, 5, 7)
    objectness, deltas = head(features)
    assert objectness.shape == (2, 5 * 7 * 6) and deltas.shape == (2, 5 * 7 * 6, 4)
    x = F.relu(head.conv(features))
    tv_obj, tv_deltas = concat_box_prediction_layers([head.cls_logits(x)], [head.bbox_pred(x)])
    torch.testing.assert_close(objectness.reshape(-1, 1), tv_obj)
    torch.testing.assert_close(deltas.reshape(-1, 4), tv_deltas)


def test_generate_proposals_equals_torchvision_filter_proposals():
    g = torch.Generator().manual_seed(6)
    anchors = generate_anchors((8, 8), 8, (16, 32), (0.5, 1.0, 2.0))
    rpn = TVRegionProposalNetwork(None, None, 0.7, 0.3, 256, 0.5, dict(training=200, testing=200),
                                  dict(training=50, testing=50), 0.7).eval()
    for _ in range(3):
        objectness, deltas = torch.randn(len(anchors), generator=g), torch.randn(len(anchors), 4, generator=g) * 0.3
        decoded = BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(deltas, anchors)
        tv_boxes, tv_scores = rpn.filter_proposals(decoded[None], objectness[None], [(64, 64)], [len(anchors)])
        for ops in ("torchvision", "lecture_lib"):
            boxes, scores = generate_proposals(anchors, objectness, deltas, (64, 64), 200, 50, 0.7, ops=ops)
            torch.testing.assert_close(boxes, tv_boxes[0])
            torch.testing.assert_close(scores, tv_scores[0])
    # a straightforward oracle: decode -> top-k -> clip -> NMS with torchvision.ops
    top = objectness.topk(100).indices
    ref = torchvision.ops.clip_boxes_to_image(decoded[top], (64, 64))
    keep = torchvision.ops.nms(ref, objectness[top].sigmoid(), 0.5)[:20]
    boxes, _ = generate_proposals(anchors, objectness, deltas, (64, 64), 100, 20, 0.5)
    torch.testing.assert_close(boxes, ref[keep])
    with pytest.raises(ValueError, match="objectness must be"):
        generate_proposals(anchors, objectness[:5], deltas, (64, 64))


def test_rpn_loss_equals_torchvision_compute_loss():
    g = torch.Generator().manual_seed(7)
    anchors = generate_anchors((8, 8), 8, (16, 32), (0.5, 1.0, 2.0))
    targets = [{"boxes": random_boxes(2, generator=g)}, {"boxes": random_boxes(3, generator=g)}]
    objectness, deltas = torch.randn(2, len(anchors), generator=g), torch.randn(2, len(anchors), 4, generator=g)
    # a batch larger than the anchors: every labelled anchor is sampled, so no randomness is left
    config = RPNConfig(batch_size_per_image=100_000, positive_fraction=0.5)
    ours = rpn_loss(objectness, deltas, anchors, targets, config)
    rpn = TVRegionProposalNetwork(None, None, 0.7, 0.3, 100_000, 0.5, dict(training=10, testing=10),
                                  dict(training=10, testing=10), 0.7)
    labels, matched = rpn.assign_targets_to_anchors([anchors, anchors], targets)
    regression = rpn.box_coder.encode(matched, [anchors, anchors])
    theirs = rpn.compute_loss(objectness.reshape(-1, 1), deltas.reshape(-1, 4), labels, regression)
    torch.testing.assert_close(torch.stack(ours), torch.stack(theirs))


# --- the models ----------------------------------------------------------------------------------

def _models():
    torch.manual_seed(0)
    rpn = RPNConfig(anchor_sizes=(12.0,), pre_nms_top_n=(100, 50), post_nms_top_n=(30, 20))
    return [RCNN(RCNNConfig(warp_size=16, **TINY_HEAD)),
            FastRCNN(FastRCNNConfig(roi_size=3, **TINY_HEAD)),
            FasterRCNN(FasterRCNNConfig(head=FastRCNNConfig(roi_size=3, bg_iou_low=0.0, **TINY_HEAD), rpn=rpn))]


def test_output_shapes_train_and_eval(batch):
    images, targets = batch
    for model in _models():
        losses = model.train()(images, targets)
        expected = {"loss_classifier", "loss_box_reg"}
        if isinstance(model, FasterRCNN):
            expected |= {"loss_objectness", "loss_rpn_box_reg"}
        assert set(losses) == expected and all(v.dim() == 0 and math.isfinite(v.item()) for v in losses.values())
        with torch.no_grad():
            detections = model.eval()(images)
        assert len(detections) == 2
        for d in detections:
            n = d["boxes"].shape[0]
            assert d["boxes"].shape == (n, 4) and d["scores"].shape == (n,) and d["labels"].dtype == torch.int64
            assert ((d["labels"] >= 1) & (d["labels"] <= 4)).all() and (d["scores"][:-1] >= d["scores"][1:]).all()
            assert (d["boxes"][:, 2:] <= 32).all() and (d["boxes"] >= 0).all()


def test_empty_image_and_explicit_proposals(batch):
    images, _ = batch
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    for model in _models():
        losses = model.train()(images, targets)
        assert losses["loss_box_reg"].item() == 0  # no object: only the classifier learns
    model = _models()[1].eval()
    proposals = [torch.tensor([[2.0, 2.0, 20.0, 20.0]]), torch.zeros(0, 4)]
    with torch.no_grad():
        detections = model(images, proposals=proposals)
    assert detections[1]["boxes"].shape == (0, 4) and detections[0]["boxes"].shape[0] <= 4


def test_losses_decrease_on_a_tiny_batch(batch):
    for model in _models():
        torch.manual_seed(0)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        first = last = None
        for _ in range(15):
            loss, *_ = detection_forward(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            first = loss.item() if first is None else first
            last = loss.item()
        assert last < 0.7 * first, (type(model).__name__, first, last)


def test_fit_trains_a_detector_with_detection_forward():
    from lecture_lib.train import fit

    data = ShapesDataset(4, image_size=32, n_objects=(1, 2), seed=3, task="detection")
    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=collate_detection)
    history = fit(_models()[2], loader, epochs=1, forward_fn=detection_forward, metric=None, progress=False,
                  device="cpu")
    assert len(history.step_loss) == 2 and all(math.isfinite(v) for v in history.step_loss)


def test_both_kernel_sets_give_the_same_detections(batch):
    images, _ = batch
    torch.manual_seed(1)
    config = FasterRCNNConfig(head=FastRCNNConfig(roi_size=3, bg_iou_low=0.0, score_threshold=0.0, **TINY_HEAD),
                              rpn=RPNConfig(anchor_sizes=(12.0,), pre_nms_top_n=(100, 60), post_nms_top_n=(30, 20)))
    fast = FasterRCNN(config).eval()
    config.head.ops = "lecture_lib"
    slow = FasterRCNN(config).eval()
    slow.load_state_dict(fast.state_dict())
    with torch.no_grad():
        for a, b in zip(fast(images), slow(images)):
            torch.testing.assert_close(a["boxes"], b["boxes"])
            torch.testing.assert_close(a["scores"], b["scores"])
            assert torch.equal(a["labels"], b["labels"])


def test_bad_input_raises_clear_errors(batch):
    images, targets = batch
    model = _models()[2]
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, H, W\], got \[3, 32, 32\]"):
        model(images[0], targets)
    with pytest.raises(TypeError, match="floating point"):
        model.eval()(images.to(torch.uint8))
    with pytest.raises(ValueError, match="targets must be given in training mode"):
        model.train()(images)
    with pytest.raises(ValueError, match="targets must be a list of 2 dicts"):
        model(images, targets[:1])
    with pytest.raises(ValueError, match=r"must be in \[1, 4\]"):
        model(images, [{"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]]), "labels": torch.tensor([0])}] * 2)
    with pytest.raises(ValueError, match=r"must have shape \[N, 4\]"):
        model(images, [{"boxes": torch.zeros(1, 5), "labels": torch.tensor([1])}] * 2)
    with pytest.raises(ValueError, match="ops must be one of"):
        FastRCNNConfig(ops="cuda")
    with pytest.raises(ValueError, match="bg_iou_low"):
        RCNNConfig(bg_iou_low=0.6)
    with pytest.raises(ValueError, match="num_classes"):
        FastRCNNConfig(num_classes=1)
    with pytest.raises(ValueError, match="pre_nms_top_n must be a pair"):
        RPNConfig(pre_nms_top_n=100)
    with pytest.raises(ValueError, match="negative_iou"):
        label_anchors(torch.zeros(1, 4), torch.zeros(1, 4), positive_iou=0.3, negative_iou=0.7)
    with pytest.raises(ValueError, match="image must be a Tensor"):
        selective_search(torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="proposals must be a list of 2"):
        _models()[1].eval()(images, proposals=[torch.zeros(0, 4)])
    assert detection_ops("lecture_lib").roi_pool.__module__ == "lecture_lib.roi"


def test_public_names_still_import_from_where_they_were():
    import lecture_lib.models.fast_rcnn as fast_rcnn
    import lecture_lib.models.rcnn as rcnn
    import lecture_lib.models.roi_heads as roi_heads
    import lecture_lib.proposals as proposals

    for name in ("OPS", "detection_ops", "sliding_window_proposals", "selective_search", "warp_regions",
                 "match_proposals", "sample_proposals", "select_training_samples", "detection_loss",
                 "postprocess_detections", "small_cnn", "RCNNConfig", "RCNN", "detection_forward"):
        assert name in rcnn.__all__ and hasattr(rcnn, name)
    # one object, one home: the old names are the same objects, not copies
    assert rcnn.sliding_window_proposals is proposals.sliding_window_proposals
    assert rcnn.select_training_samples is roi_heads.select_training_samples
    assert fast_rcnn.FastRCNNHead is roi_heads.RoIHead


# --- the chapter's recipe -----------------------------------------------------------------------

def test_scene_config_fits_the_scenes_and_scales_with_the_image():
    from lecture_lib.models.faster_rcnn import scene_config

    config = scene_config(128, 5)
    assert config.head.num_classes == 5 and config.head.stride == 4 and config.head.roi_op == "align"
    assert config.rpn.anchor_sizes == (12.0, 18.0, 27.0, 40.0, 60.0) and config.rpn.aspect_ratios == (1.0,)
    assert scene_config(64, 3).rpn.anchor_sizes == (6.0, 9.0, 13.5, 20.0, 30.0)
    # every object of the scene set has an anchor it overlaps with IoU >= 0.5 (most >= 0.7)
    from lecture_lib.data.shapes import preset_dataset

    model = FasterRCNN(config)
    anchors = model.rpn.anchors((32, 32))
    data = preset_dataset("scenes128", 20, split="val", task="detection")
    boxes = torch.cat([data[i][1]["boxes"] for i in range(20)])
    best = torchvision.ops.box_iou(boxes, anchors).max(dim=1).values
    assert best.min() >= 0.5 and (best >= 0.7).float().mean() > 0.8
    features = model.backbone(torch.zeros(2, 3, 128, 128))
    assert features.shape == (2, config.head.feature_channels, 32, 32)
    with pytest.raises(ValueError, match="image_size must be at least 32"):
        scene_config(16, 5)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        scene_config(128, 0)


def test_torchvision_twin_has_the_same_backbone_and_anchors():
    from lecture_lib.models.faster_rcnn import scene_config, torchvision_faster_rcnn

    config = scene_config(64, 3)
    twin = torchvision_faster_rcnn(config, image_size=64)
    ours = FasterRCNN(config)
    assert {k[len("backbone.body."):] for k in twin.state_dict() if k.startswith("backbone.body.")} == \
        {k[len("backbone."):] for k in ours.state_dict() if k.startswith("backbone.")}
    images = torch.rand(2, 3, 64, 64)
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([1])}] * 2
    losses = twin.train()(images, targets)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    out = twin.eval()(images)
    assert len(out) == 2 and set(out[0]) == {"boxes", "scores", "labels"}


def test_recipes_describe_the_stored_detectors():
    from lecture_lib.models.faster_rcnn import SCENE_DATA, faster_rcnn_recipe
    from lecture_lib.models.mask_rcnn import MaskRCNN, mask_rcnn_recipe

    recipe = faster_rcnn_recipe()
    assert recipe.name == "faster_rcnn_scenes" and recipe.metric == "voc_map_50"
    assert isinstance(recipe.build(), FasterRCNN) and SCENE_DATA["seconds"] == 360.0
    mask = mask_rcnn_recipe()
    assert mask.name == "mask_rcnn_scenes" and mask.metric == "mask_map" and isinstance(mask.build(), MaskRCNN)
    assert mask.build().config.mask_aligned
