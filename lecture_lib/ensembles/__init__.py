"""Model ensembles: true ensembles, snapshot ensembles, and three ways to combine members.

* **True ensemble**: train M models independently (different random initializations and data
  orders) and combine their predictions. Costs M training runs.
* **Snapshot ensemble** (Huang et al. 2017): one run with a cyclic learning rate -- cosine
  annealing with warm restarts (Loshchilov & Hutter 2017, SGDR). At the end of each cycle the LR
  is near 0 and the model sits in a (local) minimum: save a snapshot; the restart to a large LR
  kicks it towards another one. M snapshots for the price of one run.

Combining the members' outputs on the same inputs:

* **prediction averaging**: mean of the softmax probabilities, then arg max;
* **majority vote**: each member votes for its arg max class (ties: see :func:`majority_vote`);
* **parameter averaging**: one network whose weights are the mean of the members' weights
  (one forward pass at test time). It only works when the members lie in one basin of the loss,
  as consecutive snapshots of one run do (the idea behind Polyak averaging and SWA, Izmailov
  et al. 2018). Independently trained networks are not aligned -- hidden unit 3 of one net has
  nothing to do with hidden unit 3 of the other (any permutation of the units gives the same
  function) -- so their average is a poor network. BatchNorm's running statistics of an
  averaged network are *not* the average of the members' statistics (the activations change
  when the weights do), so they are recomputed with one pass over training data
  (:func:`recompute_bn_statistics`, the same as ``torch.optim.swa_utils.update_bn``).

One file per concept: ``combining`` (averaging, voting), ``averaging`` (parameter averaging,
BatchNorm statistics), ``snapshots`` (cyclic learning rate, snapshot callback), ``training``
(ensembles as models, training both kinds), ``experiment`` (the lecture's comparison table),
``stored`` (the stored result). Every name is imported from ``lecture_lib.ensembles``.
"""

from lecture_lib.ensembles.averaging import average_models, average_state_dicts, recompute_bn_statistics
from lecture_lib.ensembles.combining import TIE_BREAKS, average_predictions, majority_vote
from lecture_lib.ensembles.experiment import (LECTURE_TABLE, EnsembleExperiment, EnsembleMembers, compare_ensembles,
                                              ensemble_costs, evaluate_ensembles, train_ensembles)
from lecture_lib.ensembles.snapshots import SnapshotCallback, cosine_restart_lr, cosine_restart_scheduler
from lecture_lib.ensembles.stored import (ENSEMBLES_STORED, SMALL_BN_IMAGES, ensemble_test_loaders, ensemble_train_loader,
                                          ensembles_recipe)
from lecture_lib.ensembles.training import (Ensemble, fold_batch_norm, predict_logits, small_cnn, train_snapshot_ensemble,
                                            train_true_ensemble)

__all__ = [
    "average_predictions",
    "majority_vote",
    "average_state_dicts",
    "average_models",
    "recompute_bn_statistics",
    "cosine_restart_lr",
    "cosine_restart_scheduler",
    "SnapshotCallback",
    "Ensemble",
    "predict_logits",
    "fold_batch_norm",
    "train_true_ensemble",
    "train_snapshot_ensemble",
    "small_cnn",
    "TIE_BREAKS",
    "LECTURE_TABLE",
    "EnsembleExperiment",
    "EnsembleMembers",
    "train_ensembles",
    "evaluate_ensembles",
    "compare_ensembles",
    "ensemble_costs",
    "ensemble_train_loader",
    "ensemble_test_loaders",
    "ensembles_recipe",
    "ENSEMBLES_STORED",
    "SMALL_BN_IMAGES",
]
