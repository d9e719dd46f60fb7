"""lecture_lib.widgets.draw: the artists each function draws (patches, line styles, outlines,
colours, labels), the fate of each detection against hand-worked cases, readability of the
styles (WCAG contrast computed here, independently), and bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from lecture_lib.widgets.draw import (  # noqa: E402
    CLASS_COLOURS,
    INSTANCE_COLOURS,
    STYLES,
    box_legend,
    box_texts,
    detection_status,
    draw_boxes,
    draw_class_mask,
    draw_detections,
    draw_instance_masks,
    label_boxes,
    show_image,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def canvas(size=100, inches=5):
    _, ax = plt.subplots(figsize=(inches, inches))
    show_image(ax, torch.rand(3, size, size, generator=torch.Generator().manual_seed(0)))
    return ax


def luminance(colour):
    """WCAG 2 relative luminance, written out here (the reference for draw's label colours)."""
    def channel(c):
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in mcolors.to_rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b):
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def extents(ax):
    renderer = ax.figure.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in ax.texts]


# --- styles ---------------------------------------------------------------------------------------


def test_tp_fp_miss_differ_by_more_than_colour():
    # the line style and the word in the label each tell TP, FP and missed objects apart alone
    kinds = ("tp", "fp", "missed", "found")
    assert len({STYLES[k].linestyle for k in ("tp", "fp", "missed")}) == 3
    assert len({STYLES[k].tag for k in ("tp", "fp", "missed")}) == 3 and all(STYLES[k].tag for k in ("tp", "fp", "missed"))
    assert len({(STYLES[k].linestyle, STYLES[k].tag, STYLES[k].label) for k in kinds}) == len(kinds)
    assert STYLES["truth"].linestyle == STYLES["found"].linestyle == "--"  # an object is dashed on every page
    assert STYLES["prediction"].linestyle == STYLES["tp"].linestyle == "-"


@pytest.mark.parametrize("kind", sorted(STYLES))
def test_every_style_reads_on_light_and_dark_textures(kind):
    style = STYLES[kind]
    if style.outline:  # the black edge carries a light line over light textures
        assert contrast(style.colour, "black") >= 4.5
    ax = canvas()
    (text,) = label_boxes(ax, torch.tensor([[10.0, 30.0, 40.0, 60.0]]), ["circle 0.93"], kind)
    background = text.get_bbox_patch().get_facecolor()
    assert contrast(text.get_color(), background[:3]) >= 4.5  # WCAG AA for small text


# --- boxes and labels -------------------------------------------------------------------------------


def test_draw_boxes_artists_follow_the_style():
    ax = canvas()
    boxes = torch.tensor([[10.0, 20.0, 30.0, 50.0], [50.0, 50.0, 90.0, 70.0]])
    patches = draw_boxes(ax, boxes, "fp", label="false positives")
    assert patches == [p for p in ax.patches if isinstance(p, Rectangle)] and len(patches) == 2
    for patch, (x1, y1, x2, y2) in zip(patches, boxes.tolist()):
        assert patch.get_xy() == (x1, y1) and (patch.get_width(), patch.get_height()) == (x2 - x1, y2 - y1)
        assert mcolors.to_hex(patch.get_edgecolor()) == STYLES["fp"].colour.lower()
        assert patch.get_linestyle() == "-." and patch.get_linewidth() == STYLES["fp"].linewidth
        assert not patch.get_fill() and len(patch.get_path_effects()) == 2  # black edge, then the line
    assert [p.get_label() for p in patches] == ["false positives", "_nolegend_"]  # one legend entry
    assert len(ax.texts) == 0


def test_draw_boxes_overrides_and_single_box():
    ax = canvas()
    (patch,) = draw_boxes(ax, [5.0, 5.0, 20.0, 25.0], "proposal", colour="red", linewidth=3, linestyle=":",
                          outline=False)
    assert mcolors.to_hex(patch.get_edgecolor()) == "#ff0000" and patch.get_linewidth() == 3
    assert patch.get_linestyle() == ":" and patch.get_path_effects() == []
    assert draw_boxes(ax, torch.zeros(0, 4), "truth") == []


def test_labels_carry_the_kind_and_never_overlap():
    ax = canvas()
    box = [20.0, 20.0, 60.0, 60.0]
    draw_boxes(ax, torch.tensor([box] * 4), "tp", texts=["a", "b", "c", "d"])
    texts = [t.get_text() for t in ax.texts]
    assert texts[:3] == ["TP a", "TP b", "TP c"]  # above, below, inside; then further down inside
    assert [t.get_va() for t in ax.texts[:3]] == ["bottom", "top", "top"]
    found = extents(ax)
    assert not any(found[i].overlaps(found[j]) for i in range(len(found)) for j in range(i + 1, len(found)))
    label_boxes(ax, torch.tensor([box]), ["square"], "truth", tag=False)
    assert ax.texts[-1].get_text() == "square"  # truth has no tag; tag=False leaves it out anyway


def test_label_moves_left_at_the_right_edge_and_is_left_out_without_room():
    ax = canvas()
    (text,) = label_boxes(ax, torch.tensor([[92.0, 40.0, 99.0, 60.0]]), ["a long label"], "fp")
    frame = ax.get_window_extent(ax.figure.canvas.get_renderer())
    assert text is not None and extents(ax)[0].x1 <= frame.x1 + 1 and text.get_position()[0] < 92
    _, tiny = plt.subplots(figsize=(0.4, 0.4))
    show_image(tiny, torch.rand(3, 10, 10))
    assert label_boxes(tiny, torch.tensor([[0.0, 0.0, 10.0, 10.0]]), ["no room for this label"], "tp") == [None]
    assert len(tiny.texts) == 0


def test_label_colour_follows_its_background():
    ax = canvas()
    (dark,) = label_boxes(ax, torch.tensor([[10.0, 10.0, 30.0, 30.0]]), ["a"], "prediction", colour="#202060")
    assert dark.get_color() == "white"
    (light,) = label_boxes(ax, torch.tensor([[10.0, 60.0, 30.0, 90.0]]), ["c"], "truth")
    assert light.get_color() == "black"


def test_box_texts():
    assert box_texts(torch.tensor([1, 3]), class_names=("bg", "circle", "square", "triangle")) == ["circle", "triangle"]
    assert box_texts([2], torch.tensor([0.456])) == ["2 0.46"]
    with pytest.raises(ValueError, match=r"one entry per label \(2\), got 1"):
        box_texts([1, 2], [0.5])


# --- detections: fate of each box ----------------------------------------------------------------


def scene():
    # object 0 (class 1) found by d0, d1 a duplicate of it; object 1 (class 2) hit by d2 of the
    # wrong class (FP) and missed; d3 below the score threshold; d4 a TP of object 2 (class 2)
    target = {"boxes": torch.tensor([[10.0, 10.0, 40.0, 40.0], [50.0, 50.0, 80.0, 80.0], [60.0, 5.0, 90.0, 30.0]]),
              "labels": torch.tensor([1, 2, 2])}
    pred = {"boxes": torch.tensor([[11.0, 10.0, 40.0, 41.0], [10.0, 12.0, 39.0, 40.0], [50.0, 51.0, 80.0, 80.0],
                                   [60.0, 5.0, 90.0, 30.0], [61.0, 5.0, 90.0, 31.0]]),
            "scores": torch.tensor([0.9, 0.8, 0.7, 0.1, 0.6]), "labels": torch.tensor([1, 1, 1, 2, 2])}
    return pred, target


def test_detection_status_matches_the_hand_worked_scene():
    pred, target = scene()
    status, found = detection_status(pred, target, iou_threshold=0.5, score_threshold=0.3)
    assert status == ["tp", "fp", "fp", "dropped", "tp"]
    assert found.tolist() == [True, False, True]
    # with every detection kept: the 0.6 box comes first by score and takes object 2, so the
    # exact box (score 0.1) is a duplicate
    status, found = detection_status(pred, target, iou_threshold=0.5, score_threshold=0.0)
    assert status == ["tp", "fp", "fp", "fp", "tp"]
    assert found.tolist() == [True, False, True]


def test_detection_status_ignores_difficult_objects_and_checks_input():
    pred, target = scene()
    status, found = detection_status(pred, {**target, "difficult": torch.tensor([False, True, False])})
    assert status[2] == "fp"  # wrong class: the difficult object of class 2 does not excuse it
    pred2 = {**pred, "labels": torch.tensor([1, 1, 2, 2, 2])}
    status, _ = detection_status(pred2, {**target, "difficult": torch.tensor([False, True, False])}, score_threshold=0.3)
    assert status == ["tp", "fp", "ignored", "dropped", "tp"]
    with pytest.raises(ValueError, match=r"as many scores and labels as boxes \(5\), got 4 and 5"):
        detection_status({**pred, "scores": pred["scores"][:4]}, target)


def test_draw_detections_draws_each_fate_in_its_style():
    pred, target = scene()
    ax = canvas()
    counts = draw_detections(ax, pred, target, score_threshold=0.3, class_names=("bg", "circle", "square"))
    assert counts == {"tp": 2, "fp": 2, "ignored": 0, "dropped": 1, "missed": 1, "found": 2}
    by_colour = {}
    for patch in ax.patches:
        by_colour.setdefault(mcolors.to_hex(patch.get_edgecolor()), []).append(patch.get_linestyle())
    assert by_colour[STYLES["tp"].colour.lower()] == ["-", "-"]
    assert by_colour[STYLES["fp"].colour.lower()] == ["-.", "-."]
    assert by_colour[STYLES["missed"].colour.lower()] == [":"]
    assert by_colour[STYLES["found"].colour.lower()] == ["--", "--"]
    assert len(ax.patches) == 8  # 3 objects + 5 detections (the dropped one faint)
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["FP circle 0.70", "FP circle 0.80", "TP circle 0.90", "TP square 0.60", "missed square"]


def test_box_legend_shows_line_styles_beside_the_axis():
    ax = canvas()
    legend = box_legend(ax, ["tp", "fp", "missed"])
    assert [t.get_text() for t in legend.get_texts()] == ["TP", "FP", "object, missed"]
    assert [h.get_linestyle() for h in legend.legend_handles] == ["-", "-.", ":"]
    assert legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1  # off the data
    with pytest.raises(ValueError, match="kind must be one of"):
        box_legend(ax, ["true positive"])


# --- images and masks ---------------------------------------------------------------------------------


def test_show_image_puts_pixel_edges_on_whole_numbers():
    _, ax = plt.subplots()
    show_image(ax, torch.rand(3, 20, 30), "title")
    (image,) = ax.images
    assert image.get_extent() == [0, 30, 20, 0] and image.get_array().shape == (20, 30, 3)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("x (pixels)", "y (pixels)", "title")
    show_image(ax, np.zeros((5, 6)))
    assert ax.images[-1].get_extent() == [0, 6, 5, 0]
    with pytest.raises(ValueError, match=r"image must be .*got \[2, 3, 4, 5\]"):
        show_image(ax, torch.zeros(2, 3, 4, 5))


def test_draw_instance_masks_colours_each_object():
    masks = torch.zeros(3, 20, 20, dtype=torch.bool)
    masks[0, 2:6, 2:6] = masks[1, 10:15, 3:9] = masks[2, 12:18, 12:18] = True
    boxes = torch.tensor([[2.0, 2.0, 6.0, 6.0], [3.0, 10.0, 9.0, 15.0], [12.0, 12.0, 18.0, 18.0]])
    _, ax = plt.subplots()
    colours = draw_instance_masks(ax, masks, boxes, ["a", "b", "c"])
    assert colours == list(INSTANCE_COLOURS[:3])
    layers = [im for im in ax.images if isinstance(im, AxesImage)]
    assert len(layers) == 3
    for layer, mask, colour in zip(layers, masks, colours):
        rgba = layer.get_array()
        assert np.array_equal(rgba[..., 3] > 0, mask.numpy())  # exactly the object's pixels
        assert np.allclose(rgba[mask.numpy()][:, :3], mcolors.to_rgb(colour))
    assert [mcolors.to_hex(p.get_edgecolor()) for p in ax.patches] == [c.lower() for c in colours]
    assert len(ax.collections) == 3  # an outline (contour) per object
    with pytest.raises(ValueError, match=r"boxes must have one row per mask \(3\), got 2"):
        draw_instance_masks(ax, masks, boxes[:2])
    with pytest.raises(ValueError, match=r"masks must have shape \[N, H, W\], got \[20, 20\]"):
        draw_instance_masks(ax, masks[0])


def test_draw_class_mask_colours_names_and_legend():
    mask = torch.zeros(30, 30, dtype=torch.long)
    mask[2:10, 2:10] = 1  # a region of 64 pixels: named
    mask[20:28, 20:28] = 1  # a second object of the same class: named again
    mask[0:2, 25:28] = 3  # 6 pixels: too small to name
    names = ("background", "circle", "square", "triangle")
    _, ax = plt.subplots()
    draw_class_mask(ax, mask, names)
    (image,) = ax.images
    rgba = image.to_rgba(image.get_array())
    for c in (0, 1, 3):
        assert np.allclose(rgba[mask.numpy() == c][:, :3], mcolors.to_rgb(CLASS_COLOURS[c]))
    assert sorted(t.get_text() for t in ax.texts) == ["circle", "circle"]
    assert [t.get_position() for t in sorted(ax.texts, key=lambda t: t.get_position())] == [(6.0, 6.0), (24.0, 24.0)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["background", "circle", "triangle"]
    assert ax.get_xlabel() == "x (pixels)" and ax.images[0].get_extent() == [0, 30, 30, 0]
    _, inside = plt.subplots()
    draw_class_mask(inside, mask, names, legend="lower left", annotate=False)
    assert inside.get_legend()._loc == 3 and len(inside.texts) == 0  # matplotlib's code for "lower left"
    _, bare = plt.subplots()
    assert draw_class_mask(bare, mask, names, legend=None) is bare and bare.get_legend() is None
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 9\], got 12"):
        draw_class_mask(ax, torch.full((3, 3), 12), names)


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(3, 5), r"boxes must have shape \[N, 4\] \(or \[4\] for one box\), got \[3, 5\]"),
    ("kind", r"kind must be one of \[.*\], got 'box'"),
    ("texts", r"texts must have one entry per box \(1\), got 2"),
])
def test_bad_input_says_what_was_expected(bad, message):
    ax = canvas()
    with pytest.raises(ValueError, match=message):
        if bad == "kind":
            draw_boxes(ax, torch.zeros(1, 4), "box")
        elif bad == "texts":
            draw_boxes(ax, torch.zeros(1, 4), "tp", texts=["a", "b"])
        else:
            draw_boxes(ax, bad)
