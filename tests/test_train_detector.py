"""lecture_lib.train.train_detector: a budget in seconds, a plain list as the data set, eval mode at the end."""

import time

import pytest
import torch

from lecture_lib.data.shapes import preset_dataset
from lecture_lib.models.faster_rcnn import FasterRCNN, FasterRCNNConfig
from lecture_lib.models.fast_rcnn import FastRCNNConfig
from lecture_lib.models.mask_rcnn import MaskRCNN, MaskRCNNConfig
from lecture_lib.train import Callback, History, train_detector
from lecture_lib.train.detector import DetectorHistory, flip_detection

TINY = dict(head=FastRCNNConfig(widths=(8, 16), hidden=32, batch_size_per_image=16))


@pytest.fixture(scope="module")
def items():
    data = preset_dataset("scenes64", 8, split="train", task="detection")
    return [data[i] for i in range(len(data))]  # a plain Python list


def test_stops_after_the_budget_and_leaves_eval_mode(items):
    torch.manual_seed(0)
    model = FasterRCNN(FasterRCNNConfig(**TINY))
    start = time.process_time() / torch.get_num_threads()
    history = train_detector(model, items, seconds=1.0, batch_size=4)
    spent = time.process_time() / torch.get_num_threads() - start
    assert isinstance(history, History) and isinstance(history, DetectorHistory)
    assert not model.training
    steps = len(history.step_loss)
    assert steps >= 1 and "budget of 1 s spent" in history.stop_reason
    # the step that crosses the budget finishes, then training stops
    assert history.budget_seconds[-1] >= 1.0 and (steps == 1 or history.budget_seconds[-2] < 1.0)
    assert spent < 1.0 + 30.0
    assert set(history.losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    assert all(len(v) == steps for v in history.losses.values()) and len(history.lr) == steps
    torch.testing.assert_close(torch.tensor(history.step_loss),
                               torch.stack([torch.tensor(v) for v in history.losses.values()]).sum(0))
    assert history.images_seen == 4 * steps and history.clock == "cpu"
    with torch.no_grad():
        out = model(items[0][0][None])
    assert set(out[0]) == {"boxes", "scores", "labels"}


def test_learning_rate_warms_up_then_decays(items):
    torch.manual_seed(0)
    model = FasterRCNN(FasterRCNNConfig(**TINY))
    # 2 warm-up steps, so 3 steps show the rise and the decay (a loaded CI machine fitted only 3
    # steps into 2 s: with 3 warm-up steps the last one was still the peak)
    history = train_detector(model, items, seconds=3.0, batch_size=2, lr=1e-3, warmup_steps=2, clock="wall")
    lr = history.lr
    assert len(lr) >= 3, f"only {len(lr)} steps in 3 s"
    assert lr[0] == pytest.approx(1e-3 / 2 * 0.5 * (1 + __import__("math").cos(0)), rel=0.05)
    assert lr[0] < lr[1] and max(lr) <= 1e-3 and lr[-1] < max(lr)


def test_same_seed_same_training(items):
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        model = FasterRCNN(FasterRCNNConfig(**TINY))
        seen = []

        class Record(Callback):
            def on_batch_start(self, state):
                seen.append(state.batch[1][0]["boxes"].clone())

        torch.manual_seed(123)  # the caller's RNG must not matter, and must be restored
        before = torch.get_rng_state()
        train_detector(model, items, seconds=0.3, batch_size=2, seed=7, callbacks=(Record(),),
                       flips=("horizontal", "vertical"))
        assert torch.equal(torch.get_rng_state(), before)
        runs.append(seen[:1])
    torch.testing.assert_close(runs[0][0], runs[1][0])


def test_flip_detection_moves_boxes_and_masks():
    image = torch.zeros(3, 4, 6)
    image[:, 1, 0] = 1.0  # the pixel at row 1, column 0
    masks = image[:1].bool()
    target = {"boxes": torch.tensor([[0.0, 1.0, 1.0, 2.0]]), "labels": torch.tensor([1]), "masks": masks}
    flipped, t = flip_detection(image, target, horizontal=True)
    assert flipped[0, 1, 5] == 1 and t["boxes"].tolist() == [[5.0, 1.0, 6.0, 2.0]] and t["masks"][0, 1, 5]
    flipped, t = flip_detection(image, target, vertical=True)
    assert flipped[0, 2, 0] == 1 and t["boxes"].tolist() == [[0.0, 2.0, 1.0, 3.0]] and t["masks"][0, 2, 0]
    flipped, t = flip_detection(image, dict(target, proposals=target["boxes"]), horizontal=True, vertical=True)
    assert flipped[0, 2, 5] == 1 and t["proposals"].tolist() == t["boxes"].tolist() == [[5.0, 2.0, 6.0, 3.0]]
    assert target["boxes"].tolist() == [[0.0, 1.0, 1.0, 2.0]]  # the input is not changed


def test_mask_rcnn_targets_with_masks(items):
    data = preset_dataset("scenes64", 4, split="train")
    scenes = [data.scene(i) for i in range(4)]
    mask_items = [(s.image, {"boxes": s.boxes, "labels": s.labels, "masks": s.instance_masks}) for s in scenes]
    model = MaskRCNN(MaskRCNNConfig(**TINY, mask_widths=(8,)))
    history = train_detector(model, mask_items, seconds=0.5, batch_size=2, flips=("horizontal", "vertical"))
    assert "loss_mask" in history.losses and not model.training


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(seconds=0), ValueError, "seconds must be a number > 0"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive int"),
    (dict(seed=-1), ValueError, "seed must be an int >= 0"),
    (dict(flips="horizontal"), ValueError, "flips must be a tuple of names"),
    (dict(flips=("diagonal",)), ValueError, "flips must be a tuple of names"),
    (dict(clock="gpu"), ValueError, "clock must be one of"),
])
def test_bad_arguments(items, kwargs, error, match):
    args = dict(seconds=1.0) | kwargs
    with pytest.raises(error, match=match):
        train_detector(FasterRCNN(FasterRCNNConfig(**TINY)), items, **args)


def test_bad_datasets():
    model = FasterRCNN(FasterRCNNConfig(**TINY))
    with pytest.raises(ValueError, match="empty"):
        train_detector(model, [], seconds=1)
    with pytest.raises(TypeError, match="map-style"):
        train_detector(model, iter([]), seconds=1)
    with pytest.raises(TypeError, match="dataset items must be"):
        train_detector(model, [torch.zeros(3, 8, 8)], seconds=1)
    with pytest.raises(ValueError, match=r"float Tensor\[3, H, W\]"):
        train_detector(model, [(torch.zeros(8, 8), {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)})], seconds=1)
    with pytest.raises(ValueError, match=r"boxes'\] must have shape \[N, 4\]"):
        train_detector(model, [(torch.zeros(3, 8, 8), {"boxes": torch.zeros(1, 5), "labels": torch.ones(1)})],
                       seconds=1)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        train_detector(lambda x: x, [], seconds=1)


class _Oracle(torch.nn.Module):
    """Returns the true boxes of the images it was built with (found by pixel identity)."""

    def __init__(self, items):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.items = items

    def forward(self, images):
        out = []
        for image in images:
            target = next(t for x, t in self.items if torch.equal(x, image))
            out.append({"boxes": target["boxes"], "scores": torch.linspace(1, 0.5, len(target["boxes"])),
                        "labels": target["labels"],
                        **({"masks": target["masks"][:, None].float()} if "masks" in target else {})})
        return out


def test_evaluate_detector_scores_a_perfect_detector_one():
    from lecture_lib.train.detector import evaluate_detector

    data = preset_dataset("scenes64", 5, split="test")
    items = [(s.image, {"boxes": s.boxes, "labels": s.labels, "masks": s.instance_masks})
             for s in (data.scene(i) for i in range(5))]
    scores = evaluate_detector(_Oracle(items), items, batch_size=2, masks=True)
    assert scores["voc_map_50"] == 1.0 and scores["coco_map"] == 1.0 and scores["mask_map"] == 1.0
    assert scores["images"] == 5 and scores["objects"] == sum(len(t["boxes"]) for _, t in items)
    again, preds = evaluate_detector(_Oracle(items), items, return_predictions=True)
    assert again["voc_map_50"] == 1.0 and len(preds) == 5 and torch.equal(preds[0]["boxes"], items[0][1]["boxes"])
    # a detector that finds nothing scores 0
    empty = [(x, {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}) for x, _ in items]
    assert evaluate_detector(_Oracle(empty), [(x, t) for (x, _), (_, t) in zip(empty, items)])["voc_map_50"] == 0.0
    with pytest.raises(ValueError, match="at least one image"):
        evaluate_detector(_Oracle(items), [])
