"""Scores checked against hand computations and independent autograd formulations."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from raysweep import models, pruning


def two_layer(w1, w2):
    net = nn.Sequential(nn.Linear(w1.shape[1], w1.shape[0], bias=False), nn.ReLU(),
                        nn.Linear(w2.shape[1], w2.shape[0], bias=False))
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[2].weight.copy_(w2)
    return net


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


def batch(n=12, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=gen), torch.arange(n) % classes


def test_registry_has_every_required_method():
    assert set(pruning.methods()) >= {"random", "magnitude", "snip", "grasp", "grasp_magnitude", "synflow",
                                      "snip_iterative", "lamp"}


def test_magnitude_and_lamp_by_hand():
    net = two_layer(torch.tensor([[1.0, -2.0, 3.0]]), torch.tensor([[2.0], [-2.0]]))
    mag = pruning.score(net, "magnitude")
    assert torch.equal(mag["0.weight"], torch.tensor([[1.0, 2.0, 3.0]]))
    lamp = pruning.score(net, "lamp")
    assert torch.allclose(lamp["0.weight"], torch.tensor([[1 / 14, 4 / 13, 9 / 9]]))
    # tied magnitudes share the sum over all weights at least as large: 4 / (4 + 4)
    assert torch.allclose(lamp["2.weight"], torch.tensor([[0.5], [0.5]]))


def test_lamp_with_masks_ignores_pruned_weights():
    net = two_layer(torch.tensor([[1.0, -2.0, 3.0]]), torch.tensor([[2.0], [1.0]]))
    masks = {"0.weight": torch.tensor([[True, True, False]]), "2.weight": torch.ones(2, 1, dtype=torch.bool)}
    lamp = pruning.score(net, "lamp", masks=masks)["0.weight"]
    assert torch.allclose(lamp, torch.tensor([[1 / 5, 4 / 4, 0.0]]))


def test_snip_matches_closed_form_gradient_of_a_linear_model():
    gen = torch.Generator().manual_seed(1)
    net = nn.Linear(4, 3, bias=False)
    x, y = torch.randn(6, 4, generator=gen), torch.tensor([0, 1, 2, 0, 1, 2])
    p = torch.softmax(x @ net.weight.detach().T, 1)
    grad = (p - F.one_hot(y, 3).float()).T @ x / 6          # d mean-CE / dW for logits = W x
    expected = (grad * net.weight.detach()).abs()
    assert torch.allclose(pruning.score(net, "snip", data=(x, y))["weight"], expected, atol=1e-6)
    # snip_iterative scores the same on the unpruned network
    assert torch.allclose(pruning.score(net, "snip_iterative", data=(x, y))["weight"], expected, atol=1e-6)


def test_grasp_equals_w_times_explicit_hessian_gradient_product():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    x, y = torch.randn(9, 3), torch.arange(9) % 3
    names = ["0.weight", "2.weight"]
    shapes = [net.get_parameter(n).shape for n in names]
    sizes = [s.numel() for s in shapes]
    params = dict(net.named_parameters())

    def loss_of(flat):
        ws = dict(zip(names, flat.split(sizes)))
        override = {n: ws[n].view(s) for n, s in zip(names, shapes)}
        logits = torch.func.functional_call(net, {**params, **override}, (x,))
        return F.cross_entropy(logits / 200.0, y)

    flat = torch.cat([params[n].detach().reshape(-1) for n in names])
    g = torch.autograd.functional.jacobian(loss_of, flat)
    hessian = torch.autograd.functional.hessian(loss_of, flat)
    hg = (hessian @ g).split(sizes)
    scores = pruning.score(net, "grasp", data=(x, y))
    for name, h, s in zip(names, hg, shapes):
        ours = scores[name]
        assert torch.allclose(ours, params[name].detach() * h.view(s), rtol=1e-4, atol=1e-12)
        # GraSP's own score -w*Hg prunes the highest: our sign keeps the highest of its negation
        assert torch.allclose(pruning.score(net, "grasp_magnitude", data=(x, y))[name], ours.abs())
    assert any((scores[n] < 0).any() for n in names) and any((scores[n] > 0).any() for n in names)


def test_grasp_temperature_changes_scores():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    data = (torch.randn(9, 3), torch.arange(9) % 3)
    a = pruning.score(net, "grasp", data=data)["0.weight"]
    b = pruning.score(net, "grasp", data=data, temperature=1.0)["0.weight"]
    assert not torch.allclose(a, b)


def test_synflow_by_hand_uses_absolute_values_and_ones_input():
    w1 = torch.tensor([[1.0, -2.0, 0.5], [-3.0, 1.0, 1.0]])
    w2 = torch.tensor([[-2.0, 0.5]])
    net = two_layer(w1, w2)
    s = pruning.score(net, "synflow", input_shape=(3,))
    assert s["0.weight"].dtype == torch.float64
    expected1 = w2.abs().T.double() * w1.abs().double()              # |w2_i| * |w1_ij| * 1
    expected2 = w2.abs().double() * w1.abs().sum(1).double()           # |w2_i| * sum_j |w1_ij|
    assert torch.allclose(s["0.weight"], expected1) and torch.allclose(s["2.weight"], expected2)
    # conservation (Tanaka et al.): every layer's scores sum to R
    assert s["0.weight"].sum() == pytest.approx(float(s["2.weight"].sum()))


def test_synflow_takes_input_shape_from_data_and_needs_one():
    net = small_cnn()
    x, y = batch()
    a = pruning.score(net, "synflow", data=(x, y))
    b = pruning.score(net, "synflow", input_shape=(3, 8, 8))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="input_shape"):
        pruning.score(net, "synflow")


def test_synflow_pool_and_buffer_options():
    net = small_cnn()
    with torch.no_grad():
        net[1].running_mean.fill_(-1e3)  # |.| flips it to +1e3: ReLU then cuts paths
    base = pruning.score(net, "synflow", input_shape=(3, 8, 8))
    avg = pruning.score(net, "synflow", input_shape=(3, 8, 8), pool="avg")
    buf = pruning.score(net, "synflow", input_shape=(3, 8, 8), abs_buffers=True)
    assert not torch.allclose(base["0.weight"], avg["0.weight"])
    assert not torch.allclose(base["0.weight"], buf["0.weight"])
    with pytest.raises(ValueError, match="pool"):
        pruning.score(net, "synflow", input_shape=(3, 8, 8), pool="min")


@pytest.mark.parametrize("method", ["random", "magnitude", "lamp", "snip", "grasp", "grasp_magnitude",
                                    "synflow", "snip_iterative"])
def test_scoring_leaves_weights_bn_statistics_grads_mode_and_rng_untouched(method):
    net = small_cnn()
    net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    masks = pruning.prune(net, 0.3, "random", seed=1)
    scores = pruning.score(net, method, data=batch(), masks=masks)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert net.training and all(p.grad is None for p in net.parameters())
    assert list(scores) == list(pruning.prunable(net))
    assert all(torch.isfinite(s).all() and s.shape == net.get_parameter(k).shape for k, s in scores.items())


def test_masked_weights_score_zero_for_gradient_methods():
    net = small_cnn()
    masks = pruning.prune(net, 0.5, "random", seed=2)
    for method in ["magnitude", "snip", "synflow", "grasp"]:
        s = pruning.score(net, method, data=batch(), masks=masks)
        assert all(torch.all(s[k][~m] == 0) for k, m in masks.items()), method


def test_snip_bn_mode_is_an_option():
    net = small_cnn()
    with torch.no_grad():
        net[1].running_var.fill_(4.0)
    train = pruning.score(net, "snip", data=batch())["0.weight"]
    evals = pruning.score(net, "snip", data=batch(), bn_mode="eval")["0.weight"]
    assert not torch.allclose(train, evals)
    chunked = pruning.score(net, "snip", data=batch(), bn_mode="eval", chunk_size=5)["0.weight"]
    assert torch.allclose(chunked, evals, atol=1e-6)


@pytest.mark.parametrize("method", ["snip", "grasp"])
def test_chunked_scores_equal_one_pass_on_a_batchnorm_resnet(method):
    # BatchNorm in train mode: chunks normalised by, and differentiated through, the whole batch's statistics
    net = models.create("cifar_resnet_8_4", num_classes=3, input_shape=(3, 8, 8), seed=0).double()
    x, y = batch(6)
    x = x.double()
    one = pruning.score(net, method, data=(x, y), per_class=None)
    chunked = pruning.score(net, method, data=(x, y), per_class=None, chunk_size=4)   # chunks of 4 and 2
    for name in one:
        scale = one[name].abs().max()
        assert torch.allclose(chunked[name], one[name], rtol=0, atol=1e-10 * scale), name
    # statistics per chunk (each chunk a batch of its own) would change the scores well beyond that
    halves = [pruning.score(net, method, data=(x[i:i + 3], y[i:i + 3]), per_class=None) for i in (0, 3)]
    if method == "snip":
        per_chunk = halves[0]["conv.weight"] + halves[1]["conv.weight"]
        assert not torch.allclose(per_chunk / 2, one["conv.weight"], rtol=1e-3)


def test_chunked_iterative_snip_rescored_each_round():
    net = small_cnn()
    one = pruning.prune(net.double(), 0.8, "snip_iterative", data=(batch()[0].double(), batch()[1]), iterations=3)
    chunked = pruning.prune(net, 0.8, "snip_iterative", data=(batch()[0].double(), batch()[1]), iterations=3,
                            chunk_size=5)
    assert one.keys() == chunked.keys() and all(torch.equal(one[k], chunked[k]) for k in one)


def test_random_scores_are_seeded():
    net = small_cnn()
    a = pruning.score(net, "random", seed=1)
    b = pruning.score(net, "random", seed=1)
    c = pruning.score(net, "random", seed=2)
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["0.weight"], c["0.weight"])


def test_bad_scoring_input_is_named():
    net = small_cnn()
    with pytest.raises(KeyError, match="sniper"):
        pruning.score(net, "sniper")
    with pytest.raises(ValueError, match="needs scoring data"):
        pruning.score(net, "snip")
    with pytest.raises(ValueError, match="does not fit"):
        pruning.score(net, "snip", data=(torch.randn(4, 5, 8, 8), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match="labels"):
        pruning.score(net, "snip", data=(torch.randn(4, 3, 8, 8), torch.zeros(3, dtype=torch.long)))
    with pytest.raises(ValueError, match="temprature"):
        pruning.score(net, "grasp", data=batch(), temprature=3)


def test_synflow_on_resnet110_is_finite_in_float64_where_float32_overflows():
    net = models.create("cifar_resnet_110")
    scores = pruning.score(net, "synflow", input_shape=(3, 8, 8))
    assert all(torch.isfinite(s).all() for s in scores.values())
    assert all(s.sum() > 0 for s in scores.values())
    single = pruning.score(net, "synflow", input_shape=(3, 8, 8), dtype=torch.float32)
    assert not all(torch.isfinite(s).all() for s in single.values())


def test_scoring_batch_composition_option():
    net = small_cnn()
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(60, 3, 8, 8, generator=gen), torch.tensor([0, 1, 2, 2, 1, 0] * 10)
    first = torch.cat([(y == c).nonzero().squeeze(1)[:10] for c in range(3)]).sort().values
    assert (y[first] == 0).sum() == 10
    balanced = pruning.score(net, "snip", data=(x, y))["0.weight"]
    by_hand = pruning.score(net, "snip", data=(x[first], y[first]), per_class=None)["0.weight"]
    whole = pruning.score(net, "snip", data=(x, y), per_class=None)["0.weight"]
    assert torch.allclose(balanced, by_hand, atol=1e-7) and not torch.allclose(balanced, whole)
    g10 = pruning.score(net, "grasp", data=(x, y), bn_mode="eval")["0.weight"]
    g_hand = pruning.score(net, "grasp", data=(x[first], y[first]), bn_mode="eval", per_class=None)["0.weight"]
    assert torch.allclose(g10, g_hand, rtol=1e-4, atol=1e-12)
    with pytest.raises(ValueError, match="per_class"):
        pruning.score(net, "snip", data=(x, y), per_class=0)
