"""Metrics of trained (pruned) networks beyond accuracy: calibration, OoD detection, adversarial
robustness, FLOPs and gradient flow, as used by Liu et al. (2022)."""
from .calibration import ece, nll
from .flops import macs, with_macs
from .gradient import active_grad_norm
from .inference import eval_mode, predict
from .masks import UnknownParameter
from .ood import auroc, ood_auroc
from .registry import MetricConfig, UnknownMetric, evaluate_all, names, register
from .robustness import fgsm_accuracy, fgsm_perturb

__all__ = [
    "MetricConfig",
    "UnknownMetric",
    "UnknownParameter",
    "active_grad_norm",
    "auroc",
    "ece",
    "eval_mode",
    "evaluate_all",
    "fgsm_accuracy",
    "fgsm_perturb",
    "macs",
    "names",
    "nll",
    "ood_auroc",
    "predict",
    "register",
    "with_macs",
]
