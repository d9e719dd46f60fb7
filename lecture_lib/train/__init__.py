"""Training: one small ``fit()`` loop extended through callbacks (``loop.py``).

``from lecture_lib.train import fit, Callback, History, ...`` is the public entry point; the
modules of this package each hold one part of the loop.
"""

from lecture_lib.train.detector import train_detector  # noqa: F401
from lecture_lib.train.segmenter import train_segmenter  # noqa: F401
from lecture_lib.train.loop import (  # noqa: F401
    Callback,
    History,
    TrainState,
    accuracy,
    close_transient,
    evaluate,
    fit,
)

__all__ = ["train_detector", "train_segmenter", "Callback", "History", "TrainState", "accuracy", "close_transient", "evaluate", "fit"]
