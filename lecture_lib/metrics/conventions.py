"""The numbers of the two conventions a detector is scored by: pycocotools' ``Params`` and the
PASCAL VOC devkit's. Every module of ``lecture_lib.metrics`` reads them from here."""

from __future__ import annotations

import numpy as np

__all__ = ["METHODS", "STATISTICS", "COCO_IOU_THRESHOLDS", "COCO_RECALL_THRESHOLDS", "COCO_AREA_RANGES",
           "VOC07_RECALL_THRESHOLDS"]

METHODS = ("coco", "voc", "voc07")
# pycocotools Params.setDetParams builds these with linspace ("np.arange causes trouble"); we use
# the very same floats so that an IoU or a recall that sits exactly on a threshold is compared
# the same way.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
# VOC devkit (voc_eval.voc_ap, use_07_metric): np.arange(0., 1.1, 0.1), 11 recall levels.
VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)
# pycocotools' areaRng, in pixels²; a bound belongs to both ranges that share it
COCO_AREA_RANGES = {"all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2),
                    "large": (96.0**2, 1e5**2)}
STATISTICS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
              "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")
_EPS = np.spacing(1)  # pycocotools' precision: TP / (TP + FP + eps)
