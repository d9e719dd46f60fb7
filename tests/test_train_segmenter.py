"""lecture_lib.train.segmenter: train_segmenter on a plain list, its budget clock, losses against
scikit-learn, the random symmetries, evaluation against sklearn's confusion matrix, bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score

from lecture_lib.data.shapes import NUM_CLASSES, preset_dataset
from lecture_lib.models.unet import UNet, UNetConfig
from lecture_lib.train import History, train_segmenter
from lecture_lib.train.segmenter import (
    BudgetClock,
    SegmenterRecipe,
    _CheckedItems,
    _random_symmetry,
    dice_loss,
    evaluate_segmenter,
    predict_masks,
    segmentation_loss,
)


def scenes(n=8, split="train", size=32):
    """A plain Python list of (image [3, H, W] float32, mask [H, W] int64) pairs."""
    data = preset_dataset("scenes64", n, split=split)
    # 32 x 32 crops keep the tests fast on one thread
    return [(image[:, :size, :size].clone(), mask[:size, :size].clone()) for image, mask in data]


def small_unet(seed=0):
    torch.manual_seed(seed)
    return UNet(UNetConfig(num_classes=NUM_CLASSES, base_channels=4, depth=2))


# --- training -----------------------------------------------------------------------------------


def test_train_segmenter_on_a_plain_list_learns_and_leaves_eval_mode():
    data = scenes(8)
    model = small_unet()
    images = torch.stack([image for image, _ in data])
    masks = torch.stack([mask for _, mask in data])
    before = F.cross_entropy(model.eval()(images), masks).item()
    history = train_segmenter(model, data, seconds=4, batch_size=4, seed=0, device="cpu")
    assert isinstance(history, History)
    assert not model.training
    assert history.stop_reason.startswith("budget of 4 s spent")
    # the budget was spent, and not much more (the last step finishes)
    assert 4 <= history.epochs[-1]["budget_seconds"] < 8
    assert history.epochs[-1]["steps"] == len(history.step_loss) >= 5
    with torch.no_grad():
        after = F.cross_entropy(model(images), masks).item()
    assert after < 0.9 * before
    first, last = history.step_loss[:3], history.step_loss[-3:]
    assert sum(last) < 0.8 * sum(first)


def test_same_seed_same_steps_other_seed_other_steps():
    data = scenes(8)
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        model = small_unet(seed=0)
        runs[name] = train_segmenter(model, data, seconds=0.6, batch_size=4, seed=seed, device="cpu").step_loss
    k = min(len(r) for r in runs.values())
    assert k >= 3
    # same order, same flips, same numbers (up to the order of float sums in parallel kernels,
    # whose last-digit differences training amplifies: compare the first steps)
    assert runs["a"][:3] == pytest.approx(runs["b"][:3], rel=1e-5)
    assert runs["a"][1:3] != pytest.approx(runs["c"][1:3], rel=1e-3)


def test_dataset_smaller_than_a_batch_and_any_image_size():
    data = [(torch.rand(3, 20, 28), torch.randint(0, 3, (20, 28))) for _ in range(3)]
    model = UNet(num_classes=3, base_channels=4, depth=1)
    history = train_segmenter(model, data, seconds=0.5, batch_size=16, device="cpu")
    assert len(history.step_loss) >= 1 and all(math.isfinite(v) for v in history.step_loss)


def test_a_model_without_config_gets_its_classes_from_a_forward_pass():
    model = torch.nn.Conv2d(3, 4, 3, padding=1)
    data = [(torch.rand(3, 16, 16), torch.randint(0, 4, (16, 16))) for _ in range(4)]
    train_segmenter(model, data, seconds=0.2, batch_size=2, device="cpu")
    data[1] = (torch.rand(3, 16, 16), torch.full((16, 16), 4))
    with pytest.raises(ValueError, match=r"dataset item 1: mask class ids must be in 0 \.\. 3"):
        train_segmenter(model, data, seconds=5, batch_size=2, device="cpu")


def test_the_cosine_follows_the_budget_not_the_steps():
    # lr = peak * cos schedule of the fraction of the budget spent: about 0 at the end
    data = scenes(4)
    history = train_segmenter(small_unet(), data, seconds=1, batch_size=2, device="cpu",
                              recipe=SegmenterRecipe(peak_lr=1e-2, warmup_steps=1))
    assert history.epochs[-1]["lr"] < 1e-2 * 0.05
    flat = train_segmenter(small_unet(), data, seconds=0.3, batch_size=2, device="cpu",
                           recipe=SegmenterRecipe(peak_lr=1e-2, warmup_steps=1, schedule="constant"))
    assert flat.epochs[-1]["lr"] == pytest.approx(1e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_uses_mixed_precision_and_channels_last_and_comes_back_contiguous():
    data = scenes(8)
    model = small_unet()
    history = train_segmenter(model, data, seconds=2, batch_size=4)
    assert next(model.parameters()).is_cuda and not model.training
    assert all(p.is_contiguous() for p in model.parameters())
    assert all(math.isfinite(v) for v in history.step_loss)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make_item,error,match", [
    (lambda im, m: (im, m[:-1]), ValueError, r"dataset item 2: mask must have shape \[H, W\] = \[32, 32\] "
                                             r"\(the image's\), got \[31, 32\]"),
    (lambda im, m: (im, m.int()), TypeError, "dataset item 2: mask must hold int64 class ids, got dtype torch.int32"),
    (lambda im, m: (im, m.float()), TypeError, "mask must hold int64 class ids, got dtype torch.float32"),
    (lambda im, m: (im, torch.full_like(m, NUM_CLASSES)), ValueError,
     r"dataset item 2: mask class ids must be in 0 \.\. 4 \(num_classes = 5, background included\), got 5"),
    (lambda im, m: (im, m - 1), ValueError, "mask class ids must be in 0 .. 4 .*got -1"),
    (lambda im, m: ((im * 255).to(torch.uint8), m), TypeError,
     "dataset item 2: image must be a float tensor .*got dtype torch.uint8"),
    (lambda im, m: (im[0], m), ValueError, r"image must have shape \[3, H, W\], got \[32, 32\]"),
    (lambda im, m: (im,), TypeError, "dataset item 2 must be a pair"),
    (lambda im, m: (im.numpy(), m), TypeError, "must be torch.Tensors, got ndarray and Tensor"),
])
def test_bad_items_raise_naming_the_item(make_item, error, match):
    data = scenes(4)
    data[2] = make_item(*data[2])
    with pytest.raises(error, match=match):
        train_segmenter(small_unet(), data, seconds=30, batch_size=4, device="cpu")


def test_a_bad_first_item_fails_before_training():
    data = scenes(2)
    data[0] = (data[0][0].double().to(torch.int64), data[0][1])
    with pytest.raises(TypeError, match="dataset item 0: image must be a float tensor"):
        train_segmenter(small_unet(), data, seconds=30, device="cpu")


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(seconds=0), ValueError, "seconds must be a finite number > 0, got 0"),
    (dict(seconds=-1.0), ValueError, "seconds must be a finite number > 0, got -1.0"),
    (dict(seconds=float("nan")), ValueError, "seconds must be a finite number > 0, got nan"),
    (dict(seconds="10"), ValueError, "seconds must be a finite number > 0, got '10'"),
    (dict(seconds=1, batch_size=0), ValueError, "batch_size must be an int >= 1, got 0"),
    (dict(seconds=1, seed=-1), ValueError, "seed must be an int >= 0, got -1"),
    (dict(seconds=1, recipe={"peak_lr": 1e-3}), TypeError, "recipe must be a SegmenterRecipe, got dict"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        train_segmenter(small_unet(), scenes(2), device="cpu", **kwargs)


def test_bad_model_and_dataset():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        train_segmenter(lambda x: x, scenes(2), seconds=1)
    with pytest.raises(ValueError, match="dataset must hold at least one"):
        train_segmenter(small_unet(), [], seconds=1)
    with pytest.raises(TypeError, match="dataset must be a map-style data set"):
        train_segmenter(small_unet(), (pair for pair in scenes(2)), seconds=1)
    data = scenes(4) + [(torch.rand(3, 16, 16), torch.zeros(16, 16, dtype=torch.int64))]
    with pytest.raises(ValueError, match="all images of a batch must have the same size"):
        train_segmenter(small_unet(), data, seconds=30, batch_size=5, device="cpu")


@pytest.mark.parametrize("kwargs,match", [
    (dict(peak_lr=0), "peak_lr must be > 0"),
    (dict(loss="focal"), r"loss must be one of \('ce', 'dice', 'ce\+dice'\), got 'focal'"),
    (dict(schedule="step"), "schedule must be one of"),
    (dict(warmup_steps=0), "warmup_steps must be an int >= 1"),
    (dict(crop=0), "crop must be None or an int >= 1, got 0"),
    (dict(crop=32.0), "crop must be None or an int >= 1, got 32.0"),
    (dict(crop_fraction=1.5), r"crop_fraction must be in \[0, 1\], got 1.5"),
])
def test_bad_recipe(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SegmenterRecipe(**kwargs)


def test_crops_are_windows_of_image_and_mask_together_and_small_images_stay_whole():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 40, 50, generator=g)
    mask = (image[0] * 5).long()
    items = _CheckedItems([(image, mask)], 5, 3, flips=False, generator=g, crop=16)
    for _ in range(20):
        window, window_mask = items[0]
        assert window.shape == (3, 16, 16) and torch.equal(window_mask, (window[0] * 5).long())
        # a window of the image: find where it starts
        found = [(t, l) for t in range(25) for l in range(35) if torch.equal(image[:, t:t + 16, l:l + 16], window)]
        assert len(found) == 1
    whole = _CheckedItems([(image, mask)], 5, 3, flips=False, generator=g, crop=64)[0]
    assert torch.equal(whole[0], image) and torch.equal(whole[1], mask)
    assert SegmenterRecipe().crop == 64 and SegmenterRecipe().crop_fraction == 0.8


def test_training_switches_to_whole_images_after_crop_fraction():
    data = scenes(4)  # 32 x 32
    seen = []
    model = small_unet()
    model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])) if m.training else None)
    train_segmenter(model, data, seconds=0.6, batch_size=2, device="cpu",
                    recipe=SegmenterRecipe(crop=16, crop_fraction=0.5, warmup_steps=1))
    assert seen[0] == (16, 16) and seen[-1] == (32, 32)
    assert seen == sorted(seen)  # crops first, then whole images, never back


# --- pieces ---------------------------------------------------------------------------------------


def test_dice_loss_of_confident_scores_is_one_minus_sklearn_f1():
    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 4, (2, 9, 11), generator=g)
    pred = torch.where(torch.rand(masks.shape, generator=g) < 0.6, masks, torch.randint(0, 4, masks.shape, generator=g))
    logits = 100.0 * F.one_hot(pred, 4).permute(0, 3, 1, 2).float()  # softmax = one-hot of pred
    f1 = f1_score(masks.flatten(), pred.flatten(), average=None, labels=range(4))
    assert dice_loss(logits, masks, eps=0.0).item() == pytest.approx(1 - f1.mean(), abs=1e-6)
    assert dice_loss(100.0 * F.one_hot(masks, 4).permute(0, 3, 1, 2).float(), masks).item() == pytest.approx(0, abs=1e-6)


def test_segmentation_loss_is_ce_dice_or_their_sum():
    g = torch.Generator().manual_seed(1)
    logits, masks = torch.randn(2, 3, 5, 6, generator=g), torch.randint(0, 3, (2, 5, 6), generator=g)
    ce, dice = F.cross_entropy(logits, masks), dice_loss(logits, masks)
    torch.testing.assert_close(segmentation_loss(logits, masks, "ce"), ce)
    torch.testing.assert_close(segmentation_loss(logits, masks, "dice"), dice)
    torch.testing.assert_close(segmentation_loss(logits, masks, "ce+dice"), ce + dice)
    with pytest.raises(ValueError, match="loss must be one of"):
        segmentation_loss(logits, masks, "bce")


@pytest.mark.parametrize("shape", [(12, 12), (8, 13)])
def test_random_symmetries_move_image_and_mask_together(shape):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, *shape, generator=g)
    mask = (image[0] * 5).long()  # the mask is a pixel-wise function of the image
    seen = set()
    for _ in range(64):
        new_image, new_mask = _random_symmetry(image, mask, g)
        assert torch.equal(new_mask, (new_image[0] * 5).long())
        assert sorted(new_image.flatten().tolist()) == sorted(image.flatten().tolist())
        seen.add(tuple(new_image[0].flatten().tolist()))
    assert len(seen) == (8 if shape[0] == shape[1] else 4)


def test_budget_clock_counts_cpu_seconds_per_thread():
    clock = BudgetClock("cpu").start()
    assert clock.name == f"process CPU seconds / {torch.get_num_threads()} threads"
    cpu = __import__("time").process_time()
    while __import__("time").process_time() - cpu < 0.2:  # busy: one thread's CPU time
        pass
    assert clock.spent() == pytest.approx(0.2 / torch.get_num_threads(), rel=0.3)


def test_evaluate_segmenter_equals_sklearn_confusion_matrix():
    data = scenes(6, split="test")
    model = small_unet().eval()
    cm = evaluate_segmenter(model, data, NUM_CLASSES, batch_size=4)
    images = torch.stack([image for image, _ in data])
    masks = torch.stack([mask for _, mask in data])
    pred = predict_masks(model, images, batch_size=4)
    assert pred.shape == masks.shape and pred.dtype == torch.int64
    with torch.no_grad():
        torch.testing.assert_close(pred, model(images).argmax(1))
    expected = sk_confusion_matrix(masks.flatten(), pred.flatten(), labels=range(NUM_CLASSES))
    assert cm.matrix.tolist() == expected.tolist()
    with pytest.raises(ValueError, match=r"images must be a Tensor\[N, C, H, W\], got \[3, 32, 32\]"):
        predict_masks(model, images[0])
