"""Effective sparsity: hand-counted MLP, an explicit graph walk, residual nets, deep nets, bisection."""
import math

import pytest
import torch
from torch import nn

from raysweep import models, pruning
from raysweep.pruning.remove import layer_count


def mlp(sizes, bias=True):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b, bias=bias), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def random_masks(net, density, seed):
    gen = torch.Generator().manual_seed(seed)
    return pruning.Masks({k: torch.rand(p.shape, generator=gen) < density for k, p in pruning.prunable(net).items()})


def graph_walk(masks):
    """Active edges of an MLP by breadth-first reachability from the inputs and from the outputs."""
    layers = [m.tolist() for m in masks.values()]            # layer l: [out][in]
    reach_in = [set(range(len(layers[0][0])))]
    for edges in layers:
        reach_in.append({i for i, row in enumerate(edges) if any(row[j] for j in reach_in[-1])})
    reach_out = [set(range(len(layers[-1])))]
    for edges in reversed(layers):
        reach_out.insert(0, {j for j in range(len(edges[0])) if any(edges[i][j] for i in reach_out[0])})
    return [[[bool(edges[i][j]) and j in reach_in[l] and i in reach_out[l + 1] for j in range(len(edges[0]))]
             for i in range(len(edges))] for l, edges in enumerate(layers)]


def test_hand_counted_mlp():
    net = mlp([2, 3, 2])
    masks = pruning.Masks({
        "0.weight": torch.tensor([[False, False], [True, True], [True, False]]),  # h0 has no input
        "2.weight": torch.tensor([[True, False, True], [True, False, False]]),    # h1 has no output
    })
    eff = pruning.effective_masks(net, masks, (2,))
    assert eff["0.weight"].tolist() == [[False, False], [False, False], [True, False]]
    assert eff["2.weight"].tolist() == [[False, False, True], [False, False, False]]
    assert pruning.effective_sparsity(net, masks, (2,)) == pytest.approx(10 / 12)
    assert masks.sparsity() == pytest.approx(6 / 12)


@pytest.mark.parametrize("seed", range(6))
def test_path_gradient_agrees_with_graph_walk(seed):
    net = mlp([6, 9, 7, 9, 3])
    masks = random_masks(net, [0.15, 0.25, 0.35, 0.45, 0.6, 0.3][seed], seed)
    eff = pruning.effective_masks(net, masks, (6,))
    assert [m.tolist() for m in eff.values()] == graph_walk(masks)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.a = nn.Conv2d(2, 2, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(2, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = self.b(torch.relu(self.a(x))) + x
        return self.head(nn.functional.adaptive_avg_pool2d(self.pool(x), 1).flatten(1))


def test_residual_skip_keeps_the_rest_connected_when_a_branch_dies():
    net = Residual()
    dense = pruning.Masks.ones(net)
    assert pruning.effective_sparsity(net, dense, (1, 6, 6)) == 0.0
    masks = pruning.Masks.ones(net)
    masks["a.weight"][:] = False
    eff = pruning.effective_masks(net, masks, (1, 6, 6))
    assert not eff["b.weight"].any()                            # its only input was branch a
    assert eff["stem.weight"].all() and eff["head.weight"].all()   # the skip carries them
    masks["head.weight"][:, 1] = False
    eff = pruning.effective_masks(net, masks, (1, 6, 6))
    assert not eff["stem.weight"][1].any() and eff["stem.weight"][0].all()


def test_biases_and_batchnorm_statistics_do_not_create_paths():
    net = mlp([3, 4, 2])
    with torch.no_grad():
        net[0].bias.fill_(5.0)
    masks = pruning.Masks.ones(net)
    masks["0.weight"][:] = False
    assert pruning.effective_sparsity(net, masks, (3,)) == 1.0
    res = Residual().eval()
    with torch.no_grad():
        res.bn.running_mean.fill_(1e3)                      # would zero every ReLU in a literal pass
        res.bn.weight.fill_(-1.0)
    assert pruning.effective_sparsity(res, pruning.Masks.ones(res), (1, 6, 6)) == 0.0


def test_deep_chain_does_not_overflow_float64():
    net = nn.Sequential(*[nn.Linear(60, 60) for _ in range(200)])   # 60^200 > float64 max
    assert pruning.effective_sparsity(net, pruning.Masks.ones(net), (60,)) == 0.0
    masks = pruning.Masks.ones(net)
    masks["100.weight"][:, 1:] = False                              # one unit carries everything
    eff = pruning.effective_masks(net, masks, (60,))
    assert eff["100.weight"].sum() == 60 and eff["99.weight"][0].sum() == 60
    assert eff["99.weight"][1:].sum() == 0


def test_deep_resnet_dense_is_fully_effective_and_random_masks_are_finite():
    net = models.create("cifar_resnet_110")
    assert pruning.effective_sparsity(net, pruning.Masks.ones(net), (3, 8, 8)) == 0.0
    masks = pruning.prune(net, 0.98, "random")
    eff = pruning.effective_sparsity(net, masks, (3, 8, 8))
    assert 0.98 <= eff < 1.0
    eff_masks = pruning.effective_masks(net, masks, (3, 8, 8))
    assert all(torch.equal(eff_masks[k] & ~masks[k], torch.zeros_like(masks[k])) for k in masks)


def test_effective_pruning_bisection_lands_on_target():
    torch.manual_seed(0)
    net = mlp([20, 40, 40, 5])
    masks = pruning.effective_prune(net, 0.95, "magnitude", (20,))
    eff = pruning.effective_sparsity(net, masks, (20,))
    assert eff == pytest.approx(0.95, abs=0.01)
    assert masks.sparsity() < eff                                    # fewer pruned directly
    scores = pruning.score(net, "magnitude")
    flat = torch.cat([scores[k].reshape(-1) for k in scores])
    kept = torch.cat([masks[k].reshape(-1) for k in scores])
    assert flat[kept].min() >= flat[~kept].max()                     # a cut of the ranking


def effective_at(net, k, **options):
    n = pruning.Masks.ones(net).num_total()
    return pruning.effective_sparsity(net, pruning.prune(net, k / n, "synflow", input_shape=(20,), **options), (20,))


def test_effective_synflow_runs_its_100_rounds_at_every_candidate():
    """Vysogorets sec. 3: SynFlow "remove[s] parameters over 100 ... iterations"; the effective line of Figure 10
    must prune as the direct line does, so its masks are SynFlow's direct masks at the direct sparsity reached."""
    torch.manual_seed(1)
    net = mlp([20, 40, 40, 5])
    target = 0.97
    masks = pruning.effective_prune(net, target, "synflow", (20,))
    k = masks.num_pruned()
    again = pruning.prune(net, masks.sparsity(), "synflow", input_shape=(20,))   # 100 rounds, as the direct line
    assert all(torch.equal(masks[name], again[name]) for name in masks)
    one_shot = pruning.prune(net, masks.sparsity(), "synflow", input_shape=(20,), iterations=1)
    assert any(not torch.equal(masks[name], one_shot[name]) for name in masks)
    # the bisection stopped at a crossing of the target, on the closer side
    here = pruning.effective_sparsity(net, masks, (20,))
    if here < target:
        above = effective_at(net, k + 1)
        assert above >= target and abs(here - target) <= abs(above - target)
    else:
        below = effective_at(net, k - 1)
        assert below < target and abs(here - target) < abs(below - target)
    assert here == pytest.approx(target, abs=0.005)


def test_effective_pruning_under_a_quota_follows_it_at_the_direct_sparsity_reached():
    net = mlp([20, 40, 40, 5])
    masks = pruning.effective_prune(net, 0.9, "magnitude", (20,), quota="igq")
    n, k = masks.num_total(), masks.num_pruned()
    # candidate j / N prunes each layer's rounded IGQ share, within a weight per layer of j in total
    candidates = [pruning.prune(net, j / n, "magnitude", quota="igq") for j in range(k - 2, k + 3)]
    assert any(all(torch.equal(masks[name], c[name]) for name in masks) for c in candidates)
    assert pruning.effective_sparsity(net, masks, (20,)) == pytest.approx(0.9, abs=0.01)


def test_algorithm_1_effective_random_pruning_under_a_quota():
    net = mlp([20, 40, 40, 5])
    masks = pruning.effective_random_prune(net, 0.9, "igq", (20,), seed=1)
    eff = pruning.effective_sparsity(net, masks, (20,))
    assert 0.88 < eff < 0.9
    shapes = [tuple(m.shape) for m in masks.values()]
    n = masks.num_total()
    # the layers follow the quota at the direct sparsity that was reached
    m = masks.num_pruned()
    expected = [layer_count(s, math.prod(sh)) for s, sh in zip(pruning.quota("igq", shapes, m / n), shapes)]
    assert [int((~v).sum()) for v in masks.values()] == expected
    again = pruning.effective_random_prune(net, 0.9, "igq", (20,), seed=1)
    assert all(torch.equal(masks[k], again[k]) for k in masks)


def test_effective_bad_input():
    net = mlp([3, 4, 2])
    with pytest.raises(KeyError, match="9.weight"):
        pruning.effective_sparsity(net, {"9.weight": torch.ones(2, 2, dtype=torch.bool)}, (3,))
    with pytest.raises(ValueError, match="input_shape"):
        pruning.effective_sparsity(net, pruning.Masks.ones(net), (5,))
    with pytest.raises(ValueError, match="sparsity"):
        pruning.effective_prune(net, 1.5, "magnitude", (3,))
    with pytest.raises(ValueError, match="ablation"):
        pruning.effective_prune(net, 0.5, "magnitude", (3,), ablation="shuffle")
