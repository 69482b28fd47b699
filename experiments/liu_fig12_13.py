"""Liu et al. (2022), Appendix E, Figures 12 and 13: test accuracy of randomly pruned VGGs (the BatchNorm VGG-11, 13
and 16: "the batch normalization version of VGG (Simonyan & Zisserman, 2014) with varying depths on CIFAR-10/100")
trained from scratch under the ERK and SNIP ratios, against sparsity, on CIFAR-10 (Figure 12) and CIFAR-100 (Figure
13); mean and min-max over seeds, the dense network dashed.

    python experiments/liu_fig12_13.py                  # embedded: VGG-11 on the digits 0-4 and on all ten digits
                                                        # (smoke: the digits 0-4 only)
    python experiments/liu_fig12_13.py --preset paper   # VGG-11, 13, 16 on CIFAR-10 and CIFAR-100, Table 1
"""

from __future__ import annotations

import pandas as pd

import common
import liu_fig1_2 as liu

SCRIPT = "liu_fig12_13"
QUOTAS = ["erk", "ratio:snip"]
VGGS = {"paper": ["cifar_vgg_11", "cifar_vgg_13", "cifar_vgg_16"], "embedded": ["cifar_vgg_11"],
        "smoke": ["cifar_vgg_11"]}
DATA = {"paper": ("cifar10", "cifar100"), "embedded": ("cifar10", "cifar100"), "smoke": ("cifar10",)}


def main(argv=None) -> pd.DataFrame:
    panels = {}
    for data in DATA[common.parse_args(__doc__, argv).preset]:
        part, out = liu.run(SCRIPT, __doc__, argv, lambda preset: VGGS[preset], data=data, quotas=QUOTAS)
        panels.update(part)
    out.parquet(pd.concat(panels.values(), ignore_index=True))   # both data sets' panels
    liu.figure(SCRIPT, panels, out, "accuracy", "test accuracy (%)", scale=100)
    return pd.concat(panels.values(), ignore_index=True)


if __name__ == "__main__":
    main()
