"""prune(): exact counts, determinism, schedules, quotas, ablations and bad input."""
import math

import pytest
import torch
from torch import nn

from raysweep import models, pruning
from raysweep.pruning.layers import derived_seed
from raysweep.pruning.remove import global_masks, kth_smallest, layerwise_masks, schedule

METHODS = ["random", "magnitude", "lamp", "snip", "grasp", "grasp_magnitude", "synflow", "snip_iterative"]


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


def batch(n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=gen), torch.arange(n) % 3


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", METHODS)
def test_exact_global_count_and_determinism_for_every_method(method):
    net = small_cnn()
    n = sum(p.numel() for p in pruning.prunable(net).values())     # 108 + 216 + 18 = 342
    for s in (0.3, 0.77):
        masks = pruning.prune(net, s, method, data=batch(), iterations=3 if method in ("synflow", "snip_iterative") else None)
        assert masks.num_pruned() == math.floor(s * n + 0.5)
        again = pruning.prune(net, s, method, data=batch(), iterations=3 if method in ("synflow", "snip_iterative") else None)
        assert same(masks, again)


def test_random_differs_across_seeds_and_quota_counts_are_per_layer():
    net = small_cnn()
    a = pruning.prune(net, 0.5, "random", seed=0)
    b = pruning.prune(net, 0.5, "random", seed=1)
    assert not same(a, b)
    masks = pruning.prune(net, 0.9, "magnitude", quota="igq")
    shapes = [tuple(p.shape) for p in pruning.prunable(net).values()]
    for (name, m), sl in zip(masks.items(), pruning.quota("igq", shapes, 0.9)):
        assert int((~m).sum()) == math.floor(sl * m.numel() + 0.5)


def test_global_pruning_removes_the_lowest_scores_and_breaks_ties_by_position():
    scores = {"a": torch.tensor([3.0, 1.0, 2.0, 1.0]), "b": torch.tensor([[1.0, 5.0], [0.0, 4.0]])}
    masks = global_masks(scores, 0.5)                             # 4 of 8: 0, then the three 1.0s
    assert masks["a"].tolist() == [True, False, True, False]
    assert masks["b"].tolist() == [[False, True], [False, True]]
    ties = global_masks({"a": torch.zeros(5)}, 0.4)
    assert ties["a"].tolist() == [False, False, True, True, True]
    assert global_masks({"a": torch.zeros(5)}, 0.5)["a"].sum() == 2  # round half up: 2.5 -> 3 pruned
    with pytest.raises(ValueError, match="NaN"):
        global_masks({"a": torch.tensor([1.0, float("nan")])}, 0.5)


def tied_mlp():
    """Two layers whose weights all have magnitude 0.5: every magnitude score ties."""
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight.copy_(0.5 * torch.sign(torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(1))))
    return net


def test_ties_are_broken_at_random_seeded_by_the_trial():
    net = tied_mlp()                                              # 30 + 20 weights, all tied
    a, b = pruning.prune(net, 0.4, "magnitude", seed=3), pruning.prune(net, 0.4, "magnitude", seed=4)
    assert a.num_pruned() == b.num_pruned() == 20
    assert same(a, pruning.prune(net, 0.4, "magnitude", seed=3)) and not same(a, b)
    # the draw comes from the trial's seed for this purpose, not from the seed the random method uses
    gen = torch.Generator().manual_seed(derived_seed(3, "ties/round0"))
    scores = pruning.score(net, "magnitude")
    assert same(a, global_masks(scores, 0.4, ties=gen))
    assert derived_seed(3, "ties/round0") != 3
    # by position, the first layer goes first; at random both layers lose weights
    index = pruning.prune(net, 0.4, "magnitude", seed=3, tie_break="index")
    assert index.layer_sparsities() == {"0.weight": 20 / 30, "2.weight": 0.0}
    assert all(0 < v < 1 for v in a.layer_sparsities().values())
    # iterative rounds draw anew each round, still exactly counted and reproducible
    rounds = pruning.prune(net, 0.6, "magnitude", seed=3, iterations=3)
    assert rounds.num_pruned() == 30 and same(rounds, pruning.prune(net, 0.6, "magnitude", seed=3, iterations=3))
    layerwise = pruning.prune(net, 0.4, "magnitude", seed=3, quota=[0.5, 0.25])
    assert [int((~m).sum()) for m in layerwise.values()] == [15, 5]
    assert not same(layerwise, pruning.prune(net, 0.4, "magnitude", seed=4, quota=[0.5, 0.25]))
    with pytest.raises(ValueError, match="tie_break"):
        pruning.prune(net, 0.4, "magnitude", tie_break="first")


def test_ties_at_random_take_only_from_the_tied_scores():
    scores = {"a": torch.tensor([5.0, 1.0, 1.0, 1.0, 1.0, 0.5, 9.0, 1.0])}
    kept = [global_masks(scores, 0.375, ties=torch.Generator().manual_seed(s))["a"] for s in range(20)]
    for k in kept:                                                # 3 pruned: the 0.5 and two of the five 1.0s
        assert (~k).sum() == 3 and not k[5] and k[0] and k[6]
    assert len({tuple(k.tolist()) for k in kept}) > 3


def test_synflow_rounding_prunes_everything_at_or_below_the_kth_score():
    scores = {"a": torch.tensor([2.0, 1.0, 2.0, 4.0, 2.0, 3.0])}
    # k = int(0.4 * 6) = 2: the 2nd lowest score is 2.0, and all three 2.0s go with the 1.0
    assert global_masks(scores, 0.4, rounding="synflow")["a"].tolist() == [False, False, False, True, False, True]
    assert global_masks(scores, 0.4)["a"].sum() == 4               # nearest: round(2.4) = 2 pruned exactly
    # k truncates: int(0.49 * 6) = 2 where round(2.94) = 3
    assert (~global_masks({"a": torch.arange(6.0)}, 0.49, rounding="synflow")["a"]).sum() == 2
    assert global_masks({"a": torch.arange(6.0)}, 0.1, rounding="synflow")["a"].all()  # k = 0 prunes nothing
    current = {"a": torch.tensor([True, True, False, True, True, True])}
    again = global_masks({"a": torch.tensor([2.0, 1.0, 0.0, 4.0, 2.0, 3.0])}, 0.34, current, rounding="synflow")
    assert again["a"].tolist() == [True, False, False, True, True, True]   # k = 2: the dead one and the 1.0
    with pytest.raises(ValueError, match="rounding"):
        global_masks(scores, 0.4, rounding="floor")


def test_synflow_rounding_through_prune():
    net = tied_mlp()                                              # 50 weights, all scoring alike at first
    exact = pruning.prune(net, 0.9, "magnitude", iterations=4)
    theirs = pruning.prune(net, 0.9, "magnitude", iterations=4, rounding="synflow")
    assert exact.num_pruned() == 45 and theirs.num_pruned() == 50  # round 1: int(0.44 * 50) = 22 -> all tied go
    cnn = pruning.prune(small_cnn(), 0.9, "synflow", iterations=3, input_shape=(3, 8, 8), rounding="synflow")
    assert cnn.num_pruned() >= int(0.9 * 342) == 307              # truncated: one short of round(307.8) = 308
    with pytest.raises(ValueError, match="rounding"):
        pruning.prune(net, 0.9, "synflow", input_shape=(1, 6), rounding="synflow", quota="uniform")


def test_previously_pruned_weights_stay_pruned_even_with_high_scores():
    scores = {"a": torch.tensor([9.0, 1.0, 2.0, 3.0, 4.0])}
    current = {"a": torch.tensor([False, True, True, True, True])}
    masks = global_masks(scores, 0.4, current)
    assert masks["a"].tolist() == [False, False, True, True, True]
    masks = layerwise_masks(scores, [0.6], current)
    assert masks["a"].tolist() == [False, False, False, True, True]
    # live weights scored -inf tie with the dead ones at the cut: the dead stay dead, counts stay exact
    scores = {"a": torch.tensor([9.0, -float("inf"), -float("inf"), 3.0, 4.0])}
    masks = global_masks(scores, 0.4, current)
    assert masks["a"].tolist() == [False, False, True, True, True]


def test_layer_integrity_under_quotas_keeps_one_weight():
    masks = layerwise_masks({"a": torch.arange(4.0)}, [0.9])     # round(3.6) = 4 would empty the layer
    assert masks["a"].tolist() == [False, False, False, True]


def test_kth_smallest_equals_kthvalue_on_large_tensors():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1_500_000, generator=gen)
    x[::7] = 0.25                                                  # many ties
    for k in (1, 17, 500_000, 1_499_999, 1_500_000):
        assert kth_smallest(x, k) == torch.kthvalue(x, k).values


def test_exponential_schedule():
    steps = schedule(0.99, 4)
    assert steps == pytest.approx([1 - 0.01 ** (n / 4) for n in range(1, 5)])
    assert steps[-1] == 0.99
    with pytest.raises(ValueError, match="iterations"):
        schedule(0.5, 0)


def test_iterative_pruning_rescores_and_differs_from_one_shot():
    net = models.create("cifar_resnet_20")
    one = pruning.prune(net, 0.99, "synflow", iterations=1, input_shape=(3, 8, 8))
    many = pruning.prune(net, 0.99, "synflow", iterations=4, input_shape=(3, 8, 8))
    assert one.num_pruned() == many.num_pruned()
    # rescoring keeps the network connected where one shot collapses whole layers (Tanaka et al.)
    collapsed = [sum(v == 1.0 for v in m.layer_sparsities().values()) for m in (one, many)]
    assert collapsed[0] > collapsed[1]
    assert pruning.effective_sparsity(net, one, (3, 8, 8)) == 1.0
    assert pruning.effective_sparsity(net, many, (3, 8, 8)) < 1.0


def test_invert_keeps_the_least_important_for_signed_and_zero_scores():
    net = small_cnn()
    data = batch()
    scores = pruning.score(net, "grasp", data=data)
    inverted = pruning.prune(net, 0.6, "grasp", data=data, ablation="invert")
    normal = pruning.prune(net, 0.6, "grasp", data=data)
    flat = torch.cat([scores[k].reshape(-1) for k in scores])
    kept_inv = torch.cat([inverted[k].reshape(-1) for k in scores])
    kept = torch.cat([normal[k].reshape(-1) for k in scores])
    assert kept_inv.sum() == kept.sum()
    assert flat[kept_inv].max() <= flat[~kept_inv].min()            # kept exactly the lowest scores
    assert flat[kept].min() >= flat[~kept].max()                    # normal keeps the highest
    assert (flat[kept_inv] < 0).any()                              # signed scores: not |.| ordering
    zero = {"a": torch.zeros(6), "b": torch.tensor([0.0, 2.0, -1.0])}
    inv = global_masks({k: -v for k, v in zero.items()}, 1 / 3)
    assert inv["b"].tolist() == [True, False, True]                 # the top score goes first
    assert inv["a"].tolist() == [False, False, True, True, True, True]  # then zeros, by position


def test_shuffle_keeps_layer_counts_and_is_seeded():
    net = small_cnn()
    base = pruning.prune(net, 0.7, "magnitude")
    shuffled = pruning.prune(net, 0.7, "magnitude", ablation="shuffle", seed=4)
    assert shuffled.layer_sparsities() == base.layer_sparsities()
    assert not same(shuffled, base)
    assert same(shuffled, pruning.prune(net, 0.7, "magnitude", ablation="shuffle", seed=4))
    assert not same(shuffled, pruning.prune(net, 0.7, "magnitude", ablation="shuffle", seed=5))


def test_reinit_resamples_prunable_weights_from_the_models_own_scheme():
    net = models.create("cifar_resnet_20", seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    masks = pruning.prune(net, 0.5, "magnitude", ablation="reinit", seed=0)
    assert same(masks, pruning.prune(models.create("cifar_resnet_20", seed=0), 0.5, "magnitude"))
    assert torch.equal(torch.get_rng_state(), rng)
    prunable = set(pruning.prunable(net))
    for k, v in net.state_dict().items():
        if k in prunable:
            assert not torch.equal(v, before[k])
            assert v.std() == pytest.approx(float(before[k].std()), rel=0.35)   # same distribution
        else:
            assert torch.equal(v, before[k])
    again = models.create("cifar_resnet_20", seed=0)
    pruning.prune(again, 0.5, "magnitude", ablation="reinit", seed=0)
    assert same(dict(again.named_parameters()), dict(net.named_parameters()))


def test_reinit_falls_back_to_reset_parameters():
    net = small_cnn()
    w = net[4].weight.clone()
    pruning.reinit(net, seed=3)
    assert not torch.equal(net[4].weight, w)
    bound = 1 / math.sqrt(4 * 9)                                    # default Conv2d init bound
    assert net[4].weight.abs().max() <= bound


def test_init_normal_redraws_unit_variance_then_prunes():
    net = models.create("cifar_resnet_20")
    masks = pruning.prune(net, 0.8, "magnitude", ablation="init_normal")
    weights = torch.cat([p.detach().reshape(-1) for p in pruning.prunable(net).values()])
    assert weights.std() == pytest.approx(1.0, abs=0.02)
    layer = list(masks.layer_sparsities().values())
    big = [s for s, p in zip(layer, pruning.prunable(net).values()) if p.numel() > 2000]
    assert max(big) - min(big) < 0.05                               # unit variance: ~uniform layers


def test_ratio_quota_reproduces_the_methods_layer_sparsities():
    net = small_cnn()
    data = batch()
    snip = pruning.prune(net, 0.8, "snip", data=data)
    ratio = pruning.prune(net, 0.8, "random", data=data, quota="ratio:snip", seed=2)
    assert ratio.layer_sparsities() == pytest.approx(snip.layer_sparsities())
    assert not same(ratio, snip)


def test_explicit_quota_list_and_dict():
    net = small_cnn()
    names = list(pruning.prunable(net))
    masks = pruning.prune(net, 0.5, "magnitude", quota=[0.25, 0.5, 0.0])
    assert list(masks.layer_sparsities().values()) == [0.25, 0.5, 0.0]
    masks = pruning.prune(net, 0.5, "magnitude", quota=dict(zip(names, [0.5, 0.5, 0.5])))
    assert all(v == pytest.approx(0.5, abs=0.01) for v in masks.layer_sparsities().values())
    with pytest.raises(KeyError, match="missing"):
        pruning.prune(net, 0.5, "magnitude", quota={names[0]: 0.5})
    with pytest.raises(ValueError, match="3 prunable"):
        pruning.prune(net, 0.5, "magnitude", quota=[0.5])


def test_exclude_leaves_layers_out_of_the_masks():
    net = small_cnn()
    masks = pruning.prune(net, 0.5, "magnitude", exclude=["9"])
    assert list(masks) == ["0.weight", "4.weight"]


def test_bad_prune_input_is_named():
    net = small_cnn()
    for bad in (1.0, -0.1, float("nan"), "x"):
        with pytest.raises(ValueError, match="sparsity"):
            pruning.prune(net, bad, "magnitude")
    with pytest.raises(KeyError, match="magnitud"):
        pruning.prune(net, 0.5, "magnitud")
    with pytest.raises(KeyError, match="igqq"):
        pruning.prune(net, 0.5, "magnitude", quota="igqq")
    with pytest.raises(KeyError, match="nope"):
        pruning.prune(net, 0.5, "random", quota="ratio:nope")
    with pytest.raises(KeyError, match="flip"):
        pruning.prune(net, 0.5, "magnitude", ablation="flip")
    with pytest.raises(ValueError, match="no prunable"):
        pruning.prune(nn.Sequential(nn.ReLU()), 0.5, "magnitude")
    with pytest.raises(ValueError, match="temperature"):
        pruning.prune(net, 0.5, "magnitude", temperature=3)
    with pytest.raises(KeyError, match="not prunable"):
        pruning.score(net, "magnitude", masks={"1.weight": torch.ones(4, dtype=torch.bool)})
    assert set(pruning.ablations()) == {"shuffle", "reinit", "invert", "init_normal"}


@pytest.mark.parametrize("method,options", [("synflow", {"pool": "avg"}), ("snip_iterative", {}),
                                            ("snip_iterative", {"bn_mode": "eval"})])
def test_iterative_prune_equals_rescoring_from_scratch_each_round(method, options):
    net = small_cnn()
    data = batch()
    masks = None
    for step in schedule(0.9, 3):
        masks = global_masks(pruning.score(net, method, data=data, masks=masks, **options), step, masks)
    assert same(pruning.prune(net, 0.9, method, data=data, iterations=3, **options), masks)
