"""lecture_lib.nms (the block-wise nms and the readable nms_loop) against torchvision.ops.nms /
batched_nms (ties included), against each other, hand cases, laws."""

import pytest
import torch
import torchvision.ops as tvops
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops.boxes import _batched_nms_coordinate_trick, _batched_nms_vanilla

from lecture_lib.boxes import box_iou
from lecture_lib.nms import BLOCK, _threshold_in, batched_nms, nms, nms_loop


def clustered_boxes(n, generator, n_clusters=5, dtype=torch.float32, spread=200.0):
    """Boxes jittered around a few centres, so that many overlap (what NMS is for)."""
    centres = torch.rand(n_clusters, 2, generator=generator, dtype=torch.float64) * spread
    which = torch.randint(0, n_clusters, (n,), generator=generator)
    centre = centres[which] + torch.randn(n, 2, generator=generator, dtype=torch.float64) * 6
    size = 20 + torch.rand(n, 2, generator=generator, dtype=torch.float64) * 30
    return torch.cat([centre - size / 2, centre + size / 2], 1).clamp(min=0).to(dtype)


def scattered_boxes(n, generator, dtype=torch.float32):
    """Small boxes all over a 500 x 500 canvas: few overlap, most are kept."""
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 500
    wh = 5 + torch.rand(n, 2, generator=generator, dtype=torch.float64) * 60
    return torch.cat([xy, xy + wh], 1).to(dtype)


NMS_VERSIONS = pytest.mark.parametrize("nms_fn", [nms, nms_loop], ids=["nms", "nms_loop"])


# --- against torchvision ------------------------------------------------------------------


@NMS_VERSIONS
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou_threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nms_equals_torchvision_distinct_scores(nms_fn, seed, iou_threshold, dtype):
    g = torch.Generator().manual_seed(seed)
    boxes = clustered_boxes(200, g, dtype=dtype)
    scores = torch.rand(200, generator=g, dtype=torch.float64).to(dtype)
    assert torch.equal(nms_fn(boxes, scores, iou_threshold), tvops.nms(boxes, scores, iou_threshold))


@pytest.mark.parametrize("n", [BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5, 2000])
@pytest.mark.parametrize("iou_threshold", [0.0, 0.5, 0.7])
@pytest.mark.parametrize("layout", ["clustered", "scattered", "rpn"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nms_many_blocks_equals_torchvision(n, iou_threshold, layout, dtype):
    # around and across the block size, up to the benchmark's 2 000 boxes, dense and sparse overlaps
    g = torch.Generator().manual_seed(n)
    if layout == "clustered":
        boxes = clustered_boxes(n, g, n_clusters=20, dtype=dtype)
    elif layout == "scattered":
        boxes = scattered_boxes(n, g, dtype=dtype)
    else:  # many boxes on few objects over a large image, like a region proposal network's
        boxes = clustered_boxes(n, g, n_clusters=8, dtype=dtype, spread=600.0)
    scores = torch.rand(n, generator=g, dtype=torch.float64).to(dtype)
    assert torch.equal(nms(boxes, scores, iou_threshold), tvops.nms(boxes, scores, iou_threshold))


@pytest.mark.parametrize("seed", range(8))
def test_nms_equals_nms_loop(seed):
    # the two versions against each other (not only both against torchvision)
    g = torch.Generator().manual_seed(50 + seed)
    n = int(torch.randint(1, 3 * BLOCK, (1,), generator=g))
    boxes = clustered_boxes(n, g, n_clusters=int(torch.randint(1, 10, (1,), generator=g)))
    scores = torch.randint(0, 4, (n,), generator=g).float()  # many ties
    iou_threshold = float(torch.rand(1, generator=g))
    assert torch.equal(nms(boxes, scores, iou_threshold), nms_loop(boxes, scores, iou_threshold))


@pytest.mark.parametrize("seed", range(40))
def test_nms_equals_torchvision_with_score_ties(seed):
    # (nms_loop: test_nms_equals_nms_loop)
    # Few distinct score values and up to 400 boxes: far more than the 16 elements up to which
    # torch's default (unstable) sort happens to keep equal scores in input order.
    g = torch.Generator().manual_seed(100 + seed)
    n = int(torch.randint(1, 400, (1,), generator=g))
    boxes = clustered_boxes(n, g, n_clusters=int(torch.randint(1, 8, (1,), generator=g)))
    levels = int(torch.randint(1, 5, (1,), generator=g))
    scores = torch.randint(0, levels, (n,), generator=g).float() / levels
    iou_threshold = float(torch.rand(1, generator=g))
    expected = tvops.nms(boxes, scores, iou_threshold)
    assert torch.equal(nms(boxes, scores, iou_threshold), expected)


@NMS_VERSIONS
@pytest.mark.parametrize("n", [2, 16, 17, 50, 300])
def test_nms_all_scores_equal_disjoint_boxes_keeps_torchvision_order(nms_fn, n):
    # nothing overlaps: every box is kept, and the order is purely the tie-breaking of the sort
    x = torch.arange(n, dtype=torch.float32) * 10
    boxes = torch.stack([x, torch.zeros(n), x + 5, torch.full((n,), 5.0)], 1)
    scores = torch.full((n,), 0.5)
    result = nms_fn(boxes, scores, 0.5)
    assert torch.equal(result, tvops.nms(boxes, scores, 0.5))
    assert result.tolist() == list(range(n))  # a stable sort: equal scores keep input order


@NMS_VERSIONS
@pytest.mark.parametrize("n", [40, 3 * BLOCK + 7])
def test_nms_chain_of_equal_scores_across_blocks(nms_fn, n):
    # each box overlaps its neighbour with IoU 7 / 13 = 0.54: box 0 removes 1, so 2 survives and
    # removes 3, ...; the chain crosses block borders, where a box of the next block is removed
    # by a kept box of the previous one
    x = torch.arange(n, dtype=torch.float32) * 3
    chain = torch.stack([x, torch.zeros(n), x + 10, torch.full((n,), 10.0)], 1)
    equal = torch.full((n,), 0.9)
    result = nms_fn(chain, equal, 0.5)
    assert torch.equal(result, tvops.nms(chain, equal, 0.5))
    assert result.tolist() == list(range(0, n, 2))


@NMS_VERSIONS
@pytest.mark.parametrize("n", [40, 2 * BLOCK + 3])
def test_nms_identical_boxes_identical_scores(nms_fn, n):
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]]).repeat(n, 1)
    scores = torch.ones(n)
    assert torch.equal(nms_fn(boxes, scores, 0.5), tvops.nms(boxes, scores, 0.5))
    assert nms_fn(boxes, scores, 0.5).tolist() == [0]


@NMS_VERSIONS
def test_nms_zero_area_boxes_equal_torchvision(nms_fn):
    # IoU of two empty boxes is 0 / 0 = NaN, and NaN > t is false: neither suppresses the other
    boxes = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert torch.equal(nms_fn(boxes, scores, 0.5), tvops.nms(boxes, scores, 0.5))
    assert nms_fn(boxes, scores, 0.5).tolist() == [0, 1, 2]


@NMS_VERSIONS
def test_threshold_is_compared_in_double_like_the_kernel(nms_fn):
    # IoU = 10 / 100 computed in float32 is 0.1f = 0.10000000149..., which is > 0.1 (double)
    # but not > float32(0.1); torchvision suppresses the second box.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 1.0, 10.0]])
    scores = torch.tensor([0.9, 0.8])
    assert tvops.nms(boxes, scores, 0.1).tolist() == [0]
    assert nms_fn(boxes, scores, 0.1).tolist() == [0]


@pytest.mark.parametrize("iou_threshold", [0.0, 0.1, 0.3, 1 / 3, 0.5, 0.7, 0.9, 1.0, 1e-40, 0.1 + 1e-17])
def test_threshold_in_float32_decides_like_float64(iou_threshold):
    # nms compares float32 IoUs with the float32 number just below the threshold: the same
    # decisions as comparing in float64, checked on every float32 value around the threshold
    t32 = _threshold_in(torch.float32, iou_threshold)
    assert t32 <= iou_threshold and torch.tensor(t32, dtype=torch.float32).item() == t32
    centre = torch.tensor(iou_threshold, dtype=torch.float32)
    values = [centre]
    for direction in (-1.0, 2.0):
        v = centre
        for _ in range(4):
            v = torch.nextafter(v, torch.tensor(direction))
            values.append(v)
    values = torch.stack(values)
    assert torch.equal(values > t32, values.double() > iou_threshold)
    assert _threshold_in(torch.float64, iou_threshold) == iou_threshold


# --- hand-computed cases --------------------------------------------------------------------


@NMS_VERSIONS
def test_nms_hand_computed(nms_fn):
    boxes = torch.tensor([
        [0.0, 0.0, 10.0, 10.0],    # 0: best of the first object
        [1.0, 0.0, 11.0, 10.0],    # 1: IoU with 0 = 90 / 110 = 0.82 -> suppressed
        [5.0, 0.0, 15.0, 10.0],    # 2: IoU with 0 = 50 / 150 = 0.33 -> kept at 0.5
        [50.0, 50.0, 60.0, 60.0],  # 3: another object
    ])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert nms_fn(boxes, scores, 0.5).tolist() == [0, 2, 3]
    assert nms_fn(boxes, scores, 0.3).tolist() == [0, 3]  # 0.33 > 0.3: box 2 goes too
    assert nms_fn(boxes, scores, 0.9).tolist() == [0, 1, 2, 3]
    # the order of the result follows the scores, not the input; now 1 (IoU 60 / 140 = 0.43
    # with 2) is kept and suppresses 0
    assert nms_fn(boxes, torch.tensor([0.1, 0.2, 0.3, 0.95]), 0.5).tolist() == [3, 2, 1]


@NMS_VERSIONS
def test_suppressed_box_does_not_suppress_others(nms_fn):
    # 1 is suppressed by 0; 2 overlaps 1 a lot but 0 only a little, so 2 survives
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [4.0, 0.0, 14.0, 10.0], [8.0, 0.0, 18.0, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms_fn(boxes, scores, 0.4).tolist() == [0, 2]


# --- batched_nms ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_batched_nms_equals_torchvision(seed):
    g = torch.Generator().manual_seed(seed)
    n = 250
    boxes = clustered_boxes(n, g)
    scores = torch.randint(0, 6, (n,), generator=g).float() / 6  # with ties
    idxs = torch.randint(0, 4, (n,), generator=g)
    assert torch.equal(batched_nms(boxes, scores, idxs, 0.5), tvops.batched_nms(boxes, scores, idxs, 0.5))


@pytest.mark.parametrize("n", [999, 1000, 1001, 1500])
@pytest.mark.parametrize("tied", [False, True])
def test_batched_nms_large_equals_torchvision(n, tied):
    # above 1000 boxes torchvision (and ours) switch to one NMS per category; with distinct
    # scores the result is also the coordinate trick's
    g = torch.Generator().manual_seed(11)
    boxes = clustered_boxes(n, g, n_clusters=20)
    scores = torch.randint(0, 5, (n,), generator=g).float() if tied else torch.rand(n, generator=g)
    idxs = torch.randint(0, 10, (n,), generator=g)
    ours = batched_nms(boxes, scores, idxs, 0.6)
    assert torch.equal(ours, tvops.batched_nms(boxes, scores, idxs, 0.6))
    if not tied:
        assert torch.equal(ours, _batched_nms_coordinate_trick(boxes, scores, idxs, 0.6))


def test_batched_nms_categories_do_not_suppress_each_other():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.5).tolist() == [0]


def test_batched_nms_negative_coordinates_still_separates_categories():
    # torchvision's offset (max + 1) assumes coordinates >= 0; ours translates first
    g = torch.Generator().manual_seed(3)
    boxes = clustered_boxes(120, g) - 150.0
    scores = torch.rand(120, generator=g)
    idxs = torch.randint(0, 3, (120,), generator=g)
    assert torch.equal(batched_nms(boxes, scores, idxs, 0.5), _batched_nms_vanilla(boxes, scores, idxs, 0.5))


# --- properties -----------------------------------------------------------------------------

coordinate = st.integers(min_value=0, max_value=60)
extent = st.integers(min_value=1, max_value=40)
box = st.tuples(coordinate, coordinate, extent, extent).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(box, st.integers(0, 3)), min_size=1, max_size=40), st.floats(0.0, 1.0))
def test_nms_laws_and_torchvision(items, iou_threshold):
    boxes = torch.tensor([b for b, _ in items], dtype=torch.float32)
    scores = torch.tensor([s for _, s in items], dtype=torch.float32)
    keep = nms(boxes, scores, iou_threshold)
    assert torch.equal(keep, tvops.nms(boxes, scores, iou_threshold))
    iou = box_iou(boxes, boxes).double()
    kept = keep.tolist()
    # kept boxes do not overlap each other by more than the threshold
    for a in range(len(kept)):
        for b in range(a + 1, len(kept)):
            assert iou[kept[a], kept[b]] <= iou_threshold
    # every dropped box overlaps a kept box with at least its score by more than the threshold
    for j in set(range(len(boxes))) - set(kept):
        assert any(iou[k, j] > iou_threshold and scores[k] >= scores[j] for k in kept)
    # scores of the result never increase
    assert bool((scores[keep][1:] <= scores[keep][:-1]).all())


# --- empty and bad input --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_empty_inputs(dtype):
    for nms_fn in (nms, nms_loop):
        out = nms_fn(torch.zeros(0, 4, dtype=dtype), torch.zeros(0, dtype=dtype), 0.5)
        assert out.shape == (0,) and out.dtype == torch.int64
    out = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert out.shape == (0,) and out.dtype == torch.int64


@NMS_VERSIONS
def test_bad_input(nms_fn):
    nms = nms_fn  # noqa: F811 - both versions check alike
    boxes, scores = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 2), torch.tensor([0.5, 0.4])
    with pytest.raises(ValueError, match=r"boxes must have shape \[N, 4\], got \[2, 5\]"):
        nms(torch.zeros(2, 5), scores, 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \[N\] = \[2\] like boxes, got \[3\]"):
        nms(boxes, torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"got \[2, 1\]"):
        nms(boxes, scores[:, None], 0.5)
    with pytest.raises(TypeError, match=r"same dtype as boxes \(torch.float32\), got torch.float64"):
        nms(boxes, scores.double(), 0.5)
    with pytest.raises(TypeError, match="floating point .* got dtype torch.int64"):
        nms(boxes.long(), scores.long(), 0.5)
    with pytest.raises(ValueError, match=r"iou_threshold must be in \[0, 1\], got 1.5"):
        nms(boxes, scores, 1.5)
    with pytest.raises(ValueError, match=r"iou_threshold must be in \[0, 1\], got -0.1"):
        nms(boxes, scores, -0.1)
    with pytest.raises(ValueError, match=r"iou_threshold must be in \[0, 1\], got 2"):
        batched_nms(boxes, scores, torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match=r"got nan"):
        nms(boxes, scores, float("nan"))
    with pytest.raises(TypeError, match="iou_threshold must be a number, got Tensor"):
        nms(boxes, scores, torch.tensor(0.5))
    with pytest.raises(ValueError, match=r"x1 <= x2"):
        nms(torch.tensor([[2.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0]), 0.5)
    with pytest.raises(ValueError, match=r"idxs must have shape \[N\] = \[2\] like boxes, got \[1\]"):
        batched_nms(boxes, scores, torch.tensor([0]), 0.5)
    with pytest.raises(TypeError, match="idxs must hold integer category indices, got dtype torch.float32"):
        batched_nms(boxes, scores, torch.tensor([0.0, 1.0]), 0.5)
    with pytest.raises(TypeError, match="idxs must be a torch.Tensor"):
        batched_nms(boxes, scores, [0, 1], 0.5)


def test_nms_runs_on_one_thread_and_restores_the_callers_count():
    # like torchvision's CPU kernel; the caller's setting comes back, also after an error
    g = torch.Generator().manual_seed(2)
    boxes, scores = clustered_boxes(300, g), torch.rand(300, generator=g)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert torch.equal(nms(boxes, scores, 0.5), tvops.nms(boxes, scores, 0.5))
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            nms(boxes, scores, 2.0)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
