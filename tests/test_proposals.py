"""lecture_lib.proposals: sliding windows, selective search, the family's default proposals."""

import pytest
import torch

from lecture_lib.models.fast_rcnn import FastRCNNConfig
from lecture_lib.models.rcnn import RCNNConfig
from lecture_lib.proposals import default_proposals, selective_search, sliding_window_proposals


def test_sliding_windows_count_and_inside_image():
    windows = sliding_window_proposals((32, 48), sizes=(16,), aspect_ratios=(1.0, 4.0), stride=8)
    # ratio 1: 16 x 16 windows, x1 in 0, 8, 16, 24, 32 and y1 in 0, 8, 16 -> 15;
    # ratio 4: w = 8, h = 32, x1 in 0, 8, ..., 40 (6) and y1 = 0 -> 6.
    assert windows.shape == (21, 4)
    assert windows[0].tolist() == [0.0, 0.0, 16.0, 16.0]
    assert windows[-1].tolist() == [40.0, 0.0, 48.0, 32.0]
    assert (windows[:, 2] <= 48).all() and (windows[:, 3] <= 32).all() and (windows >= 0).all()
    assert sliding_window_proposals((8, 8), sizes=(16,)).shape == (0, 4)


def test_selective_search_finds_a_uniform_square():
    image = torch.zeros(3, 40, 40)
    image[:, :, 20:] = 0.3  # two background halves ...
    image[0, 10:22, 5:17] = 1.0  # ... and a red square at x in [5, 17), y in [10, 22)
    proposals = selective_search(image, scales=(50.0,), min_size=5)
    assert proposals.shape[1] == 4 and len(proposals) == len({tuple(p) for p in proposals.tolist()})
    assert [5.0, 10.0, 17.0, 22.0] in proposals.tolist()
    assert [0.0, 0.0, 40.0, 40.0] in proposals.tolist()  # the last merge covers everything
    assert (proposals[:, 2] <= 40).all() and (proposals[:, :2] >= 0).all()


def test_default_proposals_are_the_configs_windows_for_every_image():
    images = torch.zeros(3, 3, 32, 48)
    for config in (RCNNConfig(window_sizes=(16.0,), aspect_ratios=(1.0, 4.0)), FastRCNNConfig(window_sizes=(16.0,),
                                                                                           aspect_ratios=(1.0, 4.0))):
        proposals = default_proposals(images, config)
        assert len(proposals) == 3
        expected = sliding_window_proposals((32, 48), (16.0,), (1.0, 4.0), stride=8)
        for p in proposals:
            assert torch.equal(p, expected)


def test_proposals_bad_input():
    with pytest.raises(ValueError, match=r"image_size must be \(height, width\)"):
        sliding_window_proposals(32)
    with pytest.raises(ValueError, match="stride must be a positive int"):
        sliding_window_proposals((32, 32), stride=0)
    with pytest.raises(ValueError, match="sizes and aspect_ratios must be positive"):
        sliding_window_proposals((32, 32), sizes=(-4,))
    with pytest.raises(ValueError, match=r"image must be a Tensor\[3, H, W\]"):
        selective_search(torch.rand(32, 32))
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, H, W\]"):
        default_proposals(torch.rand(3, 32, 32), RCNNConfig())
