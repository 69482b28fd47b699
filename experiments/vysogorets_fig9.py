"""Vysogorets & Kempe (2023), Figure 9: magnitude pruning of the trained dense network, the kept weights rewound to
their initial values and retrained ('ltr' at 'init'), under layerwise quotas Uniform, Uniform+, ERK, IGQ, one
global ranking (global magnitude) and LAMP; test accuracy against effective compression, mean and min-max over
seeds. Quotas that do not exist at a sparsity are left out there (ERK is the paper's, without redistribution: see
vysogorets_fig8); "Uniform+ is not shown for LeNet-300-100 since it is designed for convolutional networks".

    python experiments/vysogorets_fig9.py                  # embedded: LeNet-300-100 on digits
    python experiments/vysogorets_fig9.py --preset paper   # LeNet-300-100 (MNIST), LeNet-5 (CIFAR-10), VGG-19
                                                           # (CIFAR-100), ResNet-18 (TinyImageNet), ResNet-50
"""

from __future__ import annotations

import pandas as pd

import common
import vysogorets_fig3 as fig3

SCRIPT = "vysogorets_fig9"
QUOTAS = ["uniform", "uniform_plus", "erk_plain", "igq", "global", "ratio:lamp"]
NAMES = {"LTR (rewind to init) [uniform]": "Uniform", "LTR (rewind to init) [uniform_plus]": "Uniform+",
         "LTR (rewind to init) [erk_plain]": "ERK", "LTR (rewind to init) [igq]": "IGQ"}


def grids(model, shape, classes, sparsities) -> list:
    quotas = [q for q in QUOTAS if not (q == "uniform_plus" and model.startswith("lenet_300_100"))]
    return common.quota_grids(model, shape, ["ltr"], quotas, sparsities, num_classes=classes, prune_at=["init"])


def main(argv=None) -> pd.DataFrame:
    panels, out = fig3.run(SCRIPT, __doc__, argv, grids, names=NAMES,
                           paper=("lenet_300_100_bn", "lenet_5_bn", "cifar_vgg_19", "tiny_resnet_18",
                                  "imagenet_resnet_50"))
    return fig3.accuracy_figure(SCRIPT, panels, out, "compression_effective", "effective compression")


if __name__ == "__main__":
    main()
