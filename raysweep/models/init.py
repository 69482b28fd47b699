"""Seeded weight initialisation and Hayou et al.'s Edge-of-Chaos (EOC) rescaling after pruning.

Every scheme draws from its own torch.Generator seeded by `seed`, visiting modules in named_modules()
order, so the same (architecture, seed, init, bn_init) gives bit-identical weights on any machine and the
caller's global RNG is left alone.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

# Edge of Chaos for ReLU networks (Hayou et al.): (sigma_b, sigma_w) = (0, sqrt(2)), i.e. weights
# N(0, sigma_w^2 / fan_in) and zero biases. For ReLU this coincides with He (Kaiming) normal fan-in.
EOC_SIGMA_W = math.sqrt(2.0)


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    receptive_field = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive_field, weight.shape[0] * receptive_field


def _kaiming_normal(weight, generator):
    fan_in, _ = _fans(weight)
    return torch.empty(weight.shape).normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)


def _kaiming_normal_fan_out(weight, generator):
    _, fan_out = _fans(weight)
    return torch.empty(weight.shape).normal_(0.0, math.sqrt(2.0 / fan_out), generator=generator)


def _kaiming_normal_fan_avg(weight, generator):
    # Vysogorets & Kempe, Table 1: "Models are initialized using Kaiming normal scheme (fan-avg)": He's variance
    # 2/fan with fan the mean of fan-in and fan-out (TensorFlow's VarianceScaling(2.0, "fan_avg")), drawn from an
    # untruncated normal as "Kaiming normal" says.
    fan_in, fan_out = _fans(weight)
    return torch.empty(weight.shape).normal_(0.0, math.sqrt(4.0 / (fan_in + fan_out)), generator=generator)


def _kaiming_uniform(weight, generator):
    # He uniform with the ReLU gain: U(-b, b), b = sqrt(6 / fan_in), the same variance 2/fan_in as the
    # normal scheme (not PyTorch's reset_parameters default, which uses b = 1/sqrt(fan_in)).
    fan_in, _ = _fans(weight)
    bound = math.sqrt(6.0 / fan_in)
    return torch.empty(weight.shape).uniform_(-bound, bound, generator=generator)


def _eoc(weight, generator):
    fan_in, _ = _fans(weight)
    return torch.empty(weight.shape).normal_(0.0, EOC_SIGMA_W / math.sqrt(fan_in), generator=generator)


def tanh_edge_of_chaos(sigma_b: float) -> float:
    """The sigma_w that puts a tanh network with bias variance sigma_b^2 on the Edge of Chaos (Poole et al. 2016,
    Schoenholz et al. 2017, the definition Hayou et al. use): chi = sigma_w^2 E[tanh'(sqrt(q*) Z)^2] = 1, where q*
    is the fixed point of the variance map q = sigma_b^2 + sigma_w^2 E[tanh(sqrt(q) Z)^2] and Z ~ N(0, 1).
    The expectations are Gauss-Hermite quadratures (exact to float precision for these smooth integrands)."""
    import numpy as np
    from scipy.optimize import brentq

    nodes, weights = np.polynomial.hermite_e.hermegauss(101)
    weights = weights / weights.sum()

    def expect(f, q):
        return float(np.sum(weights * f(math.sqrt(q) * nodes)))

    def chi(sigma_w):
        q = brentq(lambda q: sigma_b ** 2 + sigma_w ** 2 * expect(lambda x: np.tanh(x) ** 2, q) - q, 1e-12, 1e3)
        return sigma_w ** 2 * expect(lambda x: (1 - np.tanh(x) ** 2) ** 2, q)

    return brentq(lambda sigma_w: chi(sigma_w) - 1.0, 1.0, 3.0)


# Hayou et al.'s tables compare initialisations by their (sigma_b, sigma_w): weights N(0, sigma_w^2 / fan_in),
# biases N(0, sigma_b^2). The text gives no values, so:
# - "ordered_relu", Table 4's "Ordered phase Init": a ReLU network with sigma_w < sqrt(2) and sigma_b > 0 is in the
#   ordered phase (its correlations converge to 1 at the rate chi = sigma_w^2 / 2). sigma_w = 1.2 gives the depth
#   scale xi = -1 / ln(chi) = 3.0 layers; by Schoenholz et al.'s bound (trainable to about 6 xi) depth 10 trains and
#   depths 50 and 100 do not, which is the row's pattern (98.12 / 10.00 / 10.00). sigma_b = 0.1 only has to be > 0.
# - "eoc_tanh", Table 9's tanh networks: sigma_b = 0.2 and the sigma_w that tanh_edge_of_chaos gives for it (1.3041).
TANH_EOC_SIGMA_B = 0.2
PHASES = {"eoc": (EOC_SIGMA_W, 0.0), "ordered_relu": (1.2, 0.1),
          "eoc_tanh": (tanh_edge_of_chaos(TANH_EOC_SIGMA_B), TANH_EOC_SIGMA_B)}


def _fan_in_normal(sigma_w: float):
    def draw(weight, generator):
        fan_in, _ = _fans(weight)
        return torch.empty(weight.shape).normal_(0.0, sigma_w / math.sqrt(fan_in), generator=generator)
    return draw


WEIGHT_INITS = {
    "kaiming_normal": _kaiming_normal,
    "kaiming_normal_fan_out": _kaiming_normal_fan_out,
    "kaiming_normal_fan_avg": _kaiming_normal_fan_avg,
    "kaiming_uniform": _kaiming_uniform,
    "eoc": _eoc,
    "ordered_relu": _fan_in_normal(PHASES["ordered_relu"][0]),
    "eoc_tanh": _fan_in_normal(PHASES["eoc_tanh"][0]),
}

# Frankle et al. F.4: gamma = 1 (Tanaka et al.) versus gamma ~ U(0, 1) (older PyTorch default) matters
# for pruning at initialisation.
BN_INITS = ("ones", "uniform")


def check_scheme(init: str, bn_init: str) -> None:
    if init not in WEIGHT_INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {sorted(WEIGHT_INITS)}")
    if bn_init not in BN_INITS:
        raise ValueError(f"unknown bn_init {bn_init!r}; choose one of {list(BN_INITS)}")


@torch.no_grad()
def initialize(model: nn.Module, seed: int, init: str = "kaiming_normal", bn_init: str = "ones") -> nn.Module:
    """(Re)initialise `model` in place: conv/linear weights by `init`, their biases 0 (N(0, sigma_b^2) for the
    PHASES schemes with sigma_b > 0); BatchNorm gamma by
    `bn_init` ("ones" or "uniform" on (0, 1)), beta 0, running statistics reset. Deterministic per seed;
    records the scheme as `model.raysweep_init = (init, bn_init)` and returns the model."""
    check_scheme(init, bn_init)
    generator = torch.Generator().manual_seed(int(seed))
    draw = WEIGHT_INITS[init]
    sigma_b = PHASES.get(init, (None, 0.0))[1]
    for name, module in model.named_modules():
        if isinstance(module, (_ConvNd, nn.Linear)):
            module.weight.copy_(draw(module.weight, generator))
            if module.bias is not None and sigma_b:
                module.bias.copy_(torch.empty(module.bias.shape).normal_(0.0, sigma_b, generator=generator))
            elif module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, _BatchNorm):
            if module.affine:
                if bn_init == "ones":
                    module.weight.fill_(1.0)
                else:
                    module.weight.copy_(torch.empty(module.weight.shape).uniform_(0.0, 1.0, generator=generator))
                module.bias.zero_()
            if module.track_running_stats:
                module.reset_running_stats()
        elif any(True for _ in module.parameters(recurse=False)):
            raise ValueError(
                f"initialize does not know how to initialise module {name!r} of type {type(module).__name__}"
            )
    model.raysweep_init = (init, bn_init)
    return model


@torch.no_grad()
def eoc_rescale(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hayou et al.'s rescaling trick: put a pruned EOC-initialised network back on the Edge of Chaos.

    Pruning with mask delta shrinks the variance of every pre-activation, y_i = sum_k W_ik delta_ik x_k,
    so a deep pruned net leaves the EOC and its signal vanishes. The trick multiplies each output unit's
    kept weights by

        rho_i = sigma_w / sqrt( sum_k (W_ik * delta_ik)^2 ),

    sigma_w being that of the model's initialisation scheme (PHASES; sqrt(2), the ReLU EOC, for the He schemes,
    which share its variance). This is the per-unit empirical estimate of Hayou et al.'s
    rho = 1 / sqrt(E[N_{l-1} W^2 delta]) with the weights measured in units of sigma_w: the rescaled layer has
    exactly the dense layer's expected variance map, so a dense layer is left (in expectation) as it was.
    Read with W ~ N(0, sigma_w^2 / N_{l-1}) instead, the formula would give every unit a squared norm of 1, i.e.
    sigma_w = 1: for ReLU a factor 1/2 of variance per layer, 2^-100 after Table 4's 100 layers, where the paper
    reports "EOC + ReScaling ... 99.15" at L = 100; the tables leave no room for that reading.
    k runs over the unit's whole fan-in (input channels x kernel positions for a conv). Units pruned entirely
    keep rho = 1 (they stay 0). A BatchNorm after a layer divides this per-channel scale out again (in training
    mode, up to its eps), so in a BatchNorm network only the unnormalised layers (the linear head) change; the trick
    changes what every layer computes only without normalisation (Hayou et al.'s V-CNN and VGGs: models
    vanilla_cnn_*, cifar_vgg_*_nobn).

    Weights named in `masks` are replaced in place by rho * W * delta; returns {name: rho}.
    """
    sigma_w = PHASES.get(getattr(model, "raysweep_init", ("eoc",))[0], PHASES["eoc"])[0]
    parameters = dict(model.named_parameters())
    factors: dict[str, torch.Tensor] = {}
    for name, mask in masks.items():
        if name not in parameters:
            raise KeyError(f"eoc_rescale: mask {name!r} names no parameter of the model")
        weight = parameters[name]
        if weight.dim() < 2:
            raise ValueError(f"eoc_rescale: {name!r} is not a conv/linear weight (shape {tuple(weight.shape)})")
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(f"eoc_rescale: mask {name!r} has shape {tuple(mask.shape)}, weight {tuple(weight.shape)}")
        kept = weight * mask.to(device=weight.device, dtype=weight.dtype)
        squared_norm = kept.pow(2).flatten(1).sum(1)
        rho = torch.where(squared_norm > 0, sigma_w / squared_norm.clamp_min(1e-30).sqrt(), 1.0)
        weight.copy_(kept * rho.view(-1, *([1] * (weight.dim() - 1))))
        factors[name] = rho
    return factors
