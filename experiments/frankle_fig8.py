"""Frankle et al. (2021), Figure 8: the baselines the pruning methods are compared with — random pruning and
magnitude pruning at initialisation, magnitude pruning after training, and lottery ticket rewinding (LTR: the mask
of magnitude pruning after training, weights rewound to the preset's rewinding step) — across sparsities.

    python experiments/frankle_fig8.py                  # embedded: local Ray, scikit-learn digits, LeNets
    python experiments/frankle_fig8.py --preset paper   # the four networks; LTR rewinds to iteration 1000, 2000,
                                                        # 1000 and 6000 (Appendix A / Figure 7)
"""

from __future__ import annotations

import pandas as pd

import common
from raysweep import sweep

SCRIPT = "frankle_fig8"


def grids(spec: sweep.StudySpec) -> list[sweep.Grid]:
    return [sweep.Grid(methods=["random", "magnitude"]), common.AFTER_TRAINING, common.rewinding(spec)]


def studies(preset: str, storage: str, data_root: str | None) -> dict[str, sweep.StudySpec]:
    panels = common.frankle_panels(preset, storage, data_root, "frankle-fig8")
    return {title: spec.replace(grids=grids(spec)) for title, spec in panels.items()}


def main(argv=None) -> pd.DataFrame:
    return common.accuracy_figure(SCRIPT, __doc__, argv, studies)


if __name__ == "__main__":
    main()
