"""lecture_lib.models.roi_heads: matching, sampling, loss, post-processing and the RoI head vs torchvision."""

import pytest
import torch
import torchvision
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss

from lecture_lib.models.fast_rcnn import FastRCNNConfig
from lecture_lib.models.roi_heads import (
    BoxPredictor,
    RoIHead,
    detection_loss,
    detection_ops,
    match_proposals,
    postprocess_detections,
    sample_proposals,
    select_training_samples,
)


def random_boxes(n, size=64.0, generator=None):
    xy = torch.rand(n, 2, generator=generator) * size * 0.8
    wh = torch.rand(n, 2, generator=generator) * size * 0.4 + 2
    return torch.cat([xy, xy + wh], dim=1)


# --- R-CNN / Fast R-CNN training targets ---------------------------------------------------------

def test_match_proposals_thresholds_by_hand():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    proposals = torch.tensor([[0.0, 0.0, 10.0, 10.0],   # IoU 1 -> class 3
                              [0.0, 0.0, 10.0, 5.0],    # IoU 0.5 -> class 3 (>=)
                              [0.0, 0.0, 10.0, 4.0],    # IoU 0.4 -> background
                              [0.0, 0.0, 10.0, 1.0],    # IoU 0.1 -> background (>= 0.1)
                              [0.0, 0.0, 10.0, 0.5],    # IoU 0.05 -> ignored
                              [20.0, 20.0, 30.0, 30.0]])  # IoU 0 -> ignored
    labels, matched = match_proposals(proposals, gt, torch.tensor([3]), 0.5, bg_iou_low=0.1)
    assert labels.tolist() == [3, 3, 0, 0, -1, -1]
    assert torch.equal(matched, gt.expand(6, 4))
    labels, _ = match_proposals(proposals, gt[:0], torch.zeros(0, dtype=torch.int64))
    assert labels.tolist() == [0] * 6


def test_match_proposals_equals_torchvision_roi_heads():
    g = torch.Generator().manual_seed(0)
    heads = RoIHeads(None, None, None, 0.5, 0.5, 64, 0.25, None, 0.05, 0.5, 100)
    for _ in range(5):
        proposals, gt = random_boxes(60, generator=g), random_boxes(4, generator=g)
        gt_labels = torch.randint(1, 5, (4,), generator=g)
        matched_idx, tv_labels = heads.assign_targets_to_proposals([proposals], [gt], [gt_labels])
        labels, matched = match_proposals(proposals, gt, gt_labels)
        assert torch.equal(labels, tv_labels[0])
        fg = labels > 0  # torchvision reports index 0 for background proposals
        assert torch.equal(matched[fg], gt[matched_idx[0]][fg])


def test_sample_proposals_counts_equal_torchvision_sampler():
    g = torch.Generator().manual_seed(1)
    for n_pos, n_neg, n_ign, batch_size, fraction in [(50, 500, 30, 64, 0.25), (3, 500, 0, 64, 0.25),
                                                       (200, 10, 5, 256, 0.5), (0, 0, 10, 16, 0.5),
                                                       (7, 3, 0, 128, 0.25)]:
        labels = torch.cat([torch.randint(1, 5, (n_pos,), generator=g), torch.zeros(n_neg, dtype=torch.int64),
                            torch.full((n_ign,), -1)])[torch.randperm(n_pos + n_neg + n_ign, generator=g)]
        pos, neg = sample_proposals(labels, batch_size, fraction, generator=g)
        tv_pos, tv_neg = BalancedPositiveNegativeSampler(batch_size, fraction)([labels])
        assert (pos.numel(), neg.numel()) == (int(tv_pos[0].sum()), int(tv_neg[0].sum()))
        assert (labels[pos] >= 1).all() and (labels[neg] == 0).all()
        assert len(set(pos.tolist())) == pos.numel() and len(set(neg.tolist())) == neg.numel()
    with pytest.raises(ValueError, match="positive_fraction"):
        sample_proposals(labels, 16, 1.5)


def test_select_training_samples_fraction_and_targets():
    g = torch.Generator().manual_seed(2)
    gt = torch.tensor([[10.0, 10.0, 30.0, 30.0], [40.0, 5.0, 60.0, 40.0]])
    proposals = torch.cat([gt.repeat(20, 1) + torch.randn(40, 4, generator=g), random_boxes(300, generator=g)])
    rois, labels, targets = select_training_samples(proposals, gt, torch.tensor([1, 2]), batch_size_per_image=64,
                                                    positive_fraction=0.25, generator=g)
    n_pos = int((labels > 0).sum())
    assert rois.shape == (64, 4) and n_pos == 16 and (labels[n_pos:] == 0).all()
    # the targets move each positive onto its ground truth: torchvision's BoxCoder decodes them back
    boxes = BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(targets[:n_pos], rois[:n_pos])
    expected = gt[labels[:n_pos] - 1]
    torch.testing.assert_close(boxes, expected, atol=1e-4, rtol=0)
    assert (targets[n_pos:] == 0).all()


def test_detection_loss_equals_torchvision_fastrcnn_loss():
    g = torch.Generator().manual_seed(3)
    logits, deltas = torch.randn(20, 5, generator=g), torch.randn(20, 20, generator=g)
    labels, targets = torch.randint(0, 5, (20,), generator=g), torch.randn(20, 4, generator=g)
    ours = detection_loss(logits, deltas, labels, targets)
    theirs = fastrcnn_loss(logits, deltas, [labels], [targets])
    torch.testing.assert_close(torch.stack(ours), torch.stack(theirs))
    empty = detection_loss(logits[:0], deltas[:0], labels[:0], targets[:0])
    assert empty[0].item() == 0
    with pytest.raises(ValueError, match="box_deltas must have shape"):
        detection_loss(logits, deltas[:, :8], labels, targets)


def test_postprocess_equals_torchvision_roi_heads():
    g = torch.Generator().manual_seed(4)
    heads = RoIHeads(None, None, None, 0.5, 0.5, 64, 0.25, None, 0.05, 0.5, 100)
    for _ in range(3):
        proposals = random_boxes(50, generator=g)
        logits, deltas = torch.randn(50, 5, generator=g) * 2, torch.randn(50, 20, generator=g) * 0.5
        boxes, scores, labels = heads.postprocess_detections(logits, deltas, [proposals], [(64, 64)])
        for ops in ("torchvision", "lecture_lib"):
            out = postprocess_detections(logits, deltas, proposals, (64, 64), ops=ops)
            torch.testing.assert_close(out["boxes"], boxes[0])
            torch.testing.assert_close(out["scores"], scores[0])
            assert torch.equal(out["labels"], labels[0])


# --- the RoI head ---------------------------------------------------------------------------------

@pytest.mark.parametrize("roi_op", ["pool", "align"])
def test_roi_head_pools_like_torchvision_and_runs_the_fc_layers(roi_op):
    g = torch.Generator().manual_seed(5)
    config = FastRCNNConfig(widths=(8, 16), hidden=32, roi_size=4, roi_op=roi_op)
    head = RoIHead(config).eval()
    features = torch.randn(2, 16, 8, 8, generator=g)  # stride 2 for widths of two stages
    rois = [random_boxes(5, size=16, generator=g), random_boxes(3, size=16, generator=g)]
    if roi_op == "align":
        expected = torchvision.ops.roi_align(features, rois, 4, spatial_scale=0.5, sampling_ratio=2, aligned=True)
    else:
        expected = torchvision.ops.roi_pool(features, rois, 4, spatial_scale=0.5)
    torch.testing.assert_close(head.pool(features, rois), expected)
    logits, deltas = head.classify_rois(features, rois)
    torch.testing.assert_close(logits, head.predictor(head.fc(expected))[0])
    assert logits.shape == (8, 5) and deltas.shape == (8, 20)
    detections = head(features, rois, (16, 16))
    assert len(detections) == 2 and set(detections[0]) == {"boxes", "scores", "labels"}


def test_roi_head_training_losses_sample_positives_first():
    g = torch.Generator().manual_seed(6)
    config = FastRCNNConfig(widths=(8, 16), hidden=32, roi_size=4, batch_size_per_image=16)
    head = RoIHead(config).train()
    features = torch.randn(1, 16, 8, 8, generator=g)
    gt = torch.tensor([[2.0, 2.0, 9.0, 9.0]])
    targets = [{"boxes": gt, "labels": torch.tensor([2])}]
    losses, rois, labels = head.training_losses(features, [random_boxes(40, size=16, generator=g)], targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg"}
    assert len(rois[0]) == len(labels[0]) <= 16 and labels[0][0] == 2  # the ground truth itself is a positive
    n_pos = int((labels[0] > 0).sum())
    assert (labels[0][:n_pos] > 0).all() and (labels[0][n_pos:] == 0).all()
    sum(losses.values()).backward()
    assert head.fc[1].weight.grad is not None
    with pytest.raises(ValueError, match="targets must be given in training mode"):
        head(features, rois, (16, 16))


def test_box_predictor_starts_from_the_proposals():
    predictor = BoxPredictor(32, 5)
    logits, deltas = predictor(torch.randn(10, 32))
    assert logits.shape == (10, 5) and deltas.shape == (10, 20)
    assert deltas.abs().max() < 0.05  # small initial deltas: the boxes start at the proposals


def test_detection_ops_switch():
    import lecture_lib.nms
    import lecture_lib.roi

    assert detection_ops("torchvision").nms is torchvision.ops.nms
    assert detection_ops("lecture_lib").nms is lecture_lib.nms.nms
    # the course's own kernels are the default; torchvision's are one switch away
    assert detection_ops().roi_align is lecture_lib.roi.roi_align and FastRCNNConfig().ops == "lecture_lib"
    assert FastRCNNConfig(ops="torchvision").ops == "torchvision"
    with pytest.raises(ValueError, match="ops must be one of"):
        detection_ops("cuda")


def test_roi_op_must_be_known():
    with pytest.raises(ValueError, match="roi_op must be one of"):
        FastRCNNConfig(roi_op="max")


def test_class_agnostic_box_predictor_shares_one_regressor():
    predictor = BoxPredictor(16, 5, class_agnostic=True)
    assert predictor.bbox_pred.out_features == 4
    logits, deltas = predictor(torch.randn(3, 16))
    assert deltas.shape == (3, 20)
    for c in range(1, 5):  # the same four deltas for every class
        torch.testing.assert_close(deltas[:, 4 * c:4 * c + 4], deltas[:, :4])
    head = RoIHead(FastRCNNConfig(widths=(8, 16), hidden=32, class_agnostic_boxes=True))
    assert head.predictor.class_agnostic
