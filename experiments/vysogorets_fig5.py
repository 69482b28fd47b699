"""Vysogorets & Kempe (2023), Figure 5: the original pruning methods (SNIP, GraSP, SynFlow; solid) against random
pruning with each method's layerwise sparsity quotas (quota 'ratio:<method>'; dash-dot), test accuracy against
effective compression; mean and min-max over seeds, the dense network in grey.

    python experiments/vysogorets_fig5.py                  # embedded: LeNet-300-100 on digits
    python experiments/vysogorets_fig5.py --preset paper   # LeNet-300-100 (MNIST), VGG-19 (CIFAR-100), ResNet-18
                                                           # (TinyImageNet), ResNet-50 (ImageNet); Appendix A
"""

from __future__ import annotations

import pandas as pd

import common
import vysogorets_fig3 as fig3
from raysweep import sweep

SCRIPT = "vysogorets_fig5"
ORIGINAL = ["snip", "grasp", "synflow"]
GRIDS = [sweep.Grid(methods=ORIGINAL),
         sweep.Grid(methods=["random"], quotas=[f"ratio:{m}" for m in ORIGINAL])]


def grids(model, shape, classes, sparsities) -> list[sweep.Grid]:
    return GRIDS


NAMES = {f"random [ratio:{m}]": f"random ({fig3.NAMES[m]} quotas)" for m in ORIGINAL}


def main(argv=None) -> pd.DataFrame:
    panels, out = fig3.run(SCRIPT, __doc__, argv, grids,
                           names=NAMES, paper=("lenet_300_100_bn", "cifar_vgg_19", "tiny_resnet_18",
                                               "imagenet_resnet_50"))
    original = {random: fig3.NAMES[method] for method in ORIGINAL for random in [NAMES[f"random [ratio:{method}]"]]}
    pruned = {line for frame in panels.values() for line in frame["line"] if line != "dense"}
    styles = common.paired_styles(pruned, lambda line: original.get(line, line), lambda line: line in original, "-.")
    return fig3.accuracy_figure(SCRIPT, panels, out, "compression_effective", "effective compression", styles)


if __name__ == "__main__":
    main()
