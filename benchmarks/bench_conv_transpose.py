"""Speed of lecture_lib.upsampling.conv_transpose2d (matmul + fold) vs F.conv_transpose2d.

Target (issue 6): the vectorized transpose convolution is within 2x of PyTorch's on a
1 x 64 x 64 x 64 input, i.e. ``reference time / our time >= 0.5``, for the typical learnable
2x upsampling layer (64 -> 64 channels, 4x4 filter, stride 2, padding 1), for a
stride-1 3x3 layer and for U-Net's 2x2 up-conv of stride 2 (no overlap: a reshape, no fold).
The loop version is timed too, for the notebook's "why vectorize" point.

    python benchmarks/bench_conv_transpose.py            # full
    LECTURE_QUICK=1 python benchmarks/bench_conv_transpose.py   # smoke run (smaller input)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import paired_ratio, write_result  # noqa: E402

from lecture_lib.config import pick  # noqa: E402
from lecture_lib.upsampling import conv_transpose2d, conv_transpose2d_loop  # noqa: E402

CONFIGS = {  # name: (kernel, stride, padding, output_padding)
    "k4_s2_p1": (4, 2, 1, 0),
    "k3_s2_p1_op1": (3, 2, 1, 1),
    "k3_s1_p1": (3, 1, 1, 0),
    "k2_s2": (2, 2, 0, 0),  # U-Net's up-conv 2x2: kernel == stride, computed as a reshape
}


def main() -> dict:
    torch.manual_seed(0)
    size = pick(64, 16)
    channels = pick(64, 16)
    repeats = pick(15, 3)
    x = torch.randn(1, channels, size, size)
    result = {"input_shape": list(x.shape), "configs": {}}
    worst = float("inf")
    for name, (k, s, p, op) in CONFIGS.items():
        w = torch.randn(channels, channels, k, k)
        b = torch.randn(channels)
        ours = conv_transpose2d(x, w, b, s, p, op)
        torch.testing.assert_close(ours, F.conv_transpose2d(x, w, b, s, p, op), rtol=1e-4, atol=1e-3)
        timing = paired_ratio(lambda: conv_transpose2d(x, w, b, s, p, op),
                              lambda: F.conv_transpose2d(x, w, b, s, p, op), repeats=repeats)
        start = time.perf_counter()
        conv_transpose2d_loop(x, w, b, s, p, op)
        loop_s = time.perf_counter() - start
        result["configs"][name] = {
            "paired_ratio": timing["ratio_median"],  # F time / our time: >= 0.5 means within 2x
            "ours_s": timing["candidate_s_median"],
            "torch_s": timing["reference_s_median"],
            "loop_s": loop_s,
        }
        worst = min(worst, timing["ratio_median"])
        print(f"{name}: ours {timing['candidate_s_median'] * 1e3:.1f} ms, F.conv_transpose2d "
              f"{timing['reference_s_median'] * 1e3:.1f} ms, paired ratio {timing['ratio_median']:.2f}, "
              f"loop {loop_s * 1e3:.0f} ms")
    result.update(
        target="conv_transpose2d (vectorized) within 2x of F.conv_transpose2d on a 1x64x64x64 input "
               "(paired ratio F time / our time >= 0.5 for every config)",
        measured=f"worst paired ratio {worst:.2f} over {len(CONFIGS)} configs "
                 f"({'full' if size == 64 else 'quick'} size {list(x.shape)})",
        ratio=worst,
        paired_ratio=worst,
        passed=bool(worst >= 0.5),
        quick=size != 64,
        load_average_1min=os.getloadavg()[0],  # the machine is shared: timings are noisy
    )
    path = write_result("conv_transpose", result)
    print(result["measured"], "->", "PASS" if result["passed"] else "FAIL", f"({path})")
    return result


if __name__ == "__main__":
    main()
