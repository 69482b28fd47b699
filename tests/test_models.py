"""Model registry, architectures and seeded initialisation (raysweep.models)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from raysweep import models
from raysweep.models.cifar_resnet import Block

DIGITS = (1, 8, 8)  # the embedded default data set: scikit-learn's 8x8 grayscale digits
SMALL_FAMILIES = ("lenet", "cifar_", "wide_resnet", "stable_resnet", "vanilla_cnn")


def data_shape(name: str) -> tuple[int, int, int]:
    # ImageNet-style nets run at 64x64 (TinyImageNet size), the 100-layer V-CNN at 4x4, to keep the test fast.
    if name.startswith("vanilla_cnn"):
        return (1, 4, 4)
    return DIGITS if name.startswith(SMALL_FAMILIES) else (3, 64, 64)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def hand_count_cifar_resnet(depth: int, width: int, in_channels: int = 3, classes: int = 10) -> int:
    """Parameters of ResNet-D counted from the architecture's description (3x3 convs without bias,
    BatchNorm gamma+beta, 1x1 conv + BN shortcut where the shape changes, linear head)."""
    n = (depth - 2) // 6
    total = 9 * in_channels * width + 2 * width
    channels = width
    for stage in range(3):
        out = width * 2**stage
        for index in range(n):
            total += 9 * channels * out + 2 * out + 9 * out * out + 2 * out
            if channels != out:
                total += channels * out + 2 * out
            channels = out
    return total + channels * classes + classes


def hand_count_vgg16(classes: int = 10) -> int:
    layout = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    total, channels = 0, 3
    for out in layout:
        total += 9 * channels * out + 2 * out
        channels = out
    return total + 512 * classes + classes


# ---------------------------------------------------------------------------------------------- build/forward


@pytest.mark.parametrize("name", models.names())
def test_every_registered_model_builds_and_runs_forward(name):
    shape = data_shape(name)
    model = models.create(name, num_classes=7, input_shape=shape, seed=0)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    assert model.raysweep_init == ("kaiming_normal", "ones")


def test_names_cover_the_requested_families():
    expected = {
        "lenet_300_100", "lenet_5", "cifar_resnet_20", "cifar_resnet_32", "cifar_resnet_44", "cifar_resnet_56",
        "cifar_resnet_110", "cifar_vgg_11", "cifar_vgg_13", "cifar_vgg_16", "cifar_vgg_19", "imagenet_resnet_18",
        "imagenet_resnet_50", "tiny_resnet_18", "wide_resnet_32_2", "mobilenet_v2",
        # Hayou et al.'s networks
        "cifar_resnet_32_32", "cifar_resnet_50_32", "cifar_resnet_104_32", "stable_resnet_32_32",
        "stable_resnet_50_32", "stable_resnet_104_32", "cifar_resnet_32_32_tanh", "stable_resnet_32_32_tanh",
        "stable_imagenet_resnet_50", "vanilla_cnn_10_128", "vanilla_cnn_50_128", "vanilla_cnn_100_128",
        "cifar_vgg_16_nobn", "cifar_vgg_16x3_nobn",
        "cifar_vgg2_16",   # Frankle et al.'s VGG2-16
    }
    assert expected <= set(models.names())


@pytest.mark.parametrize("name", ["cifar_resnet_20", "cifar_vgg_16", "lenet_5", "lenet_300_100"])
def test_cifar_and_mnist_shapes_run(name):
    for shape in [(3, 32, 32), (1, 28, 28)]:
        model = models.create(name, num_classes=100, input_shape=shape).eval()
        with torch.no_grad():
            assert model(torch.randn(2, *shape)).shape == (2, 100)


@pytest.mark.parametrize("name", ["imagenet_resnet_18", "tiny_resnet_18", "mobilenet_v2"])
def test_torchvision_nets_adapt_to_input_channels(name):
    model = models.create(name, num_classes=5, input_shape=(1, 32, 32)).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 5)


def test_width_and_depth_are_parsed_from_the_name():
    model = models.create("cifar_resnet_20_64")
    assert model.conv.out_channels == 64 and model.fc.in_features == 256
    assert len(model.blocks) == 9
    assert len(models.create("cifar_resnet_14").blocks) == 6
    assert len(models.create("cifar_resnet_110").blocks) == 54
    wide = models.create("wide_resnet_32_2")
    assert wide.conv.out_channels == 32 and len(wide.blocks) == 15
    assert num_params(wide) == hand_count_cifar_resnet(32, 32)
    stable = models.create("stable_resnet_50_32")
    assert stable.conv.out_channels == 32 and len(stable.blocks) == 24
    assert num_params(models.create("imagenet_resnet_34", 1000, (3, 224, 224))) == 21_797_672


def test_tiny_resnet_has_3x3_stride_1_stem_and_no_maxpool():
    model = models.create("tiny_resnet_18", num_classes=200, input_shape=(3, 64, 64))
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    standard = models.create("imagenet_resnet_18", num_classes=200, input_shape=(3, 64, 64))
    assert standard.conv1.kernel_size == (7, 7) and isinstance(standard.maxpool, nn.MaxPool2d)


def test_vgg16_follows_frankle_layout():
    model = models.create("cifar_vgg_16")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 1  # a single linear head


# ------------------------------------------------------------------------------------------- parameter counts


def test_resnet20_parameter_count():
    count = num_params(models.create("cifar_resnet_20"))
    assert count == hand_count_cifar_resnet(20, 16) == 272_474
    assert abs(count - 0.27e6) / 0.27e6 < 0.01  # Frankle et al.: ~0.27M


@pytest.mark.parametrize("depth,width", [(32, 16), (56, 16), (20, 8), (20, 56)])
def test_cifar_resnet_counts_match_hand_count(depth, width):
    assert num_params(models.create(f"cifar_resnet_{depth}_{width}")) == hand_count_cifar_resnet(depth, width)


def test_vgg16_parameter_count():
    count = num_params(models.create("cifar_vgg_16"))
    assert count == hand_count_vgg16() == 14_724_042
    assert abs(count - 14.7e6) / 14.7e6 < 0.005  # Frankle et al.: ~14.7M


def test_resnet50_parameter_count():
    count = num_params(models.create("imagenet_resnet_50", num_classes=1000, input_shape=(3, 224, 224)))
    assert count == 25_557_032  # torchvision's ResNet-50
    assert abs(count - 25.6e6) / 25.6e6 < 0.005  # Frankle et al.: ~25.6M


def test_lenet_parameter_counts_on_mnist():
    assert num_params(models.create("lenet_300_100", 10, (1, 28, 28))) == 784 * 300 + 300 + 300 * 100 + 100 + 1010
    lenet5 = 6 * 25 + 6 + 16 * 6 * 25 + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
    assert num_params(models.create("lenet_5", 10, (1, 28, 28))) == lenet5 == 61_706


def test_hayou_resnets_are_wang_et_als_double_width_resnets():
    # Hayou's "ResNet32 (NO PRUNING) 94.80" is Wang et al.'s ResNet-32, which Frankle et al. call WRN-32-2:
    # stages of 32, 64 and 128 channels. The Stable and tanh versions only rescale branches or swap activations.
    wrn = num_params(models.create("wide_resnet_32_2"))
    names = [f"{family}_32_32{activation}" for family in ("cifar_resnet", "stable_resnet")
             for activation in ("", "_tanh")]
    for name in names + ["cifar_resnet_50_32", "cifar_resnet_104_32"]:
        model = models.create(name)
        assert num_params(model) == hand_count_cifar_resnet(int(name.split("_")[2]), 32), name
        assert [model.blocks[i].conv2.out_channels for i in (0, -1)] == [32, 128], name
    assert num_params(models.create("cifar_resnet_32_32")) == wrn == 1_860_522
    # He et al.'s ResNet-32 has 0.46M parameters (without our 1x1 shortcut convs); twice the width, four times that
    assert num_params(models.create("cifar_resnet_32")) == pytest.approx(0.46e6, rel=0.02)
    assert wrn == pytest.approx(4 * 0.46e6, rel=0.02)
    assert num_params(models.create("cifar_resnet_32_32", num_classes=100)) == hand_count_cifar_resnet(32, 32, 3, 100)


def test_stable_imagenet_resnet50_is_torchvisions_with_scaled_branches():
    stable = models.create("stable_imagenet_resnet_50", num_classes=1000, input_shape=(3, 224, 224), seed=1)
    plain = models.create("imagenet_resnet_50", num_classes=1000, input_shape=(3, 224, 224), seed=1)
    assert num_params(stable) == num_params(plain) == 25_557_032
    scales = [m.scale for m in stable.modules() if type(m).__name__ == "BranchScale"]
    assert scales == [pytest.approx(1 / 4)] * 16   # 16 bottleneck blocks: 1/sqrt(16)
    block, x = stable.layer1[1].eval(), torch.randn(2, 256, 8, 8)
    reference = plain.layer1[1].eval()
    with torch.no_grad():
        branch = reference.bn3(reference.conv3(reference.relu(reference.bn2(reference.conv2(
            reference.relu(reference.bn1(reference.conv1(x))))))))
        assert torch.allclose(block(x), torch.relu(x + branch / 4), atol=1e-5)


def test_vanilla_cnn_has_l_plain_conv_layers():
    model = models.create("vanilla_cnn_50_128", input_shape=(1, 28, 28))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 50 and all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    width = 128
    expected = 9 * width + width + 49 * (9 * width * width + width) + width * 10 + 10
    assert num_params(model) == expected == 7_234_186
    with pytest.raises(models.BadArchitecture, match="depth 0"):
        models.create("vanilla_cnn_0_8")


def test_vgg_without_batchnorm_and_vgg2_parameter_counts():
    # Without BatchNorm every conv carries a bias (out channels) instead of gamma and beta (2 x out).
    outs = 64 + 64 + 128 + 128 + 3 * 256 + 6 * 512
    nobn = models.create("cifar_vgg_16_nobn")
    assert num_params(nobn) == hand_count_vgg16() - outs == 14_719_818
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in nobn.modules())
    deep = [m for m in models.create("cifar_vgg_16x3_nobn").modules() if isinstance(m, nn.Conv2d)]
    assert len(deep) == 39 and all(c.bias is not None for c in deep)
    # VGG2-16: a 512-unit hidden layer (weights, bias, BatchNorm) before the head
    assert num_params(models.create("cifar_vgg2_16")) == hand_count_vgg16() + 512 * 512 + 512 + 2 * 512


# ---------------------------------------------------------------------------------------------- initialisation


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("init", sorted(models.WEIGHT_INITS))
@pytest.mark.parametrize("name", ["cifar_resnet_20", "lenet_5"])
def test_same_seed_gives_bit_identical_weights(name, init):
    a = state(models.create(name, input_shape=DIGITS, seed=3, init=init, bn_init="uniform"))
    b = state(models.create(name, input_shape=DIGITS, seed=3, init=init, bn_init="uniform"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_different_seeds_and_schemes_give_different_weights():
    base = models.create("cifar_resnet_20", seed=0)
    other_seed = models.create("cifar_resnet_20", seed=1)
    fan_out = models.create("cifar_resnet_20", seed=0, init="kaiming_normal_fan_out")
    for name, weight in base.named_parameters():
        if weight.dim() > 1:
            assert not torch.equal(weight, dict(other_seed.named_parameters())[name]), name
            # fan-out differs from fan-in exactly where in and out channels differ
            same_fans = weight.shape[0] == weight.shape[1]
            assert torch.equal(weight, dict(fan_out.named_parameters())[name]) == same_fans, name


def test_initialize_is_deterministic_and_overwrites_trained_weights():
    model = models.create("cifar_vgg_11", input_shape=DIGITS, seed=5)
    before = state(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()
    model(torch.randn(4, *DIGITS))  # moves BatchNorm running statistics
    models.initialize(model, 5, *model.raysweep_init)
    after = state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_weight_distributions_match_their_formulas():
    torch_layer = nn.Sequential(nn.Conv2d(64, 128, 3), nn.Linear(10, 10))
    conv_fan_in, conv_fan_out = 64 * 9, 128 * 9

    def conv_weight(init):
        return models.initialize(torch_layer, 0, init)[0].weight.detach()

    std_in = conv_weight("kaiming_normal").std().item()
    assert std_in == pytest.approx(math.sqrt(2 / conv_fan_in), rel=0.02)
    std_out = conv_weight("kaiming_normal_fan_out").std().item()
    assert std_out == pytest.approx(math.sqrt(2 / conv_fan_out), rel=0.02)
    uniform = conv_weight("kaiming_uniform")
    bound = math.sqrt(6 / conv_fan_in)
    assert uniform.abs().max().item() <= bound
    assert uniform.abs().max().item() > 0.99 * bound
    assert uniform.std().item() == pytest.approx(math.sqrt(2 / conv_fan_in), rel=0.02)
    # EOC for ReLU is (sigma_b, sigma_w) = (0, sqrt(2)): the same law as He normal fan-in.
    assert torch.equal(conv_weight("eoc"), conv_weight("kaiming_normal"))
    assert torch_layer[0].bias.abs().sum() == 0 and torch_layer[1].bias.abs().sum() == 0


def test_bn_init_uniform_gives_gammas_in_open_unit_interval():
    model = models.create("cifar_resnet_20", bn_init="uniform")
    gammas = torch.cat([m.weight.detach() for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert ((gammas > 0) & (gammas < 1)).all()
    assert gammas.std() > 0.2  # spread like U(0, 1) (std 0.289), not a constant
    betas = torch.cat([m.bias.detach() for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert betas.abs().sum() == 0
    ones = models.create("cifar_resnet_20", bn_init="ones")
    assert all((m.weight == 1).all() for m in ones.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.raysweep_init == ("kaiming_normal", "uniform")


def test_create_and_initialize_leave_the_callers_rng_untouched():
    torch.manual_seed(1234)
    expected = torch.rand(5)
    torch.manual_seed(1234)
    model = models.create("cifar_vgg_11", input_shape=DIGITS, seed=9)
    models.initialize(model, 10, "kaiming_uniform", "uniform")
    assert torch.equal(torch.rand(5), expected)


def test_initialize_refuses_modules_it_cannot_initialise():
    model = nn.Sequential(nn.Linear(3, 3), nn.Embedding(4, 3))
    with pytest.raises(ValueError, match="Embedding"):
        models.initialize(model, 0)


# -------------------------------------------------------------------------------------------- stable resnet


def test_stable_resnet_scales_residual_branches_by_inverse_sqrt_blocks():
    for depth in (32, 50, 104):
        model = models.create(f"stable_resnet_{depth}")
        blocks = [m for m in model.modules() if isinstance(m, Block)]
        assert len(blocks) == (depth - 2) // 2
        assert all(b.branch_scale == pytest.approx(1 / math.sqrt(len(blocks))) for b in blocks)
    assert all(b.branch_scale == 1.0 for b in models.create("cifar_resnet_32").modules() if isinstance(b, Block))


def test_stable_resnet_forward_adds_scaled_branch():
    stable = models.create("stable_resnet_32", input_shape=DIGITS, seed=2).eval()
    plain = models.create("cifar_resnet_32", input_shape=DIGITS, seed=2).eval()
    x = torch.randn(4, 16, 8, 8)
    with torch.no_grad():
        # Same seed, same architecture apart from the scale: the weights agree.
        s_block, p_block = stable.blocks[1], plain.blocks[1]
        assert torch.equal(s_block.conv1.weight, p_block.conv1.weight)
        expected = torch.relu(x + p_block.branch(x) / math.sqrt(15))
        assert torch.allclose(s_block(x), expected, atol=1e-6)
        assert not torch.allclose(p_block(x), expected, atol=1e-3)


def test_stable_resnet_keeps_activations_bounded_with_depth():
    # With BatchNorm'd branches a standard ResNet's feature variance grows ~linearly with the number of
    # blocks L; the 1/sqrt(L) scaling keeps it O(1) (Hayou et al.'s motivation).
    x = torch.randn(16, *DIGITS)

    def feature_variance(name):
        model = models.create(name, input_shape=DIGITS, seed=0).train()
        with torch.no_grad():
            return model.blocks(torch.relu(model.bn(model.conv(x)))).var().item()

    plain, stable = feature_variance("cifar_resnet_104"), feature_variance("stable_resnet_104")
    assert stable < 5.0
    assert plain > 5 * stable


# ------------------------------------------------------------------------------------------------ EOC rescale


def test_eoc_rescale_hand_computed():
    layer = nn.Sequential(nn.Linear(3, 3, bias=False))
    with torch.no_grad():
        layer[0].weight.copy_(torch.tensor([[3.0, 4.0, 1.0], [1.0, -2.0, 2.0], [5.0, 5.0, 5.0]]))
    mask = torch.tensor([[True, True, False], [True, True, True], [False, False, False]])
    factors = models.eoc_rescale(layer, {"0.weight": mask})
    # row 0 keeps (3, 4): norm 5 -> rho = sqrt(2)/5; row 1 keeps all: norm 3 -> rho = sqrt(2)/3; row 2 pruned.
    r2 = math.sqrt(2)
    expected = torch.tensor([[3 * r2 / 5, 4 * r2 / 5, 0.0], [r2 / 3, -2 * r2 / 3, 2 * r2 / 3], [0.0, 0.0, 0.0]])
    assert torch.allclose(layer[0].weight, expected)
    assert torch.allclose(factors["0.weight"], torch.tensor([r2 / 5, r2 / 3, 1.0]))


def test_eoc_rescale_restores_signal_propagation_in_a_deep_pruned_net():
    depth, width = 30, 256
    gen = torch.Generator().manual_seed(2024)  # independent of the weights (seed 0)

    def make():
        net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.ReLU())])
        return models.initialize(net, 0, "eoc")

    masks = {f"{2 * i}.weight": torch.rand(width, width, generator=gen) < 0.1 for i in range(depth)}
    x = torch.randn(512, width, generator=gen)

    def output_second_moment(net):
        with torch.no_grad():
            return net(x).pow(2).mean().item()

    dense = output_second_moment(make())
    pruned = make()
    with torch.no_grad():
        for name, p in pruned.named_parameters():
            if name in masks:
                p.mul_(masks[name])
    rescaled = make()
    models.eoc_rescale(rescaled, masks)
    # On the EOC the second moment of ReLU outputs stays at the input's (1 here) up to finite-width noise;
    # 90% pruning shrinks it ~10x per layer, the rescaling restores the dense behaviour.
    assert 0.1 < dense < 10
    assert output_second_moment(pruned) < 1e-20
    assert 0.1 < output_second_moment(rescaled) < 10
    for name, p in rescaled.named_parameters():
        if name in masks:
            assert (p[~masks[name]] == 0).all()
            kept_rows = masks[name].any(1)
            assert torch.allclose(p.pow(2).sum(1)[kept_rows], torch.full((int(kept_rows.sum()),), 2.0))


def test_tanh_edge_of_chaos_has_unit_chi_by_monte_carlo():
    sigma_w, sigma_b = models.init.PHASES["eoc_tanh"]
    assert sigma_w == pytest.approx(models.init.tanh_edge_of_chaos(sigma_b)) and sigma_b == 0.2
    # an independent estimate: Monte Carlo expectations, fixed-point iteration of the variance map
    z = torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q = 1.0
    for _ in range(60):
        q = sigma_b ** 2 + sigma_w ** 2 * torch.tanh(math.sqrt(q) * z).pow(2).mean().item()
    chi = sigma_w ** 2 * (1 - torch.tanh(math.sqrt(q) * z).pow(2)).pow(2).mean().item()
    assert chi == pytest.approx(1.0, abs=5e-3)
    # larger bias variance, larger weight variance along the EOC curve
    assert models.init.tanh_edge_of_chaos(0.1) < sigma_w < models.init.tanh_edge_of_chaos(0.3)


def test_phase_schemes_draw_weights_and_biases_from_their_sigmas():
    layer = nn.Sequential(nn.Conv2d(64, 128, 3), nn.Linear(256, 512))
    for scheme in ("ordered_relu", "eoc_tanh"):
        sigma_w, sigma_b = models.init.PHASES[scheme]
        models.initialize(layer, 0, scheme)
        assert layer[0].weight.std().item() == pytest.approx(sigma_w / math.sqrt(64 * 9), rel=0.02)
        assert layer[1].weight.std().item() == pytest.approx(sigma_w / 16, rel=0.02)
        assert layer[1].bias.std().item() == pytest.approx(sigma_b, rel=0.15)
    assert models.initialize(layer, 0, "eoc")[1].bias.abs().sum() == 0


def test_ordered_phase_collapses_deep_correlations_where_the_eoc_keeps_them():
    # Table 4's premise: from the ordered phase a deep ReLU network maps all inputs to nearly the same output
    # (correlations go to 1 geometrically, at the rate sigma_w^2 / 2 = 0.72), on the EOC only polynomially.
    depth, width = 50, 512
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, width, generator=gen)

    def decorrelation(scheme):
        net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.ReLU())])
        models.initialize(net, 0, scheme)
        with torch.no_grad():
            out = net[:-1](x)   # the last pre-activation
        return 1 - torch.nn.functional.cosine_similarity(out[0], out[1], dim=0).item()

    ordered, eoc = decorrelation("ordered_relu"), decorrelation("eoc")
    assert ordered < 1e-5 < 1e-3 < eoc


def test_eoc_rescale_restores_the_variance_of_the_models_own_scheme():
    model = models.create("vanilla_cnn_3_64", input_shape=DIGITS, init="eoc_tanh")
    name = "features.2.weight"
    mask = torch.rand(model.features[2].weight.shape, generator=torch.Generator().manual_seed(1)) < 0.3
    models.eoc_rescale(model, {name: mask})
    sigma_w = models.init.PHASES["eoc_tanh"][0]
    norms = model.features[2].weight.pow(2).flatten(1).sum(1)
    assert torch.allclose(norms, torch.full_like(norms, sigma_w ** 2))


def rescaling_effect(name: str) -> tuple[float, float]:
    """The relative change of the network's penultimate features and of its outputs on a batch (training mode, as
    at the first step) when its SNIP-pruned, EOC-initialised weights are rescaled."""
    from raysweep import pruning

    model = models.create(name, input_shape=(3, 16, 16), seed=0, init="eoc").train()
    x = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(1))
    masks = pruning.prune(model, 0.9, "snip", data=(x, y), seed=0)
    masks.apply(model)

    def run():
        with torch.no_grad():
            features = model.pool(model.features(x)).flatten(1)
            return features, model(x)

    features, outputs = run()
    models.eoc_rescale(model, masks)
    new_features, new_outputs = run()
    return (((new_features - features).abs().max() / features.abs().max()).item(),
            ((new_outputs - outputs).abs().max() / outputs.abs().max()).item())


def test_rescaling_changes_the_function_of_the_vgg_without_batchnorm():
    # Hayou's Table 5 compares "EOC + rescaling" with SNIP. On the BatchNorm VGG every rescaled conv channel is
    # normalised again: the features are those of the unrescaled network (up to BatchNorm's eps in channels pruned
    # almost entirely), only the linear head's per-class scale moves. Without BatchNorm the rescaling changes what
    # every layer computes, by orders of magnitude after 13 layers at 90% sparsity.
    bn_features, bn_outputs = rescaling_effect("cifar_vgg_16")
    assert bn_features < 0.05 and bn_outputs > 0.05
    nobn_features, nobn_outputs = rescaling_effect("cifar_vgg_16_nobn")
    assert nobn_features > 10 and nobn_outputs > 10
    assert rescaling_effect("vanilla_cnn_10_16")[0] > 0.5


def test_eoc_rescale_rejects_bad_masks():
    model = models.create("lenet_300_100", input_shape=DIGITS)
    with pytest.raises(KeyError, match="nope.weight"):
        models.eoc_rescale(model, {"nope.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="1.weight"):
        models.eoc_rescale(model, {"1.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="1.bias"):
        models.eoc_rescale(model, {"1.bias": torch.ones(300, dtype=torch.bool)})


# ---------------------------------------------------------------------------------------------------- errors


def test_unknown_name_lists_available_names():
    with pytest.raises(KeyError) as info:
        models.create("resnet_20")
    message = str(info.value)
    assert "'resnet_20'" in message
    assert all(n in message for n in models.names())
    assert isinstance(info.value, models.UnknownModel)


@pytest.mark.parametrize(
    "name,fragment",
    [
        ("cifar_resnet_21", r"6n\+2"),
        ("cifar_resnet_2", r"6n\+2"),
        ("cifar_resnet_20_0", "width 0"),
        ("stable_resnet_51", r"6n\+2"),
        ("wide_resnet_33_2", r"6n\+2"),
        ("wide_resnet_32_0", "width factor 0"),
        ("cifar_vgg_12", "depth 12"),
        ("imagenet_resnet_20", "depth 20"),
        ("tiny_resnet_19", "depth 19"),
    ],
)
def test_bad_depth_or_width_raises_clear_error(name, fragment):
    with pytest.raises(models.BadArchitecture, match=fragment):
        models.create(name)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"init": "xavier"}, "xavier"),
        ({"bn_init": "zeros"}, "zeros"),
        ({"num_classes": 0}, "num_classes"),
        ({"input_shape": (8, 8)}, "input_shape"),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        models.create("lenet_5", **kwargs)


def test_vgg_with_repeated_layers_is_the_same_layout_three_times_deeper():
    base, deep = models.create("cifar_vgg_16"), models.create("cifar_vgg_16x3")
    convs = [m for m in base.modules() if isinstance(m, torch.nn.Conv2d)]
    deep_convs = [m for m in deep.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(deep_convs) == 3 * len(convs) == 39
    assert [c.out_channels for c in deep_convs] == [c.out_channels for c in convs for _ in range(3)]
    assert deep(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(models.BadArchitecture):
        models.create("cifar_vgg_16x0")


# --------------------------------------------------------------- Vysogorets & Kempe and Liu et al.: their networks


def hand_count_vgg(layout: list[int], classes: int) -> int:
    """3x3 convs without bias, BatchNorm gamma+beta after each, one linear head (Frankle's CIFAR VGG)."""
    total, channels = 0, 3
    for out in layout:
        total += 9 * channels * out + 2 * out
        channels = out
    return total + channels * classes + classes


def test_kaiming_normal_fan_avg_has_variance_two_over_the_mean_fan():
    """Vysogorets & Kempe, Table 1: "Models are initialized using Kaiming normal scheme (fan-avg)"."""
    layers = nn.Sequential(nn.Conv2d(64, 128, 3), nn.Linear(300, 100))
    models.initialize(layers, 0, "kaiming_normal_fan_avg")
    conv, linear = layers[0].weight.detach(), layers[1].weight.detach()
    assert conv.std().item() == pytest.approx(math.sqrt(2 / ((64 * 9 + 128 * 9) / 2)), rel=0.02)
    assert linear.std().item() == pytest.approx(math.sqrt(2 / ((300 + 100) / 2)), rel=0.02)
    assert conv.mean().item() == pytest.approx(0.0, abs=0.003)
    # an untruncated normal: about 0.27% of draws lie beyond 3 standard deviations
    assert (conv.abs() > 3 * math.sqrt(4 / (64 * 9 + 128 * 9))).float().mean().item() == pytest.approx(0.0027, abs=0.001)


@pytest.mark.parametrize("name", ["lenet_300_100_bn", "lenet_5_bn"])
def test_vysogorets_lenets_put_batchnorm_before_every_hidden_relu(name):
    """Table 1: "All architectures include batch normalization layers followed by ReLU activations"."""
    model = models.create(name, 10, (1, 28, 28))
    layers = list(model)
    weighted = [i for i, m in enumerate(layers) if isinstance(m, (nn.Linear, nn.Conv2d))]
    for i in weighted[:-1]:
        assert isinstance(layers[i + 1], (nn.BatchNorm1d, nn.BatchNorm2d)) and isinstance(layers[i + 2], nn.ReLU)
    assert weighted[-1] == len(layers) - 1                      # the output layer: no BatchNorm, no ReLU
    plain = models.create(name.removesuffix("_bn"), 10, (1, 28, 28))
    assert [type(m) for m in plain if isinstance(m, (nn.Linear, nn.Conv2d))] == \
        [type(layers[i]) for i in weighted]                     # the same weighted layers as the plain LeNet


def test_vysogorets_lenet_parameter_counts():
    # LeNet-300-100 on MNIST: the standard 266,610 (784-300-100-10 with biases) plus gamma and beta of 400 units
    assert num_params(models.create("lenet_300_100_bn", 10, (1, 28, 28))) == 266_610 + 2 * 400
    # LeNet-5 on 32x32 CIFAR-10 (LeCun et al.: 6 and 16 5x5 maps, 120-84-10 head): 62,006 plus BN of 226 units
    lenet5 = 3 * 6 * 25 + 6 + 6 * 16 * 25 + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
    assert lenet5 == 62_006
    assert num_params(models.create("lenet_5_bn", 10, (3, 32, 32))) == lenet5 + 2 * (6 + 16 + 120 + 84)
    # LeCun's 32x32 geometry: 28x28 maps after the first conv, 5x5 before the head, on CIFAR and padded MNIST alike
    for shape in ((3, 32, 32), (1, 28, 28)):
        model = models.create("lenet_5_bn", 10, shape).eval()
        with torch.no_grad():
            assert model[:9](torch.zeros(1, *shape)).shape == (1, 16, 5, 5)
            assert model[:1](torch.zeros(1, *shape)).shape == (1, 6, 28, 28)


@pytest.mark.parametrize("name,classes,shape,count", [
    # Vysogorets & Kempe, Appendix A: VGG-16 on CIFAR-10, VGG-19 on CIFAR-100, ResNet-18 on TinyImageNet (the 3x3
    # stride-1 stem: see test_pruning_quotas), ResNet-50 and MobileNetV2 on ImageNet (torchvision's counts)
    ("cifar_vgg_19", 100, (3, 32, 32), hand_count_vgg([64, 64, 128, 128] + [256] * 4 + [512] * 8, 100)),
    ("tiny_resnet_18", 200, (3, 64, 64), 11_689_512 - (7 * 7 - 3 * 3) * 3 * 64 - 800 * 512 - 800),
    ("mobilenet_v2", 1000, (3, 224, 224), 3_504_872),
    # Liu et al.: ResNet-18/34/50/101 and Wide ResNet-50 on ImageNet (torchvision's counts)
    ("imagenet_resnet_18", 1000, (3, 224, 224), 11_689_512),
    ("imagenet_resnet_101", 1000, (3, 224, 224), 44_549_160),
    ("imagenet_wide_resnet_50", 1000, (3, 224, 224), 68_883_240),
    # Liu et al., Appendix E: the BatchNorm VGGs on CIFAR-10/100
    ("cifar_vgg_11", 10, (3, 32, 32), hand_count_vgg([64, 128, 256, 256, 512, 512, 512, 512], 10)),
    ("cifar_vgg_13", 100, (3, 32, 32), hand_count_vgg([64, 64, 128, 128, 256, 256, 512, 512, 512, 512], 100)),
])
def test_paper_network_parameter_counts(name, classes, shape, count):
    from raysweep.models.registry import build   # the architecture only: initialising 69M weights adds nothing here
    assert num_params(build(name, classes, shape)) == count


def test_vgg19_and_liu_cifar_resnets_match_the_published_sizes():
    assert hand_count_vgg([64, 64, 128, 128] + [256] * 4 + [512] * 8, 100) == 20_081_188   # ~20.0M conv weights
    # He et al. (Table 6): ResNet-20/32/44/56/110 have 0.27M/0.46M/0.66M/0.85M/1.7M parameters with parameter-free
    # shortcuts; Frankle's 1x1-conv + BN shortcuts (ours) add 2,752 at the two shape changes: under 2% in all five
    for depth, published in ((20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6), (110, 1.7e6)):
        count = num_params(models.create(f"cifar_resnet_{depth}"))
        assert count == hand_count_cifar_resnet(depth, 16)
        assert 0 < count - published < 0.02 * published, depth


# ---------------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("name", ["cifar_resnet_20", "cifar_resnet_8_4", "wide_resnet_32_2", "stable_resnet_14_3",
                                  "cifar_resnet_14_5_tanh", "stable_resnet_8_2_tanh", "vanilla_cnn_3_7",
                                  "cifar_vgg_11", "cifar_vgg_16x3", "cifar_vgg_13x2_nobn", "cifar_vgg2_16", "lenet_5",
                                  "imagenet_resnet_34"])
@pytest.mark.parametrize("num_classes,input_shape", [(10, (3, 32, 32)), (7, (1, 8, 8))])
def test_a_models_size_is_known_from_its_name_as_built(name, num_classes, input_shape):
    model = models.create(name, num_classes=num_classes, input_shape=input_shape)
    built = models.Size(sum(p.numel() for p in model.parameters()),
                        sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()))
    assert models.size(name, num_classes, input_shape) == built


@pytest.mark.parametrize("name,fragment", [
    ("cifar_resnet_200000", "3,240,481,754 parameters in 200,002 layers"),   # deep: 138 s and 5.4 GB to build
    ("wide_resnet_32_20000", "185,344,070,720,010 parameters"),              # wide: 740 TB of weights
    ("cifar_resnet_200000_1", "200,002 layers"),                             # few parameters, 10^5 blocks
    ("cifar_vgg_16x100", "1,628,655,306 parameters"),
])
def test_a_network_too_large_is_refused_from_its_name_at_once(name, fragment):
    import time
    started = time.monotonic()
    for check in (models.size, models.create):
        with pytest.raises(models.BadArchitecture, match=fragment):
            check(name, 10, (3, 32, 32))
    assert time.monotonic() - started < 1
