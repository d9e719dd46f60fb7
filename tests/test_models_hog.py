"""lecture_lib.models.hog: HoG features against scikit-image, dense windows, the trained detector."""

import numpy as np
import pytest
import torch
from skimage.feature import hog

from lecture_lib.data.shapes import ShapesDataset
from lecture_lib.metrics.detection import mean_average_precision
from lecture_lib.models.hog import (HogConfig, HogDetector, dense_windows, feature_pyramid, hog_blocks, hog_features,
                                   inner_boxes, window_boxes, window_features)


def _skimage_hog(crop: torch.Tensor, config: HogConfig) -> np.ndarray:
    return hog(crop.permute(1, 2, 0).double().numpy(), orientations=config.orientations,
               pixels_per_cell=(config.cell, config.cell), cells_per_block=(config.block, config.block),
               block_norm="L2-Hys", channel_axis=-1, feature_vector=True)


def test_config_sizes_and_validation():
    config = HogConfig(window=24, cell=4, block=2, orientations=9)
    assert config.blocks_per_window == 5 and config.num_features == 5 * 5 * 2 * 2 * 9
    with pytest.raises(ValueError, match="multiple of cell"):
        HogConfig(window=26)
    with pytest.raises(ValueError, match="margin must be"):
        HogConfig(margin=12)
    with pytest.raises(ValueError, match="scales must be positive"):
        HogConfig(scales=(1.0, 0.0))
    with pytest.raises(ValueError, match="window must be a positive int"):
        HogConfig(window=0)
    with pytest.raises(ValueError, match="nms_threshold"):
        HogConfig(nms_threshold=1.5)


def test_hog_features_equal_skimage():
    config = HogConfig()
    crops = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    features = hog_features(crops, config)
    assert features.shape == (3, config.num_features)
    for crop, row in zip(crops, features):
        np.testing.assert_allclose(row, _skimage_hog(crop, config))
    with pytest.raises(ValueError, match=r"crops must have shape \[N, 3, 24, 24\]"):
        hog_features(torch.rand(2, 3, 20, 20), config)


@pytest.mark.parametrize("seed", range(6))
def test_hog_blocks_equal_skimage(seed):
    """Our vectorised HoG is skimage's: random sizes (not multiples of the cell), cells, blocks
    and bins, on noise and on flat-coloured images (exact 0, 45, 90 degree gradients, bin edges)."""
    rng = np.random.default_rng(seed)
    cell = int(rng.choice([3, 4, 5]))
    config = HogConfig(window=3 * cell, cell=cell, block=int(rng.choice([1, 2, 3])),
                       orientations=int(rng.choice([7, 9, 12])))
    height, width = rng.integers(config.cell * config.block, 70, size=2)
    images = rng.random((3, height, width, 3))
    images[1] = np.round(images[1] * 3) / 3  # flat regions and exactly horizontal / vertical edges
    images[2] = 0.5  # no gradient at all
    batch = hog_blocks(images, config)
    for image, blocks in zip(images, batch):
        expected = hog(image, orientations=config.orientations, pixels_per_cell=(config.cell, config.cell),
                       cells_per_block=(config.block, config.block), block_norm="L2-Hys", channel_axis=-1,
                       feature_vector=False)
        assert blocks.shape == expected.shape
        np.testing.assert_allclose(blocks, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hog_blocks(images[0], config), batch[0])  # one image = a batch of one
    with pytest.raises(ValueError, match="images must be at least"):
        hog_blocks(np.zeros((config.cell * config.block - 1, 40, 3)), config)


def test_dense_window_is_the_hog_of_its_crop():
    """A window's slice of the level's blocks is the HoG of the window's crop: exactly, when the
    image is constant around the window's border (the only place the two gradients differ)."""
    config = HogConfig(scales=(1.0,))
    image = torch.full((3, 48, 56), 0.5)
    y, x = 8, 12  # a window at block position (2, 3): both multiples of the cell
    image[:, y + 3 : y + 21, x + 3 : x + 21] = torch.rand(3, 18, 18, generator=torch.Generator().manual_seed(1))
    features, boxes = dense_windows(image, config)
    cols = 56 // 4 - 24 // 4 + 1
    assert len(features) == (48 // 4 - 24 // 4 + 1) * cols
    index = (y // 4) * cols + x // 4
    torch.testing.assert_close(boxes[index], torch.tensor([12.0, 8.0, 36.0, 32.0]))
    np.testing.assert_allclose(features[index], _skimage_hog(image[:, y : y + 24, x : x + 24], config), atol=1e-12)


def test_window_features_of_training_windows_equal_the_dense_ones():
    """Training windows are featurised with one cell of context, so that they look like the windows
    of the feature pyramid the detector scans (at scale 1 and away from the image border: exactly)."""
    config = HogConfig(scales=(1.0,))
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2))
    features, boxes = dense_windows(image, config)
    interior = ((boxes[:, :2] >= config.cell) & (boxes[:, 2:] <= 64 - config.cell)).all(1).nonzero()[:, 0]
    assert len(interior) > 10
    np.testing.assert_allclose(window_features(image, boxes[interior], config), features[interior], atol=1e-6)
    # a bare crop of the same window differs at its border cells: that is what the context is for
    bare = hog_features(image[None, :, 4:28, 4:28], config)[0]
    index = int(((boxes[:, 0] == 4) & (boxes[:, 1] == 4)).nonzero()[0, 0])
    assert np.abs(bare - features[index]).max() > 1e-3


def test_pyramid_levels_and_window_boxes_in_image_pixels():
    config = HogConfig(scales=(2.0, 1.0, 0.5, 0.25))
    image = torch.rand(3, 64, 64)
    levels = feature_pyramid(image, config)
    assert [level.size for level in levels] == [(128, 128), (64, 64), (32, 32)]  # 16 < 24: skipped
    features, boxes = dense_windows(image, config)
    assert features.shape[1] == config.num_features and len(features) == len(boxes)
    sides = (boxes[:, 2] - boxes[:, 0]).unique()
    torch.testing.assert_close(sides, torch.tensor([12.0, 24.0, 48.0]))  # window / scale
    assert boxes.min() >= 0 and boxes.max() <= 64
    # the same geometry without features; one box per feature vector, level by level
    torch.testing.assert_close(window_boxes((64, 64), config), boxes)
    per_level = [(s // 4 - 24 // 4 + 1) ** 2 for s in (128, 64, 32)]
    assert len(boxes) == sum(per_level)


def test_inner_boxes_remove_the_margin():
    config = HogConfig(window=24, margin=4)
    windows = torch.tensor([[0.0, 0.0, 24.0, 24.0], [10.0, 20.0, 58.0, 68.0]])
    torch.testing.assert_close(inner_boxes(windows, config), torch.tensor([[4.0, 4.0, 20.0, 20.0],
                                                                           [18.0, 28.0, 50.0, 60.0]]))


def test_detector_learns_the_shapes_and_returns_detector_outputs():
    config = HogConfig(jitters=2, negatives_per_image=10, hard_negatives_per_image=5)
    train = ShapesDataset(40, image_size=64, n_objects=(1, 3), split="train", task="detection")
    detector = HogDetector(config).fit(train)
    test = ShapesDataset(15, image_size=64, n_objects=(1, 3), split="test", task="detection")
    preds = detector([test[i][0] for i in range(len(test))])
    for pred in preds:
        assert set(pred) == {"boxes", "scores", "labels"} and pred["labels"].dtype == torch.int64
        assert pred["labels"].min() >= 1 and pred["labels"].max() <= 4
        assert (pred["scores"][:-1] >= pred["scores"][1:]).all()  # best first
        assert pred["boxes"].min() >= 0 and pred["boxes"].max() <= 64
    result = mean_average_precision(preds, [test[i][1] for i in range(len(test))], method="voc")
    assert result["map"] > 0.15, result["map"]  # chance is ~0: it finds shapes


def test_detector_errors():
    detector = HogDetector()
    with pytest.raises(RuntimeError, match="call fit"):
        detector.predict(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match="at least one image"):
        detector.fit([])
    with pytest.raises(ValueError, match=r"image must be a Tensor\[3, H, W\]"):
        dense_windows(torch.rand(64, 64), HogConfig())


def test_hard_negative_mining_stops_when_a_round_finds_nothing_new(monkeypatch):
    """Every refit of the SVM has new hard negatives; once a round finds none, training stops
    (a refit on the same data would give the same SVM)."""
    from sklearn.svm import LinearSVC

    sizes = []
    fit = LinearSVC.fit
    monkeypatch.setattr(LinearSVC, "fit", lambda self, x, y: (sizes.append(len(x)), fit(self, x, y))[1])
    train = ShapesDataset(20, image_size=64, n_objects=(1, 3), split="train", task="detection")
    HogDetector(HogConfig(hard_negative_rounds=8, negatives_per_image=1)).fit(train)  # round 1 finds some
    assert 2 <= len(sizes) < 9, sizes
    assert all(before < after for before, after in zip(sizes, sizes[1:])), sizes
