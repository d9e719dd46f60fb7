"""``lecture-eval``: COCO's twelve statistics of your own detector, from the files your tools write.

    lecture-eval --gt instances_val.json --pred detections.json
    lecture-eval --gt VOC2007/Annotations --pred results/ --format voc --plus-one --per-class
    lecture-eval --gt dataset/labels/val --pred runs/predict/labels --format yolo --classes data.yaml
    lecture-eval --gt gt.json --pred dt.json --iou-type segm --plot curves/ --json stats.json

(also ``python -m lecture_lib.metrics.cli ...``). The twelve statistics are printed as pycocotools'
``COCOeval.summarize()`` prints them; ``--per-class`` adds a table per class, ``--plot DIR`` writes
the precision/recall curves as PNG, ``--json OUT`` the numbers. Exit status: 0 done, 2 bad input
(the message names the file, the place and what was expected).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

__all__ = ["main", "load", "evaluate", "plot_curves"]

FORMATS = ("coco", "voc", "yolo")
PROGRESS_FROM = 1000  # images: from here on a progress bar shows the stages on stderr
SIZE_STATISTICS = ("map_small", "map_medium", "map_large", "mar_small", "mar_medium", "mar_large")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lecture-eval",
        description="COCO's twelve statistics (mAP, AP by size, average recall) of a detector's predictions "
                    "against ground truth, read from COCO JSON, VOC XML or YOLO txt files.")
    parser.add_argument("--gt", required=True, type=Path,
                        help="ground truth: a COCO instances .json, a folder of VOC .xml files, or a folder of "
                             "YOLO label .txt files")
    parser.add_argument("--pred", required=True, type=Path,
                        help="predictions: a COCO results .json, a folder of VOC devkit result files "
                             "(<prefix><class>.txt), or a folder of YOLO .txt files with a confidence column")
    parser.add_argument("--format", choices=FORMATS, help="file format (default: from --gt: .json is coco, a "
                                                          "folder of .xml voc, a folder of .txt yolo)")
    parser.add_argument("--iou-type", choices=("bbox", "segm"), default="bbox",
                        help="compare boxes (default) or masks (COCO files with segmentations)")
    parser.add_argument("--method", choices=("coco", "voc", "voc07"), default="coco",
                        help="matching rule and AP: coco (101 points, default), voc (all points), voc07 (11 points)")
    parser.add_argument("--plus-one", action="store_true",
                        help="measure boxes in integer pixels, x2 - x1 + 1 wide (the VOC devkit's convention)")
    parser.add_argument("--max-detections", type=int, default=100,
                        help="detections kept per image and class (default 100, as COCO)")
    parser.add_argument("--per-class", action="store_true", help="also print the statistics of every class")
    parser.add_argument("--classes", type=Path, help="class names, one a line, or a data.yaml (VOC, YOLO)")
    parser.add_argument("--images", type=Path,
                        help="YOLO: the folder of images, for their sizes (default: ../images next to --gt)")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="write the precision/recall curves as PNG to DIR")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the statistics as JSON to OUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar, whatever the input size")
    return parser


def _is_large(gt: Path) -> bool:
    """Large enough for a progress bar: a folder of >= PROGRESS_FROM files or a file of >= 20 MB."""
    if gt.is_dir():
        return sum(1 for _ in zip(range(PROGRESS_FROM), gt.iterdir())) >= PROGRESS_FROM
    return gt.is_file() and gt.stat().st_size >= 20 * 2**20


def _guess_format(gt: Path) -> str:
    if gt.is_file() and gt.suffix == ".json":
        return "coco"
    if gt.is_dir():
        if any(gt.glob("*.xml")):
            return "voc"
        if any(gt.glob("*.txt")):
            return "yolo"
    raise ValueError(f"--gt {gt}: cannot tell the format (a .json file, or a folder of .xml or .txt files); "
                     f"give --format")


def load(gt: Path, pred: Path, fmt: str, iou_type: str = "bbox", classes: Path | None = None,
         images: Path | None = None):
    """(annotations, predictions) read from the files (``lecture_lib.data.annotations``)."""
    from lecture_lib.data import annotations as files

    masks = iou_type == "segm"
    if masks and fmt != "coco":
        raise ValueError(f"--iou-type segm needs COCO files with segmentations, got --format {fmt}")
    names = files.read_class_list(classes) if classes is not None else None
    if fmt == "coco":
        truth = files.read_coco(gt, masks=masks)
        return truth, files.read_coco_results(pred, truth.images, masks=masks)
    if fmt == "voc":
        truth = files.read_voc(gt, names)
        return truth, files.read_voc_results(pred, truth.images, truth.classes)
    if images is None and gt.parent.name != "" and (gt.parent.parent / "images" / gt.name).is_dir():
        images = gt.parent.parent / "images" / gt.name  # Ultralytics: dataset/labels/val -> dataset/images/val
    elif images is None and (gt.parent / "images").is_dir():
        images = gt.parent / "images"
    truth = files.read_yolo(gt, names, images_dir=images)
    return truth, files.read_yolo_results(pred, truth.images, truth.classes)


def evaluate(truth, preds, iou_type: str = "bbox", method: str = "coco", plus_one: bool = False,
             max_detections: int | None = 100, per_class: bool = False, curves: bool = False) -> dict:
    """The statistics of ``preds`` against ``truth`` (an ``Annotations``). Size statistics are NaN
    when the image sizes are unknown (YOLO files without their images)."""
    if iou_type == "segm":
        from lecture_lib.metrics.masks import mask_mean_average_precision

        targets = [{k: v for k, v in t.items() if k != "boxes"} for t in truth.targets]
        detections = [{k: v for k, v in p.items() if k != "boxes"} for p in preds]
        result = mask_mean_average_precision(detections, targets, method=method, max_detections=max_detections,
                                             class_metrics=per_class, extended_summary=curves)
    else:
        from lecture_lib.metrics.detection import mean_average_precision

        result = mean_average_precision(preds, truth.targets, method=method, max_detections=max_detections,
                                        plus_one=plus_one, class_metrics=per_class, extended_summary=curves)
    if any(im.get("width") is None for im in truth.images) and iou_type == "bbox" and truth.images:
        unknown = [result] + list(result.get("per_class", {}).values())
        for table in unknown:
            for key in SIZE_STATISTICS:
                table[key] = math.nan
        result["note"] = "image sizes unknown (YOLO labels without --images): no size statistics"
    return result


def _per_class_table(result: dict, classes: dict) -> str:
    columns = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")
    recall = [k for k in next(iter(result["per_class"].values()))] if result["per_class"] else []
    columns += tuple(k for k in recall if k.startswith("mar_"))
    heads = {"map": "AP", "map_50": "AP50", "map_75": "AP75", "map_small": "APs", "map_medium": "APm",
             "map_large": "APl", "mar_small": "ARs", "mar_medium": "ARm", "mar_large": "ARl"}
    width = max([len("class")] + [len(str(classes.get(c, c))) for c in result["per_class"]])
    lines = [f"{'class':<{width}} " + " ".join(f"{heads.get(c, 'AR' + c[4:]):>7}" for c in columns)]
    for label, table in result["per_class"].items():
        lines.append(f"{str(classes.get(label, label)):<{width}} " + " ".join(f"{table[c]:7.3f}" for c in columns))
    return "\n".join(lines)


def plot_curves(result: dict, classes: dict, folder: Path) -> list[Path]:
    """Precision/recall curves (COCO's interpolated precision at 101 recall levels, all sizes):
    one figure per class at IoU 0.50 and 0.75, and the mean over classes at every threshold."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    from lecture_lib.metrics.detection import COCO_RECALL_THRESHOLDS

    folder.mkdir(parents=True, exist_ok=True)
    precision = result["precision"].numpy()[..., 0]  # [T, R, K], area "all"
    thresholds = np.asarray(result["iou_thresholds"])
    labels = result["classes"]
    written = []
    for value in (0.5, 0.75):
        rows = np.nonzero(np.isclose(thresholds, value))[0]
        if not len(rows):
            continue
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for k, label in enumerate(labels):
            curve = precision[rows[0], :, k]
            if (curve > -1).all():
                ax.plot(COCO_RECALL_THRESHOLDS, curve, label=f"{classes.get(label, label)} (AP {curve.mean():.3f})")
        ax.set(xlabel="recall", ylabel="interpolated precision", xlim=(0, 1), ylim=(0, 1.02),
               title=f"Precision/recall per class, IoU {value:.2f}")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        path = folder / f"pr_iou{int(round(value * 100))}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for t, value in enumerate(thresholds):
        block = precision[t]
        valid = (block > -1).all(0)
        if valid.any():
            ax.plot(COCO_RECALL_THRESHOLDS, block[:, valid].mean(1), label=f"IoU {value:.2f}")
    ax.set(xlabel="recall", ylabel="interpolated precision (mean over classes)", xlim=(0, 1), ylim=(0, 1.02),
           title="Precision/recall at every IoU threshold")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    path = folder / "pr_thresholds.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def _jsonable(result: dict, classes: dict) -> dict:
    def number(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    from lecture_lib.metrics.detection import STATISTICS

    keys = [k for k in result if k in STATISTICS or (k.startswith("mar_") and not k.endswith("_per_class"))]
    out = {k: number(result[k]) for k in keys}
    out["map_per_class"] = {str(classes.get(c, c)): number(v) for c, v in result["map_per_class"].items()}
    if "per_class" in result:
        out["per_class"] = {str(classes.get(c, c)): {k: number(v) for k, v in table.items()}
                            for c, table in result["per_class"].items()}
    if "note" in result:
        out["note"] = result["note"]
    return out


def main(argv: list[str] | None = None) -> int:
    from tqdm.auto import tqdm

    from lecture_lib.data.annotations import AnnotationError
    from lecture_lib.metrics.detection import summarize

    args = _parser().parse_args(argv)
    try:
        if args.max_detections < 1:
            raise ValueError(f"--max-detections must be a positive number, got {args.max_detections}")
        for name in ("gt", "pred"):
            path = getattr(args, name)
            if not path.exists():
                raise ValueError(f"--{name} {path}: no such file or folder")
        fmt = args.format or _guess_format(args.gt)
        stages = tqdm(total=3 + (args.plot is not None), desc="lecture-eval", unit="stage", file=sys.stderr,
                      disable=args.no_progress or not _is_large(args.gt), leave=False)
        stages.set_postfix_str("reading files")
        truth, preds = load(args.gt, args.pred, fmt, args.iou_type, args.classes, args.images)
        stages.update(1)
        stages.set_postfix_str(f"evaluating {len(truth.images)} images")
        result = evaluate(truth, preds, args.iou_type, args.method, args.plus_one, args.max_detections,
                          args.per_class, curves=args.plot is not None)
        stages.update(1)
        written = []
        if args.plot is not None:
            stages.set_postfix_str("plotting")
            written = plot_curves(result, truth.classes, args.plot)
            stages.update(1)
        stages.update(1)
        stages.close()
    except (AnnotationError, ValueError, TypeError) as error:
        print(f"lecture-eval: error: {error}", file=sys.stderr)
        return 2
    print(summarize(result, None if args.method == "coco" else [0.5]))
    if "note" in result:
        print(f"({result['note']})")
    if args.per_class:
        print()
        print(_per_class_table(result, truth.classes))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_jsonable(result, truth.classes), indent=2) + "\n")
        print(f"statistics written to {args.json}")
    for path in written:
        print(f"curve written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
