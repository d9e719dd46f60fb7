"""Progress bars for ``fit``, as a callback: a bar over the epochs that stays (with the last
epoch's losses and accuracies) and, under it, one transient bar over each epoch's batches."""

from __future__ import annotations

import math

from lecture_lib.train.state import Callback, TrainState

__all__ = ["ProgressBars", "close_transient"]


def close_transient(bar) -> None:
    """Close a ``leave=False`` tqdm bar so that it leaves no trace.

    In a notebook, tqdm hides a finished transient bar with the CSS ``visibility: hidden``, which
    keeps its 32 px: a saved notebook, and the static book built from it, showed a blank box for
    every bar (3 000 px of white on a page that trained for 60 epochs). ``display: none`` takes
    no room. Console bars just close.
    """
    layout = getattr(getattr(bar, "container", None), "layout", None)  # tqdm.notebook's ipywidgets HBox
    if layout is not None:
        layout.display = "none"
    bar.close()


def _length(iterable) -> int | None:
    try:
        return len(iterable)
    except TypeError:  # a generator or an IterableDataset loader: the bar counts without a total
        return None


class ProgressBars(Callback):
    """tqdm bars for one ``fit``: ``fit(progress=True)`` puts one first in its callback list.

    Args:
        epochs: total epochs of the run; ``initial``: epochs already done (resume);
        train_loader: its length, when it has one, is each epoch bar's total.
    """

    def __init__(self, epochs: int, initial: int = 0, train_loader=None):
        from tqdm.auto import tqdm

        # the outer bar stays, so a notebook (and the static book built from it) keeps a record
        # of the run; the per-epoch bars are transient
        self.overall = tqdm(total=epochs, initial=initial, desc="fit", unit="epoch")
        self.total_batches = _length(train_loader)
        self.inner = None

    def on_epoch_start(self, state: TrainState) -> None:
        from tqdm.auto import tqdm

        if self.inner is None:  # one transient bar, reset every epoch (see close_transient)
            self.inner = tqdm(total=self.total_batches, leave=False)
        else:
            self.inner.reset(total=self.total_batches)
        self.inner.set_description(f"epoch {state.epoch + 1}/{state.epochs}")

    def on_step_end(self, state: TrainState) -> None:
        self.inner.set_postfix(loss=f"{state.history.step_loss[-1]:.4g}", refresh=False)
        self.inner.update(1)

    def on_epoch_end(self, state: TrainState) -> None:
        row = state.history.epochs[-1]
        self.overall.set_postfix({k: f"{row[k]:.4g}" for k in ("train_loss", "train_acc", "val_loss", "val_acc")
                                  if math.isfinite(row[k])}, refresh=False)
        self.overall.update(1)

    def on_fit_end(self, state: TrainState) -> None:
        if self.inner is not None:
            close_transient(self.inner)
        self.overall.close()
