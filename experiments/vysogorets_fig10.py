"""Vysogorets & Kempe (2023), Figure 10: the effective compression that regular pruning (dash-dot: the target counts
removed weights) and effective pruning (solid: section 5) reach, against the target compression, on ResNet-18.

Ranking-based (left): "Algorithms like GraSP, SynFlow, and LAMP rank parameters by some notion of importance to guide
pruning. When such a ranking R is available, we employ binary search for the appropriate cut-off threshold" (section
5). Both lines run each method the same way (pruning.effective_prune bisects the direct sparsity and prunes every
candidate as the direct line prunes): GraSP once at initialisation, SynFlow over its 100 rounds, LAMP on the trained
dense network (global LAMP scores, the masks of LAMP's quotas). Random (right): Algorithm 1 under the IGQ and Uniform
quotas. Effective pruning tracks the diagonal until the subnetwork is about to disconnect. Masks only: the structure
studies (vysogorets_fig3.structure_studies), nothing retrained.

    python experiments/vysogorets_fig10.py                  # embedded: LeNet-300-100 on digits
    python experiments/vysogorets_fig10.py --preset paper   # ResNet-18 on TinyImageNet; Appendix A
"""

from __future__ import annotations

import pandas as pd

import common
import vysogorets_fig3 as fig3
from raysweep import sweep

SCRIPT = "vysogorets_fig10"
TARGETS = ["direct", "effective"]
RANKING = [sweep.Grid(methods=["grasp", "synflow"], targets=TARGETS),
           sweep.Grid(methods=["lamp"], prune_at=["end"], targets=TARGETS)]
RANDOM = sweep.Grid(methods=["random"], quotas=["igq", "uniform"], targets=TARGETS)


def grids(model, shape, classes, sparsities) -> list[sweep.Grid]:
    return [*RANKING, RANDOM]


def with_targets(frame: pd.DataFrame) -> pd.DataFrame:
    kind = {"direct": "regular", "effective": "effective"}
    return frame.assign(target_compression=1 / (1 - frame["sparsity"]),
                        line=[f"{line}: {kind[t]} pruning" for line, t in zip(frame["line"], frame["target"])])


def main(argv=None) -> pd.DataFrame:
    panels, out = fig3.run(SCRIPT, __doc__, argv, grids, transform=with_targets, structure=True,
                           paper=("tiny_resnet_18",))
    split = {}
    for title, frame in panels.items():
        split[f"{title}: ranking-based"] = frame[frame["method"] != "random"]
        split[f"{title}: random"] = frame[frame["method"] == "random"]
    styles = common.paired_styles({line for frame in split.values() for line in frame["line"]},
                                  lambda line: line.split(": ")[0], lambda line: "regular" in line, "-.")
    where = out.figure(lambda path: common.plot_panels(
        split, path, "target_compression", "compression_effective", xlabel="target effective compression",
        ylabel="effective compression reached", logx=True, logy=True, styles=styles, diagonal=True, ncols=2),
        f"{SCRIPT}.png")
    for title, frame in split.items():
        print(f"\n{title}: effective compression reached\n"
              + common.table(frame, "compression_effective").to_string())
    print(f"\nwrote {out.storage.path(SCRIPT, 'results.parquet')} and {where}")
    return pd.concat(split.values(), ignore_index=True)


if __name__ == "__main__":
    main()
