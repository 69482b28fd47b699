"""Frankle et al. (2021), Figure 2: the best variants of pruning at initialization — random, magnitude, SNIP,
GraSP pruning the lowest-magnitude GraSP scores (grasp_magnitude) and SynFlow shuffled within each layer — against
the benchmark and the dense network, across sparsities; mean and std over seeds.

The benchmark is the one Appendix H.1 tabulates for this figure, "LTR After Training": lottery ticket rewinding,
the mask of magnitude pruning after training with the weights of the rewinding step (Appendix B: "We use
t = 1000, 2000, 1000, and 6000 for ResNet-20, VGG-16, ResNet-18, and ResNet-50"), labelled "LTR (rewind to t)".
Magnitude pruning after training itself is Figure 4's benchmark (fig4.py).

    python experiments/frankle_fig2.py                  # embedded: local Ray, scikit-learn digits, LeNets
    python experiments/frankle_fig2.py --preset paper   # ResNet-20/VGG-16 (CIFAR-10), ResNet-18 (TinyImageNet),
                                                        # ResNet-50 (ImageNet), Appendix I's modified ResNet-18;
                                                        # 19 sparsities; Appendix A
"""

from __future__ import annotations

import pandas as pd

import common
from raysweep import sweep

SCRIPT = "frankle_fig2"
AT_INIT = [sweep.Grid(methods=["random", "magnitude", "snip", "grasp_magnitude"]),
           sweep.Grid(methods=["synflow"], ablations=["shuffle"])]


def studies(preset: str, storage: str, data_root: str | None) -> dict[str, sweep.StudySpec]:
    panels = common.frankle_panels(preset, storage, data_root, "frankle-fig2", appendix_i=True)
    return {title: spec.replace(grids=AT_INIT + [common.rewinding(spec)]) for title, spec in panels.items()}


def main(argv=None) -> pd.DataFrame:
    return common.accuracy_figure(SCRIPT, __doc__, argv, studies)


if __name__ == "__main__":
    main()
