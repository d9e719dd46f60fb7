"""R-CNN (Girshick et al. 2014): propose regions, warp each one, classify it with a CNN.

Detection as "classify many regions": instead of sliding a classifier over *every* window, R-CNN
asks a cheap, class-agnostic method for a few hundred to two thousand **region proposals**
(``lecture_lib.proposals``), warps each one to the CNN's fixed input size
(:func:`warp_regions`) and runs the CNN on every warped crop. Per proposal it predicts ``C``
scores (the object classes **plus background**, class 0) and, per class, four box-regression
deltas that correct the proposal (``lecture_lib.boxes.encode_boxes``). At test time: score,
decode, per-class NMS.

This file holds R-CNN itself: :func:`warp_regions`, :class:`RCNNConfig` and :class:`RCNN`, and at
the end the chapter's stored R-CNN (:func:`rcnn_recipe`, ``make weights NAME=rcnn_shapes``). What
the whole family shares lives in its own modules, and is re-exported here so that
``from lecture_lib.models.rcnn import ...`` keeps working:

* proposals (:func:`sliding_window_proposals`, :func:`selective_search`): ``lecture_lib.proposals``;
* training targets, loss, post-processing, the kernels switch (:func:`detection_ops`):
  ``lecture_lib.models.roi_heads``;
* the CNN (:func:`small_cnn`): ``lecture_lib.models.backbones``.

Simplification: the paper fine-tunes the CNN with a softmax, then trains one linear SVM per class
and separate ridge box regressors on its features. Here the CNN has both heads and is trained
end to end with Fast R-CNN's multi-task loss -- the same model family, one training stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lecture_lib.checks import check_boxes, check_detection_inputs, check_positive_int
from lecture_lib.models.backbones import small_cnn
from lecture_lib.models.roi_heads import (
    OPS,
    BoxPredictor,
    DetectorConfig,
    detection_forward,
    detection_loss,
    detection_ops,
    match_proposals,
    postprocess_detections,
    sample_proposals,
    select_training_samples,
)
from lecture_lib.proposals import default_proposals, selective_search, sliding_window_proposals

__all__ = [
    # R-CNN itself
    "warp_regions",
    "RCNNConfig",
    "RCNN",
    # re-exported from the family's modules (their home is named in the module docstring)
    "OPS",
    "detection_ops",
    "sliding_window_proposals",
    "selective_search",
    "match_proposals",
    "sample_proposals",
    "select_training_samples",
    "detection_loss",
    "postprocess_detections",
    "small_cnn",
    "detection_forward",
    # the chapter's stored R-CNN (``make weights NAME=rcnn_shapes``)
    "RCNN_DATA",
    "rcnn_scenes",
    "train_rcnn",
    "evaluate_rcnn",
    "rcnn_recipe",
]


def _interpolation_matrices(starts: Tensor, lengths: Tensor, output_size: int, sampling_ratio: int,
                            size: int) -> Tensor:
    """Per region, the ``[output_size, size]`` matrix that resamples a signal of ``size`` values
    along one axis as RoI align does (``aligned=True``, ``spatial_scale = 1``).

    Output value ``i`` of region ``k`` averages ``n`` points spread evenly over its bin,
    ``starts[k] - 0.5 + (i + (a + 0.5) / n) * lengths[k] / output_size`` for ``a < n``, with
    ``n = sampling_ratio``, or ``ceil(lengths[k] / output_size)`` when ``sampling_ratio <= 0``
    (RoI align's adaptive rule: about one point per pixel); each point reads the signal by linear
    interpolation between its two neighbouring values, the border value within one cell outside,
    0 further out (RoI align's rule, ``lecture_lib.roi``).

    Args:
        starts, lengths (Tensor[K]): region start and length along the axis, in pixels.

    Returns:
        Tensor[K, output_size, size]: at most ``2 n`` non-zeros per row.
    """
    if sampling_ratio > 0:
        n = torch.full_like(lengths, sampling_ratio, dtype=torch.long)
    else:
        n = torch.ceil(lengths / output_size).long()
    most = max(int(n.max()), 1) if len(n) else 1
    count = n.clamp(min=1).to(starts.dtype)[:, None, None]
    sample = torch.arange(most, dtype=starts.dtype, device=starts.device)
    bins = torch.arange(output_size, dtype=starts.dtype, device=starts.device)
    # points [K, output_size, most]: the samples of each bin, the unused ones (a >= n) weighted 0
    points = (starts - 0.5)[:, None, None] + (bins[None, :, None] + (sample + 0.5) / count) \
        * (lengths / output_size)[:, None, None]
    inside = (points >= -1.0) & (points <= size) & (sample < n[:, None, None])
    points = points.clamp(0, size - 1)  # within one cell of the border: the border value
    low = points.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    frac = points - low
    weights = torch.cat([(1 - frac) * inside, frac * inside], 2) / count  # [K, output_size, 2 most]
    matrices = starts.new_zeros(len(starts), output_size, size)
    matrices.scatter_add_(2, torch.cat([low, high], 2), weights)
    return matrices


def warp_regions(images: Tensor, boxes: list[Tensor], output_size: int, sampling_ratio: int = 2,
                 ops: str = "lecture_lib") -> Tensor:
    """Crop every box out of its image and resize it to ``output_size x output_size``.

    R-CNN's "warp": anisotropic scaling to the CNN's input size, whatever the box's aspect ratio.
    It is RoI align on the image itself (``spatial_scale = 1``, ``aligned=True``): with
    ``sampling_ratio = 1`` exactly bilinear resizing (``F.interpolate(mode="bilinear")`` of the
    crop); the default 2 averages 2 x 2 bilinear samples per output pixel, which blurs a little
    and aliases less when a large proposal shrinks.

    With ``ops="lecture_lib"`` it is computed the way resizing usually is: bilinear sampling is
    *separable* (a linear interpolation along y of linear interpolations along x), so each crop is
    ``R_y @ image @ R_x.T`` with one small interpolation matrix per region and axis
    (:func:`_interpolation_matrices`): matrix products instead of gathering four pixels per
    sample point, which is what ``lecture_lib.roi.roi_align`` does for feature maps
    (same result, to float rounding; tested against ``torchvision.ops.roi_align``). Like RoI
    align, it is differentiable with respect to the images, not the boxes.

    Args:
        images (Tensor[B, C, H, W]): the images.
        boxes (list of B Tensor[L_i, 4]): boxes of image i in pixel coordinates.
        output_size: side of the warped crops.
        sampling_ratio: bilinear samples per output pixel in each direction; ``<= 0``: adaptive,
            ``ceil(box side / output_size)`` per box, as in RoI align.
        ops: ``"lecture_lib"`` (the separable resampling above) or ``"torchvision"``
            (``torchvision.ops.roi_align``), see :func:`detection_ops`.

    Returns:
        Tensor[sum L_i, C, output_size, output_size]: the crops, image by image.
    """
    check_positive_int(output_size, "output_size")
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int):
        raise TypeError(f"sampling_ratio must be an int (<= 0: adaptive), got {sampling_ratio!r}")
    kernels = detection_ops(ops)
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a floating point Tensor[B, C, H, W], got {shape}")
    if not isinstance(boxes, (list, tuple)) or len(boxes) != images.shape[0]:
        length = f" of length {len(boxes)}" if isinstance(boxes, (list, tuple)) else ""
        raise ValueError(f"boxes must be a list with one Tensor[L, 4] per image ({images.shape[0]}), "
                         f"got {type(boxes).__name__}{length}")
    for b in boxes:
        check_boxes(b, "boxes")
    boxes = [b.detach().to(images.dtype) for b in boxes]
    if ops != "lecture_lib":
        return kernels.roi_align(images, boxes, output_size, spatial_scale=1.0, sampling_ratio=sampling_ratio,
                                 aligned=True)
    channels, height, width = images.shape[1:]
    crops = []
    for image, image_boxes in zip(images, boxes):
        columns = image.permute(1, 0, 2).reshape(height, channels * width)  # [H, C * W]: rows of the image
        # a few hundred regions at a time: the intermediate [k, out, C, W] stays small
        for part in image_boxes.split(max(1, 2 ** 22 // (channels * output_size * width))):
            k = len(part)
            rows = _interpolation_matrices(part[:, 1], part[:, 3] - part[:, 1], output_size, sampling_ratio, height)
            cols = _interpolation_matrices(part[:, 0], part[:, 2] - part[:, 0], output_size, sampling_ratio, width)
            # along y for all regions in one product, then along x region by region
            along_y = (rows.reshape(k * output_size, height) @ columns).reshape(k, output_size * channels, width)
            crop = torch.bmm(along_y, cols.transpose(1, 2)).reshape(k, output_size, channels, output_size)
            crops.append(crop.permute(0, 2, 1, 3))  # [k, C, out, out]
    if not crops:
        return images.new_zeros(0, channels, output_size, output_size)
    return torch.cat(crops)


@dataclass
class RCNNConfig(DetectorConfig):
    """An R-CNN for small images: the shared settings (``DetectorConfig``; R-CNN fine-tuning
    takes all of IoU < 0.5 as background, ``bg_iou_low = 0``) plus

    Attributes:
        warp_size: side of the warped crops the CNN sees (the paper: 227); each of the CNN's
            conv blocks (``widths``) halves the crop.
    """

    warp_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.warp_size, "warp_size")
        if self.warp_size % 2 ** len(self.widths):
            raise ValueError(f"warp_size must be divisible by 2 ** len(widths) = {2 ** len(self.widths)}, "
                             f"got {self.warp_size}")


class RCNN(nn.Module):
    """R-CNN: one CNN forward pass **per proposal** on its warped crop.

    ``forward(images, targets=None, proposals=None)``:

    * training mode: samples ``batch_size_per_image`` proposals per image, returns
      ``{"loss_classifier": ..., "loss_box_reg": ...}``;
    * eval mode: returns one ``{"boxes", "scores", "labels"}`` dict per image.

    ``proposals`` is a list with one Tensor[L_i, 4] per image (e.g. :func:`selective_search`);
    by default the sliding windows of the config.
    """

    def __init__(self, config: RCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or RCNNConfig()
        self.features = small_cnn(3, config.widths)
        side = config.warp_size // 2 ** len(config.widths)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(config.widths[-1] * side * side, config.hidden),
                                nn.ReLU(inplace=True))
        self.predictor = BoxPredictor(config.hidden, config.num_classes)

    def classify_crops(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """The CNN on warped crops Tensor[K, 3, s, s] -> (class_logits [K, C], box_deltas [K, 4 C]).

        The crops go through the CNN in channels-last memory layout (the same tensor, the channels
        of a pixel stored side by side): PyTorch's CPU convolution and max pooling run it about
        twice as fast on these many small crops (the results agree to float rounding).
        """
        return self.predictor(self.fc(self.features(crops.contiguous(memory_format=torch.channels_last))))

    def forward(self, images: Tensor, targets: list[dict] | None = None,
                proposals: list[Tensor] | None = None):
        c = self.config
        check_detection_inputs(images, targets, c.num_classes, self.training)
        proposals = default_proposals(images, c) if proposals is None else proposals
        if len(proposals) != images.shape[0]:
            raise ValueError(f"proposals must be a list of {images.shape[0]} Tensor[L, 4], got {len(proposals)}")
        if self.training:
            samples = [select_training_samples(
                p, t["boxes"], t["labels"], fg_iou_threshold=c.fg_iou_threshold, bg_iou_low=c.bg_iou_low,
                batch_size_per_image=c.batch_size_per_image, positive_fraction=c.positive_fraction,
                box_weights=c.box_weights) for p, t in zip(proposals, targets)]
            rois, labels, regression = (list(x) for x in zip(*samples))
            logits, deltas = self.classify_crops(warp_regions(images, rois, c.warp_size, ops=c.ops))
            loss_cls, loss_box = detection_loss(logits, deltas, torch.cat(labels), torch.cat(regression))
            return {"loss_classifier": loss_cls, "loss_box_reg": loss_box}
        logits, deltas = self.classify_crops(warp_regions(images, list(proposals), c.warp_size, ops=c.ops))
        sizes = [p.shape[0] for p in proposals]
        return [postprocess_detections(lg, dl, p, tuple(images.shape[-2:]), c.box_weights, c.score_threshold,
                                       c.nms_threshold, c.detections_per_image, ops=c.ops)
                for lg, dl, p in zip(logits.split(sizes), deltas.split(sizes), proposals)]


# --- the chapter's stored R-CNN: lecture_lib.weights recipe "rcnn_shapes" ------------------------

#: The R-CNN of the page "Sliding windows, region proposals and R-CNN": its scenes
#: (``preset_dataset("scenes64")``: 64 x 64, one to three shapes), the training (Adam, batches of
#: 8 shuffled scenes, 32 sampled windows per scene) and the held-out test scenes of its results table.
RCNN_DATA = {"preset": "scenes64", "seed": 0, "n_train": 400, "n_test": 100,
             "epochs": 20, "batch_size": 8, "lr": 3e-3, "batch_size_per_image": 32}


def rcnn_scenes(split: str, n_images: int):
    """The page's scenes: ``preset_dataset("scenes64", n_images, split=split, task="detection")``."""
    from lecture_lib.data.shapes import preset_dataset

    return preset_dataset(RCNN_DATA["preset"], n_images, seed=RCNN_DATA["seed"], split=split, task="detection")


def train_rcnn(model: RCNN, seed: int = 0, scenes=None, epochs: int | None = None, progress: bool = False):
    """Train ``model`` in place as the recipe does, on the device it is on; returns ``fit``'s ``History``.

    Args:
        scenes: a detection dataset (default: the recipe's ``RCNN_DATA["n_train"]`` training scenes).
        epochs: default ``RCNN_DATA["epochs"]``.
        seed: of the order of the scenes (the windows sampled per scene follow torch's global seed).
    """
    from torch.utils.data import DataLoader

    from lecture_lib.data.shapes import collate_detection
    from lecture_lib.train import fit

    scenes = rcnn_scenes("train", RCNN_DATA["n_train"]) if scenes is None else scenes
    epochs = RCNN_DATA["epochs"] if epochs is None else epochs
    loader = DataLoader(scenes, batch_size=RCNN_DATA["batch_size"], shuffle=True, collate_fn=collate_detection,
                        generator=torch.Generator().manual_seed(seed))
    device = next(model.parameters()).device
    return fit(model, loader, epochs=epochs, lr=RCNN_DATA["lr"], forward_fn=detection_forward, metric=None,
               device=device, progress=progress)


@torch.no_grad()
def evaluate_rcnn(model: RCNN, n_images: int | None = None) -> dict[str, float]:
    """VOC mAP@0.5 and COCO mAP (0-1) of ``model`` with its default sliding windows on the recipe's
    test scenes (the first ``n_images`` when given), and the number of images."""
    from lecture_lib.lecture import MAP_IOU_THRESHOLD
    from lecture_lib.metrics.detection import mean_average_precision

    n = RCNN_DATA["n_test"] if n_images is None else min(n_images, RCNN_DATA["n_test"])
    test = rcnn_scenes("test", n)
    device = next(model.parameters()).device
    model.eval()
    preds, targets = [], []
    for start in range(0, n, 8):  # 8 scenes of ~200 windows at a time
        images, batch_targets = zip(*(test[i] for i in range(start, min(start + 8, n))))
        found = model(torch.stack(images).to(device))
        preds += [{k: v.cpu() for k, v in f.items()} for f in found]
        targets += batch_targets
    voc = mean_average_precision(preds, targets, iou_thresholds=[MAP_IOU_THRESHOLD], method="voc")["map"]
    coco = mean_average_precision(preds, targets, method="coco")["map"]
    return {"voc_map_50": float(voc), "coco_map": float(coco), "images": float(n)}


def rcnn_recipe():
    """``lecture_lib.weights`` recipe "rcnn_shapes": ``RCNN(RCNNConfig(batch_size_per_image=32))``
    trained by :func:`train_rcnn` (``RCNN_DATA``: 20 epochs on 400 scenes of 64 pixels, about a
    minute on 2 CPU threads), scored with sliding windows on 100 test scenes (headline: VOC mAP@0.5)."""
    from dataclasses import asdict

    from lecture_lib.weights import Recipe

    return Recipe(
        name="rcnn_shapes",
        build=lambda: RCNN(RCNNConfig(batch_size_per_image=RCNN_DATA["batch_size_per_image"])),
        train=lambda model, seed: asdict(train_rcnn(model, seed)),
        evaluate=evaluate_rcnn,
        metric="voc_map_50",
        check_images=16,
        seed=0,
        description=f"R-CNN (sliding windows), {RCNN_DATA['n_train']} scenes64 scenes, "
                    f"{RCNN_DATA['epochs']} epochs",
    )
