"""Liu et al. (2022), Appendix B, Figure 7: "Test accuracy of training randomly pruned ResNet-20, ResNet-32, and
ResNet-44 from scratch with ERK ratios when model width varies on CIFAR-10", against the width multiplier (0.5 to 2:
the first stage has 16 x multiplier filters), one line per sparsity (30%, 50%, 70%, 90%) and one for the dense
networks; mean and min-max over seeds. The studies are liu_fig1_2's (ResNet-20-8 is Figure 2's, ...).

    python experiments/liu_fig7.py                  # embedded: depths 8 and 14, base width 4 (multipliers 0.5-2) on
                                                    # the digits 0-4
    python experiments/liu_fig7.py --preset paper   # ResNet-20, 32, 44 at widths 8, 16, 24, 32 on CIFAR-10, Table 1
"""

from __future__ import annotations

import pandas as pd

import common
import liu_fig1_2 as liu

SCRIPT = "liu_fig7"
# smoke: Figure 1's network only (no study of its own)
MULTIPLIERS = {"paper": (0.5, 1.0, 1.5, 2.0), "embedded": (0.5, 1.0, 1.5, 2.0), "smoke": (1.0,)}
DEPTHS = {"paper": (20, 32, 44), "embedded": (8, 14), "smoke": (8,)}
BASE_WIDTH = {"paper": 16, "embedded": 4, "smoke": 4}
SPARSITIES = {"paper": [0.3, 0.5, 0.7, 0.9], "embedded": [0.5, 0.9], "smoke": [0.9]}


def networks(preset: str) -> dict[str, tuple[int, float]]:
    """Model name -> (depth, width multiplier)."""
    return {liu.resnet(d, round(BASE_WIDTH[preset] * m)): (d, m) for d in DEPTHS[preset] for m in MULTIPLIERS[preset]}


def by_width(preset: str, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Panel 'ResNet-<depth>' -> rows with their width multiplier and a line per sparsity ('Dense' at 0)."""
    nets = networks(preset)
    frame = frame.assign(depth=[nets[m][0] for m in frame["model"]],
                         width_multiplier=[nets[m][1] for m in frame["model"]],
                         line=["Dense" if s == 0 else f"Sparsity={s:.0%}" for s in frame["sparsity"]])
    return {f"ResNet-{d}": part.assign(panel=f"ResNet-{d}") for d, part in frame.groupby("depth")}


def main(argv=None) -> pd.DataFrame:
    preset = common.parse_args(__doc__, argv).preset
    panels, out = liu.run(SCRIPT, __doc__, argv, lambda p: list(networks(p)), quotas=["erk"],
                          sparsities=SPARSITIES[preset])
    width = by_width(preset, pd.concat(panels.values(), ignore_index=True))
    out.parquet(pd.concat(width.values(), ignore_index=True))
    where = out.figure(lambda path: common.plot_panels(
        width, path, "width_multiplier", "accuracy", xlabel="width multiplier", ylabel="test accuracy (%)",
        scale=100, reference="none", by="width_multiplier"), f"{SCRIPT}.png")
    for title, frame in width.items():
        print(f"\n{title}: test accuracy\n" + common.table(frame, "accuracy", columns="width_multiplier").to_string())
    print(f"\nwrote {out.storage.path(SCRIPT, 'results.parquet')} and {where}")
    return pd.concat(width.values(), ignore_index=True)


if __name__ == "__main__":
    main()
