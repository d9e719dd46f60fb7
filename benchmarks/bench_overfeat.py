"""Overfeat: one pass of the convolutionalised classifier vs explicit sliding windows.

Target (issue 7): on 4 images of 160 x 160 with 32 x 32 windows every 8 pixels (17 x 17 = 289
windows per image), the convolutional version (``fc_to_conv``) gives the same score and box
maps as running the FC classifier on every window (max abs difference < 1e-4 in float32) and is
at least 3x faster than the batched sliding windows (``paired_ratio`` median of
sliding time / conv time), on one CPU thread. The windows overlap: 289 windows of 32 x 32 pixels are 11.6 times
the image's pixels, which is the convolution work the shared computation saves. A literal Python
loop over windows (one crop per forward pass) is timed once as well.

    python benchmarks/bench_overfeat.py                 # full
    LECTURE_QUICK=1 python benchmarks/bench_overfeat.py  # smoke run (64 x 64 images)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import paired_ratio, write_result  # noqa: E402

from lecture_lib.config import pick  # noqa: E402
from lecture_lib.models.overfeat import OverfeatConfig, OverfeatNet, fc_to_conv, sliding_windows  # noqa: E402


def main() -> dict:
    # One thread: on a shared machine, two OpenMP threads waiting for each other add milliseconds
    # to every small op and hide the difference in work we want to measure.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    size = pick(160, 64)
    n_images = 4
    repeats = pick(9, 3)
    model = OverfeatNet(OverfeatConfig(num_classes=4, window=32, widths=(16, 32, 64), hidden=128)).eval()
    conv = fc_to_conv(model)
    images = torch.rand(n_images, 3, size, size)
    stride, window = model.config.stride, model.config.window
    per_side = (size - window) // stride + 1

    with torch.no_grad():
        conv_maps = conv(images)
        window_maps = sliding_windows(model, images)
        max_diff = max((a - b).abs().max().item() for a, b in zip(conv_maps, window_maps))
        timing = paired_ratio(lambda: conv(images), lambda: sliding_windows(model, images), repeats=repeats)
        start = time.perf_counter()
        for i in range(per_side):  # the literal loop, one image, one crop at a time
            for j in range(per_side):
                model(images[:1, :, i * stride : i * stride + window, j * stride : j * stride + window])
        loop_s = (time.perf_counter() - start) * n_images  # scaled to the whole batch

    ratio = timing["ratio_median"]
    overlap = per_side**2 * window**2 / size**2
    result = {
        "images": [n_images, 3, size, size],
        "windows_per_image": per_side**2,
        "window": window,
        "stride": stride,
        "window_pixels_over_image_pixels": overlap,
        "max_abs_diff": max_diff,
        "paired_ratio": ratio,
        "ratios": timing["ratios"],
        "conv_s": timing["candidate_s_median"],
        "sliding_batched_s": timing["reference_s_median"],
        "sliding_loop_s_estimate": loop_s,
        "loop_over_conv": loop_s / timing["candidate_s_median"],
        "target": "fc_to_conv equals the FC net on every window (max abs diff < 1e-4, float32) and is "
                  ">= 3x faster than batched sliding windows (paired ratio) on 4 x 3 x 160 x 160, "
                  "32 x 32 windows, stride 8",
        "measured": f"paired ratio {ratio:.1f}x (conv {timing['candidate_s_median'] * 1e3:.0f} ms, batched windows "
                    f"{timing['reference_s_median'] * 1e3:.0f} ms, Python loop over windows {loop_s * 1e3:.0f} ms), "
                    f"max abs diff {max_diff:.1e}, {per_side ** 2} windows per {size} x {size} image"
                    f"{'' if size == 160 else ' (quick size)'}",
        "passed": bool(ratio >= 3.0 and max_diff < 1e-4),
        "quick": size != 160,
    }
    path = write_result("overfeat", result)
    print(result["measured"], "->", "PASS" if result["passed"] else "FAIL", f"({path})")
    return result


if __name__ == "__main__":
    main()
