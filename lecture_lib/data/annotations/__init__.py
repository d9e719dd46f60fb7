"""Reading and writing the annotation files detection tools write: COCO JSON, PASCAL VOC XML and
YOLO txt, to and from the per-image dicts ``mean_average_precision`` takes.

One image is one dict: ground truth ``{"boxes": Tensor[M, 4] (x1, y1, x2, y2, float64),
"labels": Tensor[M] int64}`` plus, where the format has them, ``"iscrowd"``, ``"area"``,
``"difficult"`` and ``"masks"``; predictions ``{"boxes", "scores", "labels"}`` (and ``"masks"``).
``read_*`` returns an ``Annotations``: the images (id, file name, size), one target dict per
image, and the class names. Predictions are read *against* the ground truth's images, so that
the two lists line up and a prediction for an image the ground truth does not have is an error.

Coordinates are kept as the file writes them: COCO's ``[x, y, w, h]`` becomes
``(x, y, x + w, y + h)``; VOC's 1-based pixel indices (``xmax`` included) stay as they are
(evaluate with ``plus_one=True`` to follow the VOC devkit); YOLO's relative ``cx cy w h`` are
multiplied by the image size when it is known (``images_dir``), else kept relative.

Every malformed file raises ``AnnotationError`` (a ``ValueError``) naming the file, the line or
field, what was expected and what was found.

One file per format: ``coco.py``, ``voc.py``, ``yolo.py``; ``masks.py`` holds COCO's mask
encodings (RLE, polygons) and ``common.py`` what the formats share. Every name imports from
``lecture_lib.data.annotations``.
"""

from lecture_lib.data.annotations.coco import read_coco, read_coco_results, write_coco, write_coco_results
from lecture_lib.data.annotations.common import IMAGE_SUFFIXES, AnnotationError, Annotations, read_class_list  # noqa: F401
from lecture_lib.data.annotations.masks import polygons_to_mask, rle_decode, rle_encode
from lecture_lib.data.annotations.voc import read_voc, read_voc_results, write_voc, write_voc_results
from lecture_lib.data.annotations.yolo import read_yolo, read_yolo_results, write_yolo, write_yolo_results

__all__ = [
    "AnnotationError",
    "Annotations",
    "read_class_list",
    "read_coco",
    "read_coco_results",
    "write_coco",
    "write_coco_results",
    "read_voc",
    "read_voc_results",
    "write_voc",
    "write_voc_results",
    "read_yolo",
    "read_yolo_results",
    "write_yolo",
    "write_yolo_results",
    "rle_decode",
    "rle_encode",
    "polygons_to_mask",
]

