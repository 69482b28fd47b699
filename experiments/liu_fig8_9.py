"""Liu et al. (2022), Appendix C, Figures 8 and 9: Figures 1 and 2 with the GraSP ratio ('ratio:grasp') added ("we
report the results of GraSP ratio on CIFAR-10 separately in this Appendix"): test accuracy of randomly pruned
networks against sparsity, from shallow to deep (Figure 8) and from narrow to wide (Figure 9); mean and min-max over
seeds, the dense network dashed. The studies are Figures 1-2's: only the GraSP-ratio trials are new.

    python experiments/liu_fig8_9.py                  # embedded: the networks of liu_fig1_2's embedded preset
    python experiments/liu_fig8_9.py --preset paper   # ResNet-20..110 and ResNet-20-8..56 on CIFAR-10, Table 1
"""

from __future__ import annotations

import pandas as pd

import liu_fig1_2 as liu

SCRIPT = "liu_fig8_9"
QUOTAS = [*liu.QUOTAS, "ratio:grasp"]


def main(argv=None) -> pd.DataFrame:
    return liu.accuracy_main(SCRIPT, __doc__, argv, lambda preset: list(dict.fromkeys(liu.DEPTH[preset]
                                                                                       + liu.WIDTH[preset])),
                             quotas=QUOTAS)


if __name__ == "__main__":
    main()
