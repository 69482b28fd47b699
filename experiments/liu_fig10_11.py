"""Liu et al. (2022), Appendix D, Figures 10 and 11: Figures 1 and 2 on CIFAR-100: test accuracy of randomly pruned
ResNets under the ERK, Uniform, Uniform+ and SNIP ratios against sparsity, from shallow to deep (ResNet-20..110,
Figure 10) and from narrow to wide (ResNet-20-8/16/24, Figure 11); mean and min-max over seeds, the dense network
dashed. Each trial also records ECE, NLL, FGSM accuracy and FLOPs (no OoD set: the paper has none for CIFAR-100).

    python experiments/liu_fig10_11.py                  # embedded: ResNets of depth 8/14 and width 2/4 on all ten
                                                        # digits (CIFAR-100's stand-in: more classes than the 0-4)
    python experiments/liu_fig10_11.py --preset paper   # ResNet-20..110 and ResNet-20-8/16/24 on CIFAR-100, Table 1
"""

from __future__ import annotations

import pandas as pd

import liu_fig1_2 as liu

SCRIPT = "liu_fig10_11"
WIDTH = {"paper": [liu.resnet(20, w) for w in (8, 16, 24)], "embedded": liu.WIDTH["embedded"], "smoke": []}


def main(argv=None) -> pd.DataFrame:
    return liu.accuracy_main(SCRIPT, __doc__, argv,
                             lambda preset: list(dict.fromkeys(liu.DEPTH[preset] + WIDTH[preset])), data="cifar100")


if __name__ == "__main__":
    main()
