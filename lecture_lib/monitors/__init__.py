"""Monitoring training: what to look at while a network learns, as ``fit()`` callbacks.

Each concept has a pure function (tested against NumPy / scikit-learn), a callback that calls
it during training, and a ``plot_*(..., ax=None)`` that draws on a matplotlib axis and returns it.

=========================  ===========================  =====================================
what                       function                     callback / plot
=========================  ===========================  =====================================
loss per step              ``smooth``                   ``History.step_loss`` / ``plot_loss``
train vs val accuracy      ``accuracy_gap``             ``History`` / ``plot_accuracy``
activations per layer      ``activation_stats``         ``ActivationStats`` / ``plot_activation_stats``,
                                                        ``plot_activation_histograms``
gradients per layer        ``gradient_stats``           ``GradientStats`` / ``plot_gradient_stats``,
                                                        ``plot_gradient_histograms``
feature-rank variation     ``feature_profile``          ``*.profiles`` / ``plot_feature_profile``
spatial variation          ``spatial_profile``          ``ActivationStats.spatial`` / ``plot_spatial_profile``
update / weight ratio      ``update_ratio``,            ``UpdateRatio`` / ``plot_update_ratio``
                           ``ratio_verdict``
learning trajectory        ``pca_2d``, ``loss_grid``    ``WeightTrajectory`` / ``plot_trajectory``
=========================  ===========================  =====================================

What the lecture lists ("Other Features to capture and plot"): per-layer activations and
gradients by their *magnitude*, *centre* (mean or median), *breadth* (standard deviation or
quartiles) and *spatial / feature-rank variations*; ``activation_stats`` and ``gradient_stats``
return all of them, ``feature_profile`` and ``spatial_profile`` the variations.

The update/weight ratio has one rule for the whole course (``RATIO_TARGET`` 1e-3, too high from
``RATIO_TOO_HIGH`` 1e-2, too low below ``RATIO_TOO_LOW`` 1e-4): ``update_ratio.py`` says where
each number comes from on the slides.

One file per concept: ``curves.py`` (loss and accuracy), ``statistics.py`` (the numbers of one
layer), ``activations.py`` and ``gradients.py`` (their callbacks and plots), ``update_ratio.py``,
``trajectory.py``; ``_common.py`` holds what they share. Every name imports from
``lecture_lib.monitors``.
"""

from lecture_lib.monitors.activations import (ActivationStats, plot_activation_histograms, plot_activation_stats,
                                              plot_feature_profile, plot_spatial_profile)
from lecture_lib.monitors.curves import accuracy_gap, plot_accuracy, plot_loss, smooth
from lecture_lib.monitors.gradients import GradientStats, plot_gradient_histograms, plot_gradient_stats
from lecture_lib.monitors.statistics import activation_stats, feature_profile, gradient_stats, spatial_profile
from lecture_lib.monitors.trajectory import WeightTrajectory, loss_grid, pca_2d, plot_trajectory
from lecture_lib.monitors.update_ratio import (RATIO_TARGET, RATIO_TOO_HIGH, RATIO_TOO_LOW, UpdateRatio,
                                               diagnose_learning_rate, plot_update_ratio, ratio_verdict,
                                               update_ratio)

__all__ = [
    "RATIO_TARGET", "RATIO_TOO_HIGH", "RATIO_TOO_LOW",
    "smooth", "accuracy_gap", "activation_stats", "gradient_stats", "feature_profile", "spatial_profile",
    "update_ratio", "ratio_verdict", "pca_2d", "loss_grid", "diagnose_learning_rate",
    "ActivationStats", "GradientStats", "UpdateRatio", "WeightTrajectory",
    "plot_loss", "plot_accuracy", "plot_activation_stats", "plot_activation_histograms", "plot_feature_profile",
    "plot_spatial_profile", "plot_gradient_stats", "plot_gradient_histograms", "plot_update_ratio",
    "plot_trajectory",
]
