"""lecture_lib.lecture: the lecture's figures, pinned to the slides and, where they can be
computed, recomputed with torch (the slides' upsampling examples and the quiz's answer)."""

import math

import pytest
import torch
import torch.nn.functional as F

from lecture_lib import lecture


def _t(rows):
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def test_ensembles_table_as_on_the_slide():
    accuracies = [row[2] for row in lecture.ENSEMBLES_TABLE]
    assert accuracies == [0.837, 0.855, 0.851, 0.865, 0.861, 0.864]
    assert (lecture.ENSEMBLE_MODELS, lecture.ENSEMBLE_SNAPSHOTS, lecture.ENSEMBLE_EPOCHS) == (10, 25, 10)


def test_search_stages_as_on_the_slides():
    assert lecture.COARSE_SEARCH["epochs"] == 5 and lecture.COARSE_SEARCH["trials"] == 100
    assert lecture.COARSE_SEARCH["lr"] == (-6.0, -3.0) and lecture.COARSE_SEARCH["reg"] == (-5.0, 5.0)
    assert lecture.FINE_SEARCH["lr"] == (-4.0, -3.0) and lecture.FINE_SEARCH["reg"] == (-4.0, 0.0)
    # the "worrying" best result sits within 10 % of the fine range's upper edge (1e-3)
    assert 0.9e-3 < lecture.FINE_SEARCH_BEST_LR < 1e-3
    assert lecture.EXPLOSION_FACTOR == 3.0


def test_update_ratio_example():
    example = lecture.UPDATE_RATIO_EXAMPLE
    assert example["update"] / example["weight"] == pytest.approx(example["ratio"])
    assert example["ratio"] == 10 * lecture.UPDATE_RATIO_TARGET


def test_upsampling_examples_equal_torch():
    nearest = F.interpolate(_t(lecture.NEAREST_EXAMPLE["input"]), scale_factor=2, mode="nearest")
    assert torch.equal(nearest, _t(lecture.NEAREST_EXAMPLE["output"]))
    x = _t(lecture.BED_OF_NAILS_EXAMPLE["input"])
    nails = F.conv_transpose2d(x, torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]), stride=2)
    assert torch.equal(nails, _t(lecture.BED_OF_NAILS_EXAMPLE["output"]))
    ex = lecture.MAX_UNPOOL_EXAMPLE
    pooled, indices = F.max_pool2d(_t(ex["pool_input"]), 2, return_indices=True)
    assert torch.equal(pooled, _t(ex["pool_output"]))
    unpooled = F.max_unpool2d(_t(ex["unpool_input"]), indices, 2)
    assert torch.equal(unpooled, _t(ex["unpool_output"]))


def test_transpose_conv_quiz_answer_is_computed_by_torch():
    quiz = lecture.TRANSPOSE_CONV_QUIZ
    out = F.conv_transpose2d(_t(quiz["input"]), _t(quiz["filter"]), stride=quiz["stride"])[0, 0]
    assert out.shape == (quiz["output_size"], quiz["output_size"])
    cols = list(quiz["xyz_columns"])
    xyz = tuple(int(v) for v in out[quiz["xyz_row"], cols])
    assert xyz == quiz["options"][quiz["answer"]] == (40, 60, 80)
    # B is "correct for the row above"; D is C in the wrong horizontal order; A is constant
    assert tuple(int(v) for v in out[quiz["xyz_row"] - 1, cols]) == quiz["options"]["B"]
    assert quiz["options"]["D"] == quiz["options"]["C"][::-1]
    assert quiz["options"] == {"A": (20, 20, 20), "B": (20, 30, 40), "C": (40, 60, 80), "D": (80, 60, 40)}
    assert quiz["feedback"]["A"] == "No, the input is not constant horizontally"
    assert quiz["feedback"]["B"] == "No, but correct for the row above"
    assert quiz["feedback"]["D"] == "No, wrong horizontal order"


def test_detector_tables_and_their_speedups():
    fast = lecture.FAST_RCNN_TABLE
    assert fast["R-CNN"]["train_hours"] / fast["Fast R-CNN"]["train_hours"] == pytest.approx(8.8, abs=0.05)
    # the slide rounds 47 / 0.32 = 146.9 down to 146x
    assert math.floor(fast["R-CNN"]["test_seconds_per_image"] / fast["Fast R-CNN"]["test_seconds_per_image"]) == 146
    faster = lecture.FASTER_RCNN_TABLE
    for name in faster:
        speedup = faster["R-CNN"]["test_seconds_per_image"] / faster[name]["test_seconds_per_image"]
        assert speedup == pytest.approx(faster[name]["test_speedup"])
    assert [faster[n]["map_voc2007"] for n in faster] == [66.0, 66.9, 66.9]
    assert lecture.MAP_IOU_THRESHOLD == 0.5 and lecture.MAP_SCALE == 100 and lecture.RCNN_PROPOSALS == 2000
