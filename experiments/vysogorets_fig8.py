"""Vysogorets & Kempe (2023), Figure 8: random pruning under different layerwise sparsity quotas — Uniform,
Uniform+, ERK, IGQ and SynFlow's ('ratio:synflow') — test accuracy against effective compression, with SynFlow
itself for reference; mean and min-max over seeds. A quota that does not exist at a sparsity is left out there, as
in the paper: ERK is the paper's formula without redistribution (quota 'erk_plain'), which "yields invalid layerwise
sparsity quotas when removing less than 98% and 99% of parameters from ResNet-18 and VGG-19", and "Uniform+
produces invalid layerwise compressions" beyond what its dense first and 20%-dense last layer allow.

    python experiments/vysogorets_fig8.py                  # embedded: LeNet-300-100 on digits
    python experiments/vysogorets_fig8.py --preset paper   # LeNet-300-100 (MNIST), LeNet-5 (CIFAR-10), VGG-19
                                                           # (CIFAR-100), ResNet-18 (TinyImageNet), ResNet-50
"""

from __future__ import annotations

import pandas as pd

import common
import vysogorets_fig3 as fig3
from raysweep import sweep

SCRIPT = "vysogorets_fig8"
QUOTAS = ["uniform", "uniform_plus", "erk_plain", "igq", "ratio:synflow"]
NAMES = {"random [uniform]": "Uniform", "random [uniform_plus]": "Uniform+", "random [erk_plain]": "ERK",
         "random [igq]": "IGQ", "random [ratio:synflow]": "SynFlow quotas", "synflow": "SynFlow (original)"}


def grids(model, shape, classes, sparsities) -> list[sweep.Grid]:
    return [sweep.Grid(methods=["synflow"]),
            *common.quota_grids(model, shape, ["random"], QUOTAS, sparsities, num_classes=classes)]


def main(argv=None) -> pd.DataFrame:
    panels, out = fig3.run(SCRIPT, __doc__, argv, grids, names=NAMES,
                           paper=("lenet_300_100_bn", "lenet_5_bn", "cifar_vgg_19", "tiny_resnet_18",
                                  "imagenet_resnet_50"))
    styles = {"SynFlow (original)": {"color": "black"}}
    return fig3.accuracy_figure(SCRIPT, panels, out, "compression_effective", "effective compression", styles)


if __name__ == "__main__":
    main()
