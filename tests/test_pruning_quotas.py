"""Layerwise quotas: Definition 1 of Vysogorets & Kempe over many shapes and sparsities, and by hand."""
import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from raysweep import pruning
from raysweep.pruning import InfeasibleQuota

conv = st.tuples(st.integers(1, 64), st.integers(1, 64), st.sampled_from([1, 3, 5]), st.sampled_from([1, 3]))
linear = st.tuples(st.integers(1, 300), st.integers(1, 300))
shape_lists = st.lists(st.one_of(conv, linear), min_size=1, max_size=8)
sparsities = st.one_of(st.floats(0.0, 0.999999), st.sampled_from([0.0, 0.5, 0.9, 0.99, 0.999]))


def sizes(shapes):
    return [math.prod(s) for s in shapes]


def assert_definition_1(shapes, s, result):
    n = sizes(shapes)
    assert len(result) == len(shapes)
    assert all(0.0 <= v < 1.0 for v in result)                       # layer integrity
    assert sum(v * k for v, k in zip(result, n)) == pytest.approx(s * sum(n), rel=1e-9, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(shape_lists, sparsities)
def test_always_feasible_quotas_satisfy_definition_1(shapes, s):
    for name in ["uniform", "erk", "igq"]:
        assert_definition_1(shapes, s, pruning.quota(name, shapes, s))


@settings(max_examples=150, deadline=None)
@given(shape_lists, sparsities)
def test_uniform_plus_is_valid_or_reports_infeasible(shapes, s):
    n = sizes(shapes)
    target = s * sum(n)
    if s == 0:
        feasible = True
    elif len(n) == 1:
        feasible = False
    elif len(n) == 2:
        feasible = target / n[1] <= 0.8
    else:
        feasible = target - min(0.8, target / sum(n[1:])) * n[-1] < sum(n[1:-1])
    if feasible:
        result = pruning.quota("uniform_plus", shapes, s)
        assert_definition_1(shapes, s, result)
        assert result[0] == 0.0 and result[-1] <= 0.8
        assert len(set(result[1:-1])) <= 1
    else:
        with pytest.raises(InfeasibleQuota, match="uniform_plus"):
            pruning.quota("uniform_plus", shapes, s)


@settings(max_examples=150, deadline=None)
@given(shape_lists, sparsities)
def test_erk_plus_keeps_last_layer_dense_or_reports_infeasible(shapes, s):
    n = sizes(shapes)
    if s > 0 and (len(n) == 1 or n[-1] >= (1 - s) * sum(n)):
        with pytest.raises(InfeasibleQuota, match="ERK"):
            pruning.quota("erk_plus", shapes, s)
        return
    result = pruning.quota("erk_plus", shapes, s)
    assert_definition_1(shapes, s, result)
    assert result[-1] == 0.0


@settings(max_examples=100, deadline=None)
@given(shape_lists, st.floats(0.01, 0.99))
def test_erk_densities_follow_sum_over_product_except_dense_layers(shapes, s):
    result = pruning.quota("erk", shapes, s)
    raw = [sum(sh) / math.prod(sh) for sh in shapes]
    ratios = {round((1 - v) / r, 9) for v, r in zip(result, raw) if v > 0}
    assert len(ratios) <= 1                                       # one epsilon for all sparse layers
    eps = ratios.pop() if ratios else None
    for v, r in zip(result, raw):
        if v == 0 and eps is not None:
            assert eps * r >= 1 - 1e-9                             # dense only because it would exceed 1


@settings(max_examples=100, deadline=None)
@given(shape_lists, st.floats(0.01, 0.99))
def test_igq_is_ideal_gas_law_and_prunes_bigger_layers_more(shapes, s):
    result = pruning.quota("igq", shapes, s)
    n = sizes(shapes)
    forces = [(1 / (1 - v) - 1) / k for v, k in zip(result, n)]   # density 1/(1 + F n)
    assert max(forces) == pytest.approx(min(forces), rel=1e-6)
    order = np.argsort(n, kind="stable")
    assert all(result[order[i]] <= result[order[i + 1]] + 1e-12 for i in range(len(n) - 1))


@settings(max_examples=100, deadline=None)
@given(shape_lists, sparsities)
def test_plain_erk_is_the_formula_and_infeasible_exactly_when_a_density_exceeds_1(shapes, s):
    raw = np.array([sum(sh) / math.prod(sh) for sh in shapes])
    n = np.array(sizes(shapes), dtype=float)
    dens = (1 - s) * n.sum() / float(np.sum(raw * n)) * raw
    if s > 0 and dens.max() > 1 + 1e-9:
        with pytest.raises(InfeasibleQuota, match="ERK without redistribution"):
            pruning.quota("erk_plain", shapes, s)
        return
    if s > 0 and dens.max() > 1 - 1e-9:
        return                                                       # on the boundary: either answer is exact
    result = pruning.quota("erk_plain", shapes, s)
    assert_definition_1(shapes, s, result)
    if s > 0:
        np.testing.assert_allclose(1 - np.array(result), dens, rtol=1e-9)
        # below the threshold plain ERK is RigL's ERK; above it RigL's redistributes and plain ERK does not exist
        np.testing.assert_allclose(result, pruning.quota("erk", shapes, s), atol=1e-9)


@functools.lru_cache(maxsize=None)
def prunable_shapes(model, classes, shape):
    from raysweep.models.registry import build   # the architecture only: no initialisation needed for shapes
    net = build(model, classes, shape)
    return [tuple(p.shape) for p in pruning.prunable(net).values()]


def erk_threshold(shapes):
    """The least sparsity at which no plain-ERK layer needs a density above 1: 1 - sum(raw n) / (N max raw)."""
    raw = np.array([sum(sh) / math.prod(sh) for sh in shapes])
    n = np.array(sizes(shapes), dtype=float)
    return 1 - float(np.sum(raw * n)) / (n.sum() * raw.max())


@pytest.mark.parametrize("model,classes,shape,paper", [
    # "it yields invalid layerwise sparsity quotas when removing less than 98% and 99% of parameters from ResNet-18
    # and VGG-19, respectively" (sec. 4); "the density of certain layers of VGG-16 set by ERK exceeds 1 when cutting
    # less than 99% of parameters, unless excessive density is redistributed" (sec. 4)
    ("tiny_resnet_18", 200, (3, 64, 64), 0.98),
    ("cifar_vgg_19", 100, (3, 32, 32), 0.99),
    ("cifar_vgg_16", 10, (3, 32, 32), 0.99),
])
def test_plain_erk_is_infeasible_where_vysogorets_says(model, classes, shape, paper):
    shapes = prunable_shapes(model, classes, shape)
    threshold = erk_threshold(shapes)
    assert round(threshold, 2) == paper                              # the paper's statement, to its precision
    with pytest.raises(InfeasibleQuota):
        pruning.quota("erk_plain", shapes, threshold - 1e-6)
    assert_definition_1(shapes, threshold + 1e-6, pruning.quota("erk_plain", shapes, threshold + 1e-6))
    for s in (0.5, 0.9, paper - 0.01):                               # the paper's whole percents below
        with pytest.raises(InfeasibleQuota):
            pruning.quota("erk_plain", shapes, s)
    for s in (paper + 0.005, 0.999):
        assert_definition_1(shapes, s, pruning.quota("erk_plain", shapes, s))
    assert_definition_1(shapes, 0.5, pruning.quota("erk", shapes, 0.5))    # RigL's ERK exists everywhere


def test_the_papers_resnet_18_threshold_is_the_tinyimagenet_variants():
    """ERK's threshold pins the architecture down: with He et al.'s ImageNet stem (7x7 stride-2 conv, max-pool) plain
    ERK would exist from 96.5% on, not from the paper's 98%; the 3x3 stride-1 stem of the TinyImageNet ResNet-18
    (Tanaka et al., Frankle et al. App. I) puts it at 98.01%."""
    assert erk_threshold(prunable_shapes("tiny_resnet_18", 200, (3, 64, 64))) == pytest.approx(0.9801, abs=1e-4)
    assert erk_threshold(prunable_shapes("imagenet_resnet_18", 200, (3, 64, 64))) == pytest.approx(0.9645, abs=1e-4)


def test_uniform_plus_on_resnet_50_ends_where_its_definition_says():
    """Uniform+ "retains all parameters in the first convolutional layer and caps sparsity of the last
    fully-connected layer at 80%" (Vysogorets sec. 4), so it exists up to 1 - (n_first + 0.2 n_last) / N: 98.36%
    (61x) on ResNet-50. The paper reports invalid quotas "from 40x onward for ResNet-50", which this definition does
    not give (at 40x the middle layers are 99.07% sparse); we follow the definition."""
    shapes = prunable_shapes("imagenet_resnet_50", 1000, (3, 224, 224))
    n = sizes(shapes)
    limit = 1 - (n[0] + 0.2 * n[-1]) / sum(n)
    assert 1 / (1 - limit) == pytest.approx(60.86, abs=0.01)
    assert_definition_1(shapes, 0.975, pruning.quota("uniform_plus", shapes, 0.975))
    assert_definition_1(shapes, limit - 1e-4, pruning.quota("uniform_plus", shapes, limit - 1e-4))
    with pytest.raises(InfeasibleQuota, match="uniform_plus"):
        pruning.quota("uniform_plus", shapes, limit + 1e-6)


def test_erk_with_the_last_layer_fixed_keeps_the_total_and_spreads_the_rest_by_erk():
    """Liu et al. Figure 14 (left): "We vary the sparsity of the last fully-connected layer while keeping the
    overall sparsity fixed as 70%"."""
    shapes = [(16, 3, 3, 3), (32, 16, 3, 3), (64, 32, 3, 3), (100, 64)]
    erk = pruning.quota("erk", shapes, 0.7)
    for last in (0.8, 0.5, 0.1, 0.0):
        result = pruning.quota(f"erk_power(p=1, last_density={1 - last}, last_max_density={1 - last})", shapes, 0.7)
        assert_definition_1(shapes, 0.7, result)
        assert result[-1] == pytest.approx(last, abs=1e-12)
        # the other layers are RigL's ERK over what the last layer leaves: one epsilon for the sparse ones
        raw = [sum(sh) / math.prod(sh) for sh in shapes[:-1]]
        eps = {round((1 - v) / r, 9) for v, r in zip(result[:-1], raw) if v > 0}
        assert len(eps) == 1
        # a sparser last layer leaves more weights to the others
        assert (sum(r <= e + 1e-12 for r, e in zip(result[:-1], erk[:-1])) == 3) == (last >= erk[-1])
    assert pruning.quota("erk_power(p=1, last_density=1, last_max_density=1)", shapes, 0.7) == \
        pytest.approx(pruning.quota("erk_plus", shapes, 0.7))
    with pytest.raises(ValueError, match="last_max_density"):
        pruning.quota("erk_power(last_density=0.5, last_max_density=0.2)", shapes, 0.7)


@pytest.mark.parametrize("name", ["uniform", "erk", "igq"])
def test_quotas_are_layerwise_monotone_as_algorithm_1_requires(name):
    shapes = [(16, 3, 3, 3), (32, 16, 3, 3), (64, 32, 3, 3), (10, 64)]
    previous = None
    for s in np.linspace(0, 0.999, 60):
        current = pruning.quota(name, shapes, float(s))
        if previous is not None:
            assert all(b >= a - 1e-12 for a, b in zip(previous, current))
        previous = current


def test_hand_computed_values():
    assert pruning.quota("uniform", [(2, 2), (3, 3)], 0.5) == [0.5, 0.5]
    # uniform+: first dense, last capped at 0.8, middle takes the rest: 0.6*400 = 200 m + 100 * 0.8
    u = pruning.quota("uniform_plus", [(10, 10), (20, 10), (10, 10)], 0.6)
    assert u == pytest.approx([0.0, (240 - 80) / 200, 0.8])
    # ERK on (10,10) and (100,100): raw densities 0.2 and 0.02, 20 eps + 200 eps = kept budget
    e = pruning.quota("erk", [(10, 10), (100, 100)], 0.9)   # eps = 1010/220: both sparse
    assert e == pytest.approx([1 - 0.2 * 1010 / 220, 1 - 0.02 * 1010 / 220])
    e = pruning.quota("erk", [(10, 10), (100, 100)], 0.8)   # eps = 2020/220 gives 1.84 > 1: dense, re-solve
    assert e == pytest.approx([0.0, 1 - (2020 - 100) / 10000])
    # IGQ with equal layers is uniform
    assert pruning.quota("igq", [(5, 5), (5, 5)], 0.37) == pytest.approx([0.37, 0.37])


def test_bad_quota_input():
    with pytest.raises(KeyError, match="nope"):
        pruning.quota("nope", [(2, 2)], 0.5)
    with pytest.raises(ValueError, match="sparsity"):
        pruning.quota("igq", [(2, 2)], 1.0)
    with pytest.raises(ValueError, match="sparsity"):
        pruning.quota("igq", [(2, 2)], float("nan"))
    with pytest.raises(ValueError, match="shape"):
        pruning.quota("igq", [(2, 0)], 0.5)
    with pytest.raises(InfeasibleQuota, match="uniform_plus"):
        pruning.quota("uniform_plus", [(10, 10), (10, 10), (10, 10)], 0.95)


def test_register_quota_extends_the_registry_and_checks_results():
    @pruning.register_quota("test_first_half")
    def first_half(shapes, sparsity, share=1.0):
        n = sizes(shapes)
        return [sparsity * sum(n) / n[0] * share] + [0.0] * (len(n) - 1)

    assert "test_first_half" in pruning.quotas()
    assert pruning.quota("test_first_half", [(10, 10), (10, 10)], 0.25) == [0.5, 0.0]
    with pytest.raises(InfeasibleQuota, match="misses the total"):
        pruning.quota("test_first_half", [(10, 10), (10, 10)], 0.25, share=0.5)
    with pytest.raises(ValueError, match="taken"):
        pruning.register_quota("igq")(first_half)
