"""Frankle et al. (2021), Figure 9 (Appendix C): three variants of GraSP — "pruning weights with the highest
scores (the original version of GraSP from Wang et al.), pruning weights with the lowest scores (the inversion
experiment from Section 5), and pruning weights with the lowest magnitude GraSP scores" — across sparsities.

The first two are Figure 5's GraSP runs (method grasp, ablations none and invert), so this script's studies are
Figure 5's: on one storage, whichever script runs second trains only what the first did not.

    python experiments/frankle_fig9.py                  # embedded: local Ray, scikit-learn digits, LeNets
    python experiments/frankle_fig9.py --preset paper   # the four networks of Appendix A and Appendix I's
                                                        # modified ResNet-18 (Figure I.5); 19 sparsities
"""

from __future__ import annotations

import pandas as pd

import common
from raysweep import sweep

SCRIPT = "frankle_fig9"
GRIDS = [sweep.Grid(methods=["grasp"], ablations=["none", "invert"]), sweep.Grid(methods=["grasp_magnitude"])]


def studies(preset: str, storage: str, data_root: str | None) -> dict[str, sweep.StudySpec]:
    return common.frankle_panels(preset, storage, data_root, "frankle-fig5", appendix_i=True, grids=GRIDS)


def main(argv=None) -> pd.DataFrame:
    return common.accuracy_figure(SCRIPT, __doc__, argv, studies)


if __name__ == "__main__":
    main()
