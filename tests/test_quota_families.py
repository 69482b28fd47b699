"""Parameterised quota families: Definition 1 for many parameters and shapes; the published quotas as members."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from raysweep import pruning
from raysweep.pruning import InfeasibleQuota

conv = st.tuples(st.integers(1, 64), st.integers(1, 64), st.sampled_from([1, 3, 5]), st.sampled_from([1, 3]))
linear = st.tuples(st.integers(1, 300), st.integers(1, 300))
shape_lists = st.lists(st.one_of(conv, linear), min_size=1, max_size=8)
sparsities = st.one_of(st.floats(1e-6, 0.999), st.sampled_from([0.0, 0.5, 0.9, 0.99]))
exponents = st.floats(-3.0, 3.0)
floors = st.sampled_from([0.0, 0.0, 0.2, 0.5, 1.0])
LENET5 = [(6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84)]


def assert_definition_1(shapes, s, result):
    n = [math.prod(sh) for sh in shapes]
    assert len(result) == len(shapes)
    assert all(0.0 <= v < 1.0 for v in result)                       # layer integrity
    assert sum(v * k for v, k in zip(result, n)) == pytest.approx(s * sum(n), rel=1e-9, abs=1e-9)


def floor_room(shapes, s, first, last):
    """Whether the floors leave room: the weights they keep fit strictly inside the target's budget of kept
    weights (targets within rounding of that boundary are not drawn)."""
    n = [math.prod(sh) for sh in shapes]
    lo = [0.0] * len(n)
    lo[0] = max(lo[0], first)
    lo[-1] = max(lo[-1], last)
    kept, budget = sum(k * d for k, d in zip(n, lo)), (1 - s) * sum(n)
    assume(s == 0 or abs(kept - budget) > 1e-9 * sum(n))
    return kept < budget


@settings(max_examples=200, deadline=None)
@given(shape_lists, sparsities, exponents, floors, floors)
def test_igq_power_satisfies_definition_1(shapes, s, a, first, last):
    name = f"igq_power(a={a!r}, first_density={first}, last_density={last})"
    if s == 0 or floor_room(shapes, s, first, last):
        result = pruning.quota(name, shapes, s)
        assert_definition_1(shapes, s, result)
        assert 1 - result[0] >= first - 1e-12 and 1 - result[-1] >= last - 1e-12
        free = [i for i in range(len(shapes)) if not ((i == 0 and first) or (i == len(shapes) - 1 and last))]
        n = [math.prod(shapes[i]) for i in free]
        dens = [1 - result[i] for i in free]
        # 1/d - 1 = F n^a: the same F for every unfloored layer
        forces = [(1 / d - 1) / k ** a for d, k in zip(dens, n) if 1e-12 < 1 - d and d > 1e-9]
        if s > 0 and len(forces) > 1:
            assert max(forces) == pytest.approx(min(forces), rel=1e-6)
    else:
        with pytest.raises(InfeasibleQuota, match="igq_power"):
            pruning.quota(name, shapes, s)


@settings(max_examples=200, deadline=None)
@given(shape_lists, sparsities, exponents, floors, floors)
def test_erk_power_satisfies_definition_1(shapes, s, p, first, last):
    name = f"erk_power(p={p!r}, first_density={first}, last_density={last})"
    if s == 0 or floor_room(shapes, s, first, last):
        result = pruning.quota(name, shapes, s)
        assert_definition_1(shapes, s, result)
        assert 1 - result[0] >= first - 1e-12 and 1 - result[-1] >= last - 1e-12
        if s > 0:
            # unclipped layers share one eps = density / (sum/prod)^p
            lo = [0.0] * len(shapes)
            lo[0], lo[-1] = max(lo[0], first), max(lo[-1], last)
            w = [(sum(sh) / math.prod(sh)) ** p for sh in shapes]
            eps = [(1 - v) / wi for v, wi, li in zip(result, w, lo) if 1e-9 < v and 1 - v > li + 1e-9]
            if len(eps) > 1:
                assert max(eps) == pytest.approx(min(eps), rel=1e-9)
            # and a clipped layer sits at its bound because eps * w would cross it
            if eps:
                e = eps[0]
                for v, wi, li in zip(result, w, lo):
                    if v <= 1e-9 and li < 1:
                        assert e * wi >= 1 - 1e-6
                    elif abs((1 - v) - li) < 1e-12 and 0 < li < 1:
                        assert e * wi <= li + 1e-9
    else:
        with pytest.raises(InfeasibleQuota, match="erk_power"):
            pruning.quota(name, shapes, s)


def assert_reproduces(family, published):
    """Bit for bit, unless a layer of the published quota sits within rounding of density 1, where the
    two solvers may put that one layer on either side of the clip (both then differ by rounding only)."""
    if all(v == 0.0 or v > 1e-9 for v in family + published):
        assert family == published
    else:
        np.testing.assert_allclose(family, published, rtol=0, atol=1e-12)


def assert_same_weights(family, published, shapes):
    """Equal to far below one weight per layer. The uniform members are computed in another form than the
    published quotas (kept rather than pruned weights, one layer's count subtracted from the total), so they
    differ by the rounding of the total count: 1.3e-12 of a layer of one weight was seen next to a 27,720-weight
    layer at s = 1e-6."""
    n = np.array([math.prod(sh) for sh in shapes], dtype=np.float64)
    np.testing.assert_allclose(np.array(family) * n, np.array(published) * n, rtol=0, atol=1e-6)


@settings(max_examples=150, deadline=None)
@given(shape_lists, sparsities)
def test_published_settings_reproduce_igq_and_erk_exactly(shapes, s):
    assert pruning.quota("igq_power(a=1)", shapes, s) == pruning.quota("igq", shapes, s)
    erk = pruning.quota("erk", shapes, s)
    assert_reproduces(pruning.quota("erk_power(p=1)", shapes, s), erk)
    assert_reproduces(pruning.quota("erk_power", shapes, s), erk)
    try:
        plus = pruning.quota("erk_plus", shapes, s)
    except InfeasibleQuota:
        with pytest.raises(InfeasibleQuota):
            pruning.quota("erk_power(p=1, last_density=1)", shapes, s)
    else:
        assert_reproduces(pruning.quota("erk_power(p=1, last_density=1)", shapes, s), plus)
    uniform = pruning.quota("uniform", shapes, s)
    assert_same_weights(pruning.quota("erk_power(p=0)", shapes, s), uniform, shapes)
    assert_same_weights(pruning.quota("igq_power(a=0)", shapes, s), uniform, shapes)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(conv, linear), min_size=3, max_size=8), sparsities)
def test_uniform_plus_is_erk_power_zero_with_role_floors(shapes, s):
    try:
        plus = pruning.quota("uniform_plus", shapes, s)
    except InfeasibleQuota:
        with pytest.raises(InfeasibleQuota):
            pruning.quota("erk_power(p=0, first_density=1, last_density=0.2)", shapes, s)
    else:
        family = pruning.quota("erk_power(p=0, first_density=1, last_density=0.2)", shapes, s)
        assert_same_weights(family, plus, shapes)


def test_hand_computed_igq_power_and_erk_power():
    shapes = [(10, 10), (100, 10)]   # n = 100, 1000
    # a = 0.5: sparsity F sqrt(n) / (1 + F sqrt(n)); at s = 0.5 the total is 550 pruned weights.
    result = pruning.quota("igq_power(a=0.5)", shapes, 0.5)
    f = (1 - result[0]) and (result[0] / (1 - result[0])) / 10.0
    assert result[1] == pytest.approx(f * math.sqrt(1000) / (1 + f * math.sqrt(1000)), rel=1e-12)
    assert 100 * result[0] + 1000 * result[1] == pytest.approx(550, rel=1e-12)
    # erk_power p=2: w = (20/100)^2 = 0.04 and (110/1000)^2 = 0.0121; at s = 0.8, 220 kept = eps (4 + 12.1)
    eps = 220 / (0.04 * 100 + 0.0121 * 1000)
    assert pruning.quota("erk_power(p=2)", shapes, 0.8) == pytest.approx([1 - eps * 0.04, 1 - eps * 0.0121])
    # at s = 0.5 that eps would give the first layer density 1.37: it is clipped dense, the second keeps 450
    assert pruning.quota("erk_power(p=2)", shapes, 0.5) == pytest.approx([0.0, 0.55])
    # first layer dense: the second carries all 550 pruned weights
    assert pruning.quota("igq_power(a=3, first_density=1)", shapes, 0.5) == pytest.approx([0.0, 0.55])
    assert pruning.quota("erk_power(p=-2, first_density=1)", shapes, 0.5) == pytest.approx([0.0, 0.55])


def test_larger_exponent_prunes_large_layers_harder():
    low, high = (pruning.quota(f"igq_power(a={a})", LENET5, 0.9) for a in (0.5, 2.0))
    assert high[2] > low[2] and high[0] < low[0]     # the 48k-weight layer vs the 150-weight one
    low, high = (pruning.quota(f"erk_power(p={p})", LENET5, 0.9) for p in (0.5, 2.0))
    assert high[2] > low[2] and high[0] < low[0]


def test_infeasible_floors_and_bad_parameters_are_clear():
    with pytest.raises(InfeasibleQuota, match=r"igq_power\(a=1, first_density=1, last_density=1\).*floors"):
        pruning.quota("igq_power(first_density=1, last_density=1)", [(4, 4), (8, 8)], 0.5)
    with pytest.raises(InfeasibleQuota, match="erk_power.*cannot reach sparsity 0.99"):
        pruning.quota("erk_power(last_density=1)", LENET5, 0.99)
    with pytest.raises(ValueError, match="first_density=1.5"):
        pruning.quota("igq_power(first_density=1.5)", LENET5, 0.5)
    with pytest.raises(ValueError, match="exponent p=inf"):
        pruning.quota("erk_power(p=inf)", LENET5, 0.5)
    with pytest.raises(ValueError, match="'igq_power' takes parameters"):
        pruning.quota("igq_power(b=1)", LENET5, 0.5)
