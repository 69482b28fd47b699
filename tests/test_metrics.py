"""Tests of raysweep.metrics against hand-computed cases and independent computations."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from raysweep import metrics


class PixelDataSet:
    """A small in-memory data set with the raysweep.data interface: pixels in [0, 1] per split,
    delivered normalised with per-channel mean/std."""

    def __init__(self, splits, mean, std, num_classes, name="pixels"):
        self.name = name
        self.splits = {split: (pixels.float(), labels.long()) for split, (pixels, labels) in splits.items()}
        self.mean, self.std = tuple(mean), tuple(std)
        self.num_classes = num_classes
        self.input_shape = tuple(next(iter(self.splits.values()))[0].shape[1:])

    def size(self, split):
        return len(self.splits[split][1])

    def loader(self, split, batch_size, *, shuffle=False, augment=False, seed=0, device="cpu"):
        pixels, labels = self.splits[split]
        shape = (1, -1) + (1,) * (pixels.dim() - 2)
        x = (pixels - torch.tensor(self.mean).view(shape)) / torch.tensor(self.std).view(shape)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)) if shuffle else None
        if order is not None:
            x, labels = x[order], labels[order]
        return [(x[i : i + batch_size].to(device), labels[i : i + batch_size].to(device))
                for i in range(0, len(labels), batch_size)]


def random_data_set(n=96, shape=(3, 8, 8), classes=4, seed=0, name="random"):
    g = torch.Generator().manual_seed(seed)
    splits = {split: (torch.rand((n, *shape), generator=g), torch.randint(0, classes, (n,), generator=g))
              for split in ("train", "test")}
    return PixelDataSet(splits, mean=(0.4, 0.5, 0.6)[: shape[0]], std=(0.2, 0.25, 0.3)[: shape[0]],
                        num_classes=classes, name=name)


def small_cnn(classes=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, classes)
    )


def half_masks(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(p.shape, generator=g) < 0.5
            for name, p in model.named_parameters() if name.endswith("weight") and p.dim() > 1}


# ---------------------------------------------------------------- calibration

def test_ece_of_perfectly_calibrated_predictor_is_zero():
    # confidence 0.6 on 5 samples with 3 right, 0.9 on 10 samples with 9 right
    probs = torch.tensor([[0.6, 0.4]] * 5 + [[0.1, 0.9]] * 10, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1] + [1] * 9 + [0])
    assert metrics.ece(probs, labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_hand_built_four_samples():
    probs = torch.tensor([[0.9, 0.1], [0.08, 0.92], [0.3, 0.7], [0.55, 0.45]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    # 15 bins: {0.9, 0.92} share bin (13/15, 14/15] with accuracy 1/2; 0.7 right; 0.55 wrong
    expected = 2 / 4 * abs(0.5 - 0.91) + 1 / 4 * abs(1 - 0.7) + 1 / 4 * abs(0 - 0.55)
    assert metrics.ece(probs, labels) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(0.4175)
    # one bin: |mean accuracy - mean confidence|
    assert metrics.ece(probs, labels, bins=1) == pytest.approx(abs(0.5 - 3.07 / 4), abs=1e-9)


def test_ece_bins_are_right_closed():
    # confidence exactly 0.6 = 9/15 belongs to bin (8/15, 9/15], together with 0.55
    probs = torch.tensor([[0.6, 0.4], [0.55, 0.45]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    assert metrics.ece(probs, labels) == pytest.approx(abs(0.5 - 0.575), abs=1e-12)


def test_ece_rejects_bad_input():
    with pytest.raises(ValueError, match="rows summing to 1"):
        metrics.ece(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="bins"):
        metrics.ece(torch.tensor([[0.5, 0.5]]), torch.tensor([0]), bins=0)
    with pytest.raises(ValueError, match="length 1"):
        metrics.ece(torch.tensor([[0.5, 0.5]]), torch.tensor([0, 1]))


def test_nll_of_uniform_predictor_is_log_classes():
    logits = torch.full((7, 10), 3.25)
    labels = torch.arange(7)
    assert metrics.nll(logits, labels) == pytest.approx(math.log(10), abs=1e-12)


def test_nll_hand_computed():
    # softmax([0, ln 3]) = [1/4, 3/4]
    logits = torch.tensor([[0.0, math.log(3)], [0.0, math.log(3)]])
    labels = torch.tensor([1, 0])
    assert metrics.nll(logits, labels) == pytest.approx((-math.log(0.75) - math.log(0.25)) / 2, abs=1e-7)
    with pytest.raises(ValueError, match="labels must lie"):
        metrics.nll(logits, torch.tensor([0, 2]))


# ---------------------------------------------------------------- AUROC

def test_auroc_known_confusion():
    # pairs (pos > neg): 0.9 beats both, 0.8 beats both, 0.4 beats only 0.3 -> 5 of 6
    assert metrics.auroc([0.9, 0.8, 0.4], [0.5, 0.3]) == pytest.approx(5 / 6)
    assert metrics.auroc([0.5, 0.3], [0.9, 0.8, 0.4]) == pytest.approx(1 / 6)
    assert metrics.auroc([2.0, 3.0], [0.0, 1.0]) == 1.0


def test_auroc_ties_count_half():
    assert metrics.auroc([0.7, 0.7, 0.7], [0.7, 0.7]) == 0.5
    # 0.5~0.5 tie = 1/2, 0.5>0.2, 0.7 beats both -> 3.5 of 4
    assert metrics.auroc([0.5, 0.7], [0.5, 0.2]) == pytest.approx(0.875)


def test_auroc_matches_sklearn_and_pairwise_count():
    rng = np.random.default_rng(0)
    pos = np.round(rng.normal(0.5, 1, 300), 1)  # rounding creates many ties
    neg = np.round(rng.normal(0.0, 1, 200), 1)
    ours = metrics.auroc(torch.tensor(pos), torch.tensor(neg))
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    assert ours == pytest.approx(roc_auc_score(labels, np.r_[pos, neg]), abs=1e-12)
    diff = pos[:, None] - neg[None, :]
    assert ours == pytest.approx(((diff > 0) + 0.5 * (diff == 0)).mean(), abs=1e-12)


def test_auroc_rejects_empty_and_nan():
    with pytest.raises(ValueError, match="scores_neg"):
        metrics.auroc([0.1], [])
    with pytest.raises(ValueError, match="NaN"):
        metrics.auroc([float("nan")], [0.1])


def one_pixel_set(values, mean=0.5, std=0.25, name="one-pixel"):
    pixels = torch.tensor(values).view(-1, 1, 1, 1)
    return PixelDataSet({"test": (pixels, torch.zeros(len(values)))}, (mean,), (std,), 2, name=name)


def confidence_model():
    # logits (+2x, -2x) on the normalised pixel x: max softmax grows with |x|
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[2.0], [-2.0]]))
    return model


def test_ood_auroc_separates_confident_from_unconfident_inputs():
    model = confidence_model()
    ds_in = one_pixel_set([0.0, 0.1, 0.9, 1.0])  # |x| = 2, 1.6, 1.6, 2
    ds_out = one_pixel_set([0.45, 0.5, 0.55, 0.95])  # |x| = 0.2, 0, 0.2, 1.8
    # every in-sample beats the three small |x|; against 0.95 (|x| 1.8) only the two |x| = 2 win: 14 of 16
    assert metrics.ood_auroc(model, ds_in, ds_out) == pytest.approx(14 / 16)
    assert metrics.ood_auroc(model, ds_in, ds_in) == 0.5


def test_ood_auroc_renormalises_the_ood_set_to_in_distribution_statistics():
    model = confidence_model()
    ds_in = one_pixel_set([0.0, 0.2, 0.3, 1.0])
    # the same pixels normalised differently: the model must see the same inputs, hence AUROC 1/2
    ds_out = one_pixel_set([0.0, 0.2, 0.3, 1.0], mean=0.1, std=0.9, name="other-stats")
    assert metrics.ood_auroc(model, ds_in, ds_out) == 0.5
    assert model.training  # mode restored


# ---------------------------------------------------------------- FGSM

def two_channel_linear():
    # on normalised inputs x: z0 - z1 = 2 (x0 - x1); with label 0 the loss gradient sign is (-1, +1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    return model


def test_fgsm_flips_hand_computed_prediction():
    model = two_channel_linear()
    mean, std = (0.5, 0.25), (0.25, 0.5)
    pixels = torch.tensor([[0.7, 0.6], [0.01, 0.995]]).view(2, 2, 1, 1)
    labels = torch.tensor([0, 0])
    ds = PixelDataSet({"test": (pixels[:1], labels[:1])}, mean, std, 2)
    # sample 0: x = (0.8, 0.7), predicted 0; after eps: x0 - x1 = 0.1 - 6 eps, so it flips iff eps > 1/60
    assert metrics.fgsm_accuracy(model, ds, eps=0.0) == 1.0
    assert metrics.fgsm_accuracy(model, ds, eps=0.01) == 1.0
    assert metrics.fgsm_accuracy(model, ds, eps=8 / 255) == 0.0

    x = (pixels - torch.tensor(mean).view(1, 2, 1, 1)) / torch.tensor(std).view(1, 2, 1, 1)
    adversarial = metrics.fgsm_perturb(model, x, labels, 8 / 255, mean, std)
    e = 8 / 255
    # pixel space: p + eps * (-1, +1), clipped to [0, 1] (sample 1 hits both bounds)
    expected_pixels = torch.tensor([[0.7 - e, 0.6 + e], [0.0, 1.0]]).view(2, 2, 1, 1)
    expected = (expected_pixels - torch.tensor(mean).view(1, 2, 1, 1)) / torch.tensor(std).view(1, 2, 1, 1)
    torch.testing.assert_close(adversarial, expected)


def test_fgsm_with_zero_eps_equals_clean_accuracy_and_restores_modes():
    ds = random_data_set()
    model = small_cnn()
    model.train()
    model[1].eval()  # a submodule deliberately held in eval mode
    logits, labels = metrics.predict(model, ds, "test", batch_size=40)
    clean = float((logits.argmax(1) == labels).float().mean())
    assert metrics.fgsm_accuracy(model, ds, eps=0.0, batch_size=40) == pytest.approx(clean)
    assert metrics.fgsm_accuracy(model, ds, eps=8 / 255, batch_size=40) <= clean
    assert model.training and model[0].training and not model[1].training
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="eps"):
        metrics.fgsm_accuracy(model, ds, eps=8.0)


# ---------------------------------------------------------------- FLOPs

def tiny_net():
    # conv 1->2, 3x3, padding 1 on 4x4: 2*4*4 outputs * 9 MACs = 288 MACs; linear 32->3: 96 MACs
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))


def exact_fraction_mask(shape, kept, seed=0):
    flat = torch.zeros(int(np.prod(shape)), dtype=torch.bool)
    flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(seed))[:kept]] = True
    return flat.view(shape)


def test_macs_of_one_linear_layer_by_hand():
    # Linear(5 -> 7): 35 multiply-adds per example, which torch's counter calls 70 FLOPs; with 10 of its 35 weights
    # kept, 10 multiply-adds remain. The bias adds no multiply-add.
    model = nn.Linear(5, 7)
    assert metrics.macs(model, None, (5,)) == {"dense": 35, "sparse": 35}
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 5))
    assert counter.get_total_flops() == 2 * 35
    assert metrics.macs(model, {"weight": exact_fraction_mask((7, 5), 10)}, (5,)) == {"dense": 35, "sparse": 10}


def test_macs_of_tiny_net_dense_and_half_masked():
    model = tiny_net()
    assert metrics.macs(model, None, (1, 4, 4)) == {"dense": 288 + 96, "sparse": 288 + 96}
    half = {"0.weight": exact_fraction_mask((2, 1, 3, 3), 9), "3.weight": exact_fraction_mask((3, 32), 48)}
    assert metrics.macs(model, half, (1, 4, 4)) == {"dense": 384, "sparse": 144 + 48}
    # layer-specific densities: conv dense, linear at 1/4
    mixed = {"0.weight": torch.ones(2, 1, 3, 3, dtype=torch.bool), "3.weight": exact_fraction_mask((3, 32), 24)}
    assert metrics.macs(model, mixed, (1, 4, 4)) == {"dense": 384, "sparse": 288 + 24}


def test_macs_sparse_counts_a_module_called_twice_each_time():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.fc(x)))

    model = Twice()
    quarter = {"fc.weight": exact_fraction_mask((4, 4), 4)}
    assert metrics.macs(model, quarter, (4,)) == {"dense": 2 * 16, "sparse": 2 * 4}


def test_rows_written_with_flops_columns_read_as_macs():
    # an old row counted 2 FLOPs per multiply-add under flops_*; a new row holds macs_* only
    rows = pd.DataFrame({"flops_dense": [768.0, None], "flops_sparse": [384.0, None],
                         "macs_dense": [None, 384.0], "macs_sparse": [None, 100.0]})
    read = metrics.with_macs(rows)
    assert list(read.columns) == ["macs_dense", "macs_sparse"]
    assert read["macs_dense"].tolist() == [384.0, 384.0] and read["macs_sparse"].tolist() == [192.0, 100.0]
    only_old = metrics.with_macs(rows[["flops_sparse"]].iloc[:1])
    assert only_old["macs_sparse"].tolist() == [192.0]


def test_macs_rejects_bad_masks():
    model = tiny_net()
    with pytest.raises(KeyError, match="nope.weight"):
        metrics.macs(model, {"nope.weight": torch.ones(3, dtype=torch.bool)}, (1, 4, 4))
    with pytest.raises(ValueError, match="shape"):
        metrics.macs(model, {"0.weight": torch.ones(2, 1, 3, dtype=torch.bool)}, (1, 4, 4))
    with pytest.raises(ValueError, match="Conv2d/Linear weights"):
        metrics.macs(model, {"0.bias": torch.ones(2, dtype=torch.bool)}, (1, 4, 4))
    with pytest.raises(ValueError, match="bool"):
        metrics.macs(model, {"0.weight": torch.ones(2, 1, 3, 3)}, (1, 4, 4))


# ---------------------------------------------------------------- gradient norm

def test_active_grad_norm_equals_masked_gradient_by_hand():
    ds = random_data_set()
    model = small_cnn()
    masks = half_masks(model)
    batch = ds.loader("train", 32)[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}

    # by hand: zero the pruned weights of a copy, backpropagate, keep gradients of unpruned entries
    reference = small_cnn()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name in masks:
                p.mul_(masks[name])
    F.cross_entropy(reference(batch[0]), batch[1]).backward()
    squares = 0.0
    for name, p in reference.named_parameters():
        g = p.grad * masks[name] if name in masks else p.grad
        squares += float(g.double().pow(2).sum())

    assert metrics.active_grad_norm(model, masks, batch) == pytest.approx(math.sqrt(squares), rel=1e-5)
    # the model, its BatchNorm statistics and its .grad fields are untouched
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())
    # without masks: the full gradient norm, which is larger here
    full = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in reference.parameters()))
    assert metrics.active_grad_norm(reference, None, batch) == pytest.approx(full, rel=1e-5)
    assert metrics.active_grad_norm(model, masks, batch) < full


# ---------------------------------------------------------------- registry

def test_evaluate_all_returns_flat_named_columns():
    ds = random_data_set()
    model = small_cnn()
    masks = half_masks(model)
    config = metrics.MetricConfig(batch_size=40, grad_batch_size=32)
    ood = {"noise": random_data_set(seed=1, name="noise")}
    result = metrics.evaluate_all(model, ds, metrics.names(), config, masks=masks, ood=ood)
    assert set(result) == {"ece", "nll", "ood_auroc_noise", "fgsm_accuracy", "macs_dense", "macs_sparse",
                           "active_grad_norm"}
    logits, labels = metrics.predict(model, ds, "test")
    assert result["ece"] == pytest.approx(metrics.ece(torch.softmax(logits, 1), labels), abs=1e-6)
    assert result["nll"] == pytest.approx(metrics.nll(logits, labels), abs=1e-6)
    # conv 3->4 3x3 on 8x8 and linear 256->4, at masks' exact kept fractions
    conv_macs, fc_macs = 4 * 64 * 27, 256 * 4
    assert result["macs_dense"] == conv_macs + fc_macs
    kept = {name: float(m.float().mean()) for name, m in masks.items()}
    assert result["macs_sparse"] == pytest.approx(conv_macs * kept["0.weight"] + fc_macs * kept["4.weight"], abs=1)
    assert 0.0 <= result["ood_auroc_noise"] <= 1.0 and result["active_grad_norm"] > 0


def test_evaluate_all_errors_name_the_problem():
    ds = random_data_set()
    with pytest.raises(metrics.UnknownMetric, match="known metrics: active_grad_norm, ece"):
        metrics.evaluate_all(small_cnn(), ds, ["ece", "accuracy_typo"])
    with pytest.raises(ValueError, match="ood="):
        metrics.evaluate_all(small_cnn(), ds, ["ood_auroc"])


def test_metrics_on_digits():
    data = pytest.importorskip("raysweep.data")
    if not hasattr(data, "get"):
        pytest.skip("raysweep.data has no get() yet")
    ds = data.get("digits")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(ds.input_shape)), ds.num_classes))
    result = metrics.evaluate_all(model, ds, ["ece", "nll", "fgsm_accuracy", "flops", "active_grad_norm"],
                                  metrics.MetricConfig(eps=0.0))
    logits, labels = metrics.predict(model, ds, "test")
    assert len(labels) == ds.size("test")
    assert result["fgsm_accuracy"] == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
    assert result["macs_dense"] == result["macs_sparse"] == int(np.prod(ds.input_shape)) * ds.num_classes
    assert 0.0 <= result["ece"] <= 1.0 and result["nll"] > 0 and result["active_grad_norm"] > 0
