"""What the lecture itself says, in numbers: one home for every figure the course quotes.

Lecture 8 of CS 182/282A (Spring 2020, John Canny), "Object Detection and Segmentation". Each
constant names the slide it comes from (by the slide's title). A page that says "the lecture
says ..." imports the figure from here, and ``tests/test_lecture.py`` pins these values to the
slides, so a figure attributed to the lecture is written down exactly once.

Anything that is *not* on the slides (IoU grades such as "> 0.7 is good", NMS thresholds, ...)
does not belong here: pages call it a rule of thumb and cite where it comes from.
"""

from __future__ import annotations

__all__ = [
    "ENSEMBLES_TABLE",
    "ENSEMBLE_MODELS",
    "ENSEMBLE_SNAPSHOTS",
    "ENSEMBLE_EPOCHS",
    "EXPLOSION_FACTOR",
    "COARSE_SEARCH",
    "FINE_SEARCH",
    "FINE_SEARCH_BEST_VAL_ACC",
    "FINE_SEARCH_BEST_LR",
    "UPDATE_RATIO_TARGET",
    "UPDATE_RATIO_EXAMPLE",
    "NEAREST_EXAMPLE",
    "BED_OF_NAILS_EXAMPLE",
    "MAX_UNPOOL_EXAMPLE",
    "TRANSPOSE_CONV_QUIZ",
    "MAP_IOU_THRESHOLD",
    "MAP_SCALE",
    "RCNN_PROPOSALS",
    "FAST_RCNN_TABLE",
    "FASTER_RCNN_TABLE",
]

# --- "Last Time: Ensembles (VGGNet and CIFAR 10)" ------------------------------------------
# (model, prediction method, test accuracy)
ENSEMBLES_TABLE: tuple[tuple[str, str, float], ...] = (
    ("Baseline (10 epochs)", "Single model", 0.837),
    ("True ensemble of 10 models", "Average predictions", 0.855),
    ("True ensemble of 10 models", "Voting", 0.851),
    ("Snapshots (25) over 10 epochs", "Average predictions", 0.865),
    ("Snapshots (25) over 10 epochs", "Voting", 0.861),
    ("Snapshots (25) over 10 epochs", "Parameter averaging", 0.864),
)
ENSEMBLE_MODELS = 10      # a true ensemble of 10 independently trained models
ENSEMBLE_SNAPSHOTS = 25   # 25 snapshots taken ...
ENSEMBLE_EPOCHS = 10      # ... within the same 10 epochs as the single baseline

# --- "Hyper-Parameter Exploration strategy" -------------------------------------------------
# "If the cost is ever > 3 * original cost, break out early"
EXPLOSION_FACTOR = 3.0

# --- "For example: run coarse search for 5 epochs" / "Now run finer search..." -------------
# Exponents of 10 (the search samples 10 ** uniform(lo, hi): "optimize in log space").
COARSE_SEARCH = {"trials": 100, "epochs": 5, "reg": (-5.0, 5.0), "lr": (-6.0, -3.0),
                 "hidden_size": 50, "batch_size": 100, "input_size": 32 * 32 * 3, "classes": 10}
FINE_SEARCH = {"trials": 100, "reg": (-4.0, 0.0), "lr": (-4.0, -3.0)}
# "53% - relatively good for a 2-layer neural net with 50 hidden neurons" (best: 0.531,
# lr 9.47e-04, near the upper edge 1e-3 of the fine range: "this best result is worrying")
FINE_SEARCH_BEST_VAL_ACC = 0.531
FINE_SEARCH_BEST_LR = 9.471549e-04

# --- "Track the ratio of weight updates / weight magnitudes" --------------------------------
UPDATE_RATIO_TARGET = 1e-3   # "want ~1e-3"
# "ratio between the values and updates: ~0.0002 / 0.02 = 0.01" ... "0.01 is probably too high"
UPDATE_RATIO_EXAMPLE = {"update": 0.0002, "weight": 0.02, "ratio": 0.01, "verdict": "probably too high"}

# --- "In-Network Upsampling: Striding" and "... Max Unpooling" -----------------------------
NEAREST_EXAMPLE = {"input": [[1, 2], [3, 4]],
                   "output": [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]}
BED_OF_NAILS_EXAMPLE = {"input": [[1, 2], [3, 4]],
                        "output": [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]}
# 2 x 2 max pooling with stride 2 remembers where each maximum was; unpooling writes the
# values that come back from "the rest of the network" to those positions.
MAX_UNPOOL_EXAMPLE = {
    "pool_input": [[1, 2, 6, 3], [3, 5, 2, 1], [1, 2, 2, 1], [7, 3, 4, 8]],
    "pool_output": [[5, 6], [7, 8]],
    "unpool_input": [[1, 2], [3, 4]],
    "unpool_output": [[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]],
}

# --- "Learnable Upsampling: Transpose Convolution" (the quiz) ------------------------------
# Stride 2, no padding: a 2 x 2 input gives a 5 x 5 output. X, Y, Z are row 1, columns 1-3 of
# the output (B's values are the row above them: row 0, columns 1-3).
TRANSPOSE_CONV_QUIZ = {
    "input": [[10, 20], [30, 40]],
    "filter": [[1, 2, 1], [2, 4, 2], [1, 2, 1]],
    "stride": 2,
    "output_size": 5,
    "xyz_row": 1,
    "xyz_columns": (1, 2, 3),
    "options": {"A": (20, 20, 20), "B": (20, 30, 40), "C": (40, 60, 80), "D": (80, 60, 40)},
    "answer": "C",
    "feedback": {
        "A": "No, the input is not constant horizontally",
        "B": "No, but correct for the row above",
        "C": "Correct!",
        "D": "No, wrong horizontal order",
    },
}

# --- "Object Detection" (mAP) --------------------------------------------------------------
# "A detection is a true positive if it has IoU with a ground-truth box greater than some
# threshold (usually 0.5)"; "TL;DR mAP is a number from 0 to 100; high is good"
MAP_IOU_THRESHOLD = 0.5
MAP_SCALE = 100

# --- "Classification + Region Proposals: R-CNN" --------------------------------------------
RCNN_PROPOSALS = 2000  # "Extract region proposals (~2k)"

# --- "Fast R-CNN" (the table) ---------------------------------------------------------------
FAST_RCNN_TABLE = {
    "R-CNN": {"train_hours": 84.0, "train_speedup": 1.0, "test_seconds_per_image": 47.0,
              "test_speedup": 1.0, "map_voc2007": 66.0},
    "Fast R-CNN": {"train_hours": 9.5, "train_speedup": 8.8, "test_seconds_per_image": 0.32,
                   "test_speedup": 146.0, "map_voc2007": 66.9},
}

# --- "Faster R-CNN" (the table: test time per image *with proposals*) ----------------------
FASTER_RCNN_TABLE = {
    "R-CNN": {"test_seconds_per_image": 50.0, "test_speedup": 1.0, "map_voc2007": 66.0},
    "Fast R-CNN": {"test_seconds_per_image": 2.0, "test_speedup": 25.0, "map_voc2007": 66.9},
    "Faster R-CNN": {"test_seconds_per_image": 0.2, "test_speedup": 250.0, "map_voc2007": 66.9},
}
