"""lecture_lib.ensembles: combining rules on hand-made logits, parameter averaging, BN
re-estimation against torch.optim.swa_utils.update_bn, the cosine-restart schedule against
torch.optim.lr_scheduler.CosineAnnealingWarmRestarts, and snapshot saving through fit()."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, TensorDataset

from lecture_lib.ensembles import (Ensemble, SnapshotCallback, average_models, average_predictions,
                                   average_state_dicts, cosine_restart_lr, cosine_restart_scheduler,
                                   fold_batch_norm, majority_vote, predict_logits, recompute_bn_statistics, small_cnn,
                                   train_snapshot_ensemble, train_true_ensemble)
from lecture_lib.layers import BatchNorm2d
from lecture_lib.train import evaluate

# --- prediction averaging and voting on hand-made logits -----------------------------------------


def _logits_from_probs(probs):
    return torch.tensor(probs, dtype=torch.float64).log()


def test_average_predictions_hand_computed():
    # two members, one sample, three classes
    member_a = _logits_from_probs([[0.6, 0.3, 0.1]])
    member_b = _logits_from_probs([[0.2, 0.7, 0.1]])
    avg = average_predictions([member_a, member_b])
    torch.testing.assert_close(avg, torch.tensor([[0.4, 0.5, 0.1]], dtype=torch.float64))
    assert avg.argmax(1).item() == 1


def test_average_predictions_differs_from_vote():
    # the lecture's point: averaging uses confidence, voting does not.
    # votes: 0, 0, 1 -> class 0; mean probabilities: class 1 wins (0.2+0.2+0.95)/3 > (0.6+0.6+0.05)/3
    members = [_logits_from_probs([[0.6, 0.2, 0.2]]), _logits_from_probs([[0.6, 0.2, 0.2]]),
               _logits_from_probs([[0.05, 0.95, 0.0001]])]
    assert majority_vote(members).item() == 0
    assert average_predictions(members).argmax(1).item() == 1


def test_average_predictions_equals_mean_softmax_random():
    logits = torch.randn(5, 40, 7, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([torch.softmax(l, 1) for l in logits]).mean(0)
    torch.testing.assert_close(average_predictions(logits), expected)
    torch.testing.assert_close(average_predictions(logits).sum(1), torch.ones(40))
    # one member: its own softmax
    torch.testing.assert_close(average_predictions(logits[:1]), torch.softmax(logits[0], 1))


def test_majority_vote_hand_computed():
    # 3 members, 4 samples, 3 classes; members' arg max per sample:
    # a: 0 1 2 2 | b: 0 2 2 1 | c: 1 2 0 0  -> winners 0, 2, 2, and a 3-way tie 2/1/0 -> 0
    picks = torch.tensor([[0, 1, 2, 2], [0, 2, 2, 1], [1, 2, 0, 0]])
    logits = nn.functional.one_hot(picks, 3).float()
    torch.testing.assert_close(majority_vote(logits), torch.tensor([0, 2, 2, 0]))


def test_majority_vote_lowest_tie_break_equals_scipy_mode():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 500, 6, generator=g)  # 4 members: 2-2 ties are frequent
    votes = logits.argmax(2).numpy()
    expected = stats.mode(votes, axis=0, keepdims=False).mode  # the smallest among tied modes
    np.testing.assert_array_equal(majority_vote(logits, tie_break="lowest").numpy(), expected)


def test_majority_vote_average_tie_break():
    # members vote 2 and 0 (a tie); averaged probabilities prefer class 2
    a = _logits_from_probs([[0.3, 0.1, 0.6]])
    b = _logits_from_probs([[0.45, 0.1, 0.45 - 1e-6]])
    assert majority_vote([a, b], tie_break="lowest").item() == 0
    assert majority_vote([a, b], tie_break="average").item() == 2
    # a class without votes never wins, however large its averaged probability
    c = _logits_from_probs([[0.34, 0.33, 0.33]])
    d = _logits_from_probs([[0.33, 0.34, 0.33]])
    e = _logits_from_probs([[0.0001, 0.4999, 0.5]])
    assert majority_vote([c, d, e], tie_break="average").item() == 1  # tie 0/1/2... 1 has highest mean prob
    assert majority_vote([c, c, e], tie_break="average").item() == 0  # 2 votes for class 0 beat class 2


def test_majority_vote_without_ties_ignores_tie_rule():
    logits = torch.randn(5, 200, 4, generator=torch.Generator().manual_seed(2))
    lowest, average = majority_vote(logits, "lowest"), majority_vote(logits, "average")
    counts = torch.stack([(logits.argmax(2) == k).sum(0) for k in range(4)], 1)
    top2 = counts.topk(2, dim=1).values
    clear = top2[:, 0] > top2[:, 1]
    assert torch.equal(lowest[clear], average[clear])
    assert torch.equal(lowest[clear], counts.argmax(1)[clear])


def test_combiners_empty_batch():
    logits = torch.empty(3, 0, 5)
    assert average_predictions(logits).shape == (0, 5)
    assert majority_vote(logits).shape == (0,)


def test_combiner_errors():
    with pytest.raises(ValueError, match=r"logits must have shape \[M, N, C\]"):
        average_predictions(torch.randn(4, 5))
    with pytest.raises(ValueError, match="same shape"):
        majority_vote([torch.randn(3, 4), torch.randn(3, 5)])
    with pytest.raises(ValueError, match="at least one member"):
        average_predictions([])
    with pytest.raises(ValueError, match="tie_break must be one of"):
        majority_vote(torch.randn(2, 3, 4), tie_break="random")
    with pytest.raises(TypeError, match="floating point"):
        majority_vote(torch.ones(2, 3, 4, dtype=torch.long))


# --- parameter averaging ------------------------------------------------------------------------


def _net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def test_average_of_identical_models_is_the_model():
    net = _net(0)
    net(torch.randn(8, 3, 6, 6))  # move the BN running statistics
    avg = average_models([net, net, net]).eval()
    net.eval()
    for key, value in net.state_dict().items():
        torch.testing.assert_close(avg.state_dict()[key], value)
    x = torch.randn(5, 3, 6, 6)
    torch.testing.assert_close(avg(x), net(x))
    assert avg is not net


def test_average_state_dicts_hand_computed_and_weighted():
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, 6.0]), "n": torch.tensor(9)}
    torch.testing.assert_close(average_state_dicts([a, b])["w"], torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(average_state_dicts([a, b], weights=[3, 1])["w"], torch.tensor([1.0, 3.0]))
    assert average_state_dicts([a, b])["n"].item() == 3  # integers: copied from the first
    out = average_state_dicts([a])
    out["w"].add_(1)
    assert a["w"].tolist() == [0.0, 2.0]  # no shared storage


def test_average_state_dicts_matches_swa_averaged_model():
    # torch's AveragedModel keeps a running equal-weight mean of the parameters
    nets = [_net(s) for s in range(4)]
    swa = torch.optim.swa_utils.AveragedModel(nets[0])
    for n in nets:  # the first call copies, the next ones average
        swa.update_parameters(n)
    ours = average_models(nets)
    for (name, p), q in zip(ours.named_parameters(), swa.module.parameters()):
        torch.testing.assert_close(p, q, msg=name)


def test_average_state_dicts_errors():
    with pytest.raises(ValueError, match="at least one state dict"):
        average_state_dicts([])
    with pytest.raises(ValueError, match="same architecture"):
        average_state_dicts([{"w": torch.ones(2)}, {"v": torch.ones(2)}])
    with pytest.raises(ValueError, match=r"'w' must have shape \[2\]"):
        average_state_dicts([{"w": torch.ones(2)}, {"w": torch.ones(3)}])
    with pytest.raises(ValueError, match="non-negative"):
        average_state_dicts([{"w": torch.ones(2)}, {"w": torch.ones(2)}], weights=[1, -1])


@pytest.mark.parametrize("with_labels", [True, False])
def test_recompute_bn_statistics_equals_update_bn(with_labels):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 3, 6, 6, generator=g) * 2 + 1
    y = torch.randint(0, 3, (40,), generator=g)
    data = TensorDataset(x, y) if with_labels else x
    loader = DataLoader(data, batch_size=7)  # uneven last batch: equal weight per batch
    ours, ref = _net(1), _net(1)
    ours.eval(), ref.eval()
    recompute_bn_statistics(ours, loader)
    update_bn(loader, ref)
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, msg=key)
    assert not ours.training  # mode restored
    assert ours[1].momentum == 0.1  # momentum restored


def test_recompute_bn_statistics_handles_our_batchnorm():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(30, 2, 5, 5, generator=g) + 3
    loader = DataLoader(x, batch_size=8)
    ours = nn.Sequential(nn.Conv2d(2, 2, 1), BatchNorm2d(2))
    ref = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))
    ref.load_state_dict(ours.state_dict())
    recompute_bn_statistics(ours, loader)
    update_bn(loader, ref)
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, msg=key)


# --- fast prediction: BatchNorm folded into the convolutions ------------------------------------


def _trained_looking_cnn(seed=0):
    # small_cnn with BatchNorm statistics and affine parameters far from their initial 0 / 1
    torch.manual_seed(seed)
    model = small_cnn(width=4, num_classes=3)
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.normal_()
            layer.running_var.uniform_(0.2, 3.0)
            layer.weight.data.normal_()
            layer.bias.data.normal_()
    return model


def test_fold_batch_norm_equals_the_model_in_eval_mode():
    model = _trained_looking_cnn().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(20, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 4  # the model keeps its own
    assert model.training and not folded.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model.eval()(x), atol=1e-5, rtol=1e-5)


def test_fold_batch_norm_leaves_other_layers_alone():
    # BatchNorm not directly after a convolution (here after a ReLU) cannot be folded into it
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU(), nn.BatchNorm2d(3)).eval()
    folded = fold_batch_norm(model)
    assert [type(m) for m in folded] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]


def test_predict_logits_equals_each_model_in_eval_mode():
    models = [_trained_looking_cnn(seed).train() for seed in range(3)]
    loader = DataLoader(_toy_loader(40, seed=5).dataset, batch_size=16)
    logits, targets = predict_logits(models, loader)
    x, y = loader.dataset.tensors
    assert torch.equal(targets, y) and all(m.training for m in models)  # models are not changed
    with torch.no_grad():
        expected = torch.stack([m.eval()(x) for m in models])
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="at least one model"):
        predict_logits([], loader)
    with pytest.raises(ValueError, match="no batches"):
        predict_logits(models, [])


# --- cosine restarts ---------------------------------------------------------------------------


@pytest.mark.parametrize("cycle_length,t_mult,eta_min", [(5, 1, 0.0), (7, 1, 0.01), (3, 2, 0.0), (4, 3, 0.005)])
def test_cosine_restart_lr_equals_torch(cycle_length, t_mult, eta_min):
    base_lr = 0.1
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr)
    sched = CosineAnnealingWarmRestarts(opt, T_0=cycle_length, T_mult=t_mult, eta_min=eta_min)
    ours_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr)
    ours_sched = cosine_restart_scheduler(ours_opt, cycle_length, eta_min=eta_min, t_mult=t_mult)
    for step in range(60):
        expected = opt.param_groups[0]["lr"]
        assert cosine_restart_lr(step, base_lr, cycle_length, eta_min, t_mult) == pytest.approx(expected, abs=1e-12)
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(expected, abs=1e-12)
        opt.step(), ours_opt.step()
        sched.step(), ours_sched.step()


def test_cosine_restart_lr_hand_computed():
    # Huang et al.: start of a cycle = base_lr, middle = base_lr / 2, restart after cycle_length steps
    assert cosine_restart_lr(0, 0.2, 10) == pytest.approx(0.2)
    assert cosine_restart_lr(5, 0.2, 10) == pytest.approx(0.1)
    assert cosine_restart_lr(9, 0.2, 10) == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.9)))
    assert cosine_restart_lr(10, 0.2, 10) == pytest.approx(0.2)


def test_cosine_restart_errors():
    with pytest.raises(ValueError, match="cycle_length must be an int >= 1"):
        cosine_restart_lr(0, 0.1, 0)
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        cosine_restart_lr(-1, 0.1, 5)
    with pytest.raises(ValueError, match="t_mult must be an int >= 1"):
        SnapshotCallback(3, t_mult=0)


def test_snapshot_cycle_ends():
    assert [e for e in range(1, 13) if SnapshotCallback(3).is_cycle_end(e)] == [3, 6, 9, 12]
    assert [e for e in range(1, 30) if SnapshotCallback(2, t_mult=2).is_cycle_end(e)] == [2, 6, 14]


# --- training through fit ----------------------------------------------------------------------


def _toy_loader(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 3, 8, 8, generator=g) * 0.5
    x[torch.arange(n), y] += 1.5  # class k: channel k is brighter
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=g)


def test_snapshot_ensemble_through_fit():
    loader = _toy_loader()
    models, history, cb = train_snapshot_ensemble(lambda: small_cnn(width=4, num_classes=3), loader,
                                                  n_cycles=3, cycle_epochs=2, lr=0.05, device="cpu", progress=False)
    assert len(models) == len(cb.snapshots) == 3 and cb.epochs == [2, 4, 6]
    assert len(history) == 6 and history["snapshot"][1::2] == [1, 2, 3]
    # per-batch schedule, 3 batches per epoch: half way through a cycle after epoch 1, and
    # restarted to the full LR after epoch 2 (history records the LR at the end of each epoch)
    assert history["lr"][0] == pytest.approx(cosine_restart_lr(3, 0.05, 6))
    assert history["lr"][1] == pytest.approx(0.05)
    # snapshots are different networks, each the model at the end of its cycle
    w = [m[0].weight for m in models]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    logits, targets = predict_logits(models, loader)
    assert logits.shape == (3, 96, 3) and targets.shape == (96,)
    # Ensemble(...) is prediction averaging
    acc = evaluate(Ensemble(models), DataLoader(loader.dataset, batch_size=50))["acc"]
    order_free = predict_logits(models, DataLoader(loader.dataset, batch_size=50))
    expected = (average_predictions(order_free[0]).argmax(1) == order_free[1]).float().mean().item()
    assert acc == pytest.approx(expected)


def test_true_ensemble_members_differ():
    loader = _toy_loader(64, seed=1)
    models, histories = train_true_ensemble(lambda: small_cnn(width=4, num_classes=3), loader, n_models=2,
                                            epochs=1, device="cpu", progress=False)
    assert len(models) == len(histories) == 2
    assert not torch.equal(models[0][0].weight, models[1][0].weight)
    assert all(not m.training for m in models)


def test_compare_ensembles_reports_every_row_with_costs():
    from lecture_lib.ensembles import LECTURE_TABLE, EnsembleExperiment, compare_ensembles

    loader = _toy_loader(64, seed=2)  # 2 batches an epoch
    test_loader = DataLoader(_toy_loader(60, seed=3).dataset, batch_size=30)
    config = EnsembleExperiment(n_models=2, epochs=2, n_snapshots=4)
    result = compare_ensembles(lambda: small_cnn(width=4, num_classes=3), loader, test_loader, config=config,
                               device="cpu", progress=False)
    assert set(LECTURE_TABLE) <= set(result["accuracy"]) == set(result["cost"])
    assert all(0.0 <= v <= 1.0 for v in result["accuracy"].values())
    # the lecture's budget rule: the snapshot run lasts as long as the baseline
    assert result["cost"]["snapshot_vote"]["epochs"] == result["cost"]["baseline"]["epochs"] == 2
    assert result["cost"]["true_average"]["epochs"] == 4
    # the baseline is the first member of the true ensemble
    assert result["accuracy"]["baseline"] == result["members"]["true"][0]
    assert len(result["members"]["snapshot"]) == 4
    assert result["history"]["snapshot"]["snapshot_steps"] == [1, 2, 3, 4]


def test_snapshots_within_the_baseline_epochs():
    # 3 batches an epoch, 2 epochs = 6 steps, 3 cycles of 2 steps: snapshots after steps 2, 4, 6
    loader = _toy_loader()
    models, history, cb = train_snapshot_ensemble(lambda: small_cnn(width=4, num_classes=3), loader,
                                                  n_cycles=3, epochs=2, lr=0.05, device="cpu", progress=False)
    assert cb.steps == [2, 4, 6] and cb.epochs == [1, 2, 2] and len(models) == 3 and len(history) == 2
    assert history["snapshots_taken"] == [1, 2]
    # the LR restarts every 2 steps: after epoch 1 (step 3) it is half way through cycle 2
    assert history["lr"][0] == pytest.approx(cosine_restart_lr(3, 0.05, 2))
    # the last snapshot is the model at the end of training
    with pytest.raises(ValueError, match="do not split into 4 equal cycles"):
        train_snapshot_ensemble(lambda: small_cnn(width=4, num_classes=3), loader, n_cycles=4, epochs=2)
    with pytest.raises(ValueError, match="exactly one of cycle_epochs and epochs"):
        train_snapshot_ensemble(lambda: small_cnn(width=4, num_classes=3), loader, n_cycles=2, epochs=2,
                                cycle_epochs=1)


def test_snapshot_callback_step_mode_errors():
    with pytest.raises(ValueError, match="exactly one of cycle_epochs and cycle_steps"):
        SnapshotCallback()
    with pytest.raises(ValueError, match="exactly one"):
        SnapshotCallback(2, cycle_steps=3)
    with pytest.raises(ValueError, match="t_mult must be 1"):
        SnapshotCallback(cycle_steps=3, t_mult=2)
    with pytest.raises(ValueError, match="counts cycle_steps"):
        SnapshotCallback(cycle_steps=3).is_cycle_end(1)


def test_lecture_table_and_budget_rule_come_from_the_lecture():
    from lecture_lib import lecture
    from lecture_lib.ensembles import ENSEMBLES_STORED, LECTURE_TABLE, EnsembleExperiment

    values = sorted(v for _, _, v in lecture.ENSEMBLES_TABLE)
    assert sorted(LECTURE_TABLE.values()) == values  # every row mapped once
    assert LECTURE_TABLE["baseline"] == 0.837 and LECTURE_TABLE["snapshot_param_average"] == 0.864
    assert EnsembleExperiment().n_models == lecture.ENSEMBLE_MODELS == 10
    assert EnsembleExperiment().epochs == ENSEMBLES_STORED.epochs == lecture.ENSEMBLE_EPOCHS


def test_ensembles_recipe_is_registered_and_builds_the_stored_members():
    from lecture_lib.ensembles import ENSEMBLES_STORED, EnsembleMembers
    from lecture_lib.weights import get_recipe

    recipe = get_recipe("ensembles_shapes")
    members = recipe.build()
    assert isinstance(members, EnsembleMembers)
    assert len(members.true) == ENSEMBLES_STORED.n_models and len(members.snapshots) == ENSEMBLES_STORED.n_snapshots
    assert recipe.metric == "snapshot_average"
    with pytest.raises(ValueError, match="must be >= 1"):
        EnsembleMembers(0, 1, nn.Identity)
