"""Vysogorets & Kempe (2023), Figure 4: test accuracy of subnetworks trained from scratch after pruning by each
method, against direct (dashed) and effective (solid) compression; "min/average/max" over the seeds ("All
non-ImageNet runs were repeated 3 times", Appendix A), the dense network in grey. Continuous sparsification is left
out, for the reasons vysogorets_fig3's docstring gives.

    python experiments/vysogorets_fig4.py                  # embedded: LeNet-300-100 on digits
    python experiments/vysogorets_fig4.py --preset paper   # the seven models of Figure 3; Appendix A
"""

from __future__ import annotations

import pandas as pd

import common
import vysogorets_fig3 as fig3

SCRIPT = "vysogorets_fig4"


def grids(model, shape, classes, sparsities):
    return fig3.METHODS


def both_axes(frame: pd.DataFrame) -> pd.DataFrame:
    """Each pruned row twice: against its direct and its effective compression (column 'compression')."""
    dense = frame[frame["method"] == "dense"].assign(compression=1.0)
    pruned = frame[frame["method"] != "dense"]
    direct = pruned.assign(compression=pruned["compression_direct"], line=pruned["line"] + " (direct)")
    effective = pruned.assign(compression=pruned["compression_effective"], line=pruned["line"] + " (effective)")
    return pd.concat([dense, direct, effective], ignore_index=True)


def main(argv=None) -> pd.DataFrame:
    panels, out = fig3.run(SCRIPT, __doc__, argv, grids, transform=both_axes)
    pruned = {line for frame in panels.values() for line in frame["line"] if line != "dense"}
    styles = common.paired_styles(pruned, lambda line: line.rsplit(" (", 1)[0], lambda line: line.endswith("(direct)"))
    return fig3.accuracy_figure(SCRIPT, panels, out, "compression", "compression (dashed: direct, solid: effective)",
                                styles)


if __name__ == "__main__":
    main()
