"""Liu et al. (2022), Appendix F, Figure 14: Wide ResNet-50 on ImageNet.

Left: "Performance of ERK with various sparsity of the last fully-connected layer. We vary the sparsity of the last
fully-connected layer while keeping the overall sparsity fixed as 70%. Results of the original ERK are indicated
with dashed red lines." The last layer sits at 0.8, 0.5, 0.4, 0.1 or 0 sparsity and ERK (RigL's, as Liu et al.'s)
spreads the rest: quota erk_power(p=1, last_density=d, last_max_density=d), d = 1 - last-layer sparsity.
Right: "Performance comparison between randomly pruned Wide ResNet-50 and the corresponding dense equivalents with a
similar parameter count": ERK, SNIP and ERK+ ratios at sparsities 0.6, 0.7 and 0.85 (10 to 27.5 million parameters
kept, the figure's range; Figure 6 uses the same three), against the parameter count, with the dense ResNet-18, 34
and 50 of Figure 5 as single points.

    python experiments/liu_fig14.py                  # embedded: ResNet-8-4 on the digits 0-4, ResNet-8-2 dense
    python experiments/liu_fig14.py --preset paper   # Wide ResNet-50 on ImageNet; Table 1's sparse schedule
"""

from __future__ import annotations

import pandas as pd

import common
import liu_fig1_2 as liu
import liu_fig5 as fig5
from raysweep import sweep

SCRIPT = "liu_fig14"
LAST_LAYER = {"paper": [0.8, 0.5, 0.4, 0.1, 0.0], "embedded": [0.8, 0.5, 0.0], "smoke": [0.8]}
OVERALL = 0.7
RIGHT = {"paper": [0.6, 0.7, 0.85], "embedded": [0.5, 0.7, 0.9], "smoke": [0.9]}
WIDE = {"paper": "imagenet_wide_resnet_50", "embedded": "cifar_resnet_8_4", "smoke": "cifar_resnet_8_4"}
DENSE_EQUIVALENTS = {"paper": ["imagenet_resnet_18", "imagenet_resnet_34", "imagenet_resnet_50"],
                     "embedded": ["cifar_resnet_8_2"], "smoke": []}


def last_layer_quota(sparsity: float) -> str:
    density = round(1 - sparsity, 6)
    return f"erk_power(p=1, last_density={density:g}, last_max_density={density:g})"


def ratios(quotas, sparsities) -> sweep.Grid:
    return sweep.Grid(methods=["random"], quotas=list(quotas), sparsities=list(sparsities))


def grids(preset: str) -> list[sweep.Grid]:
    return [ratios(["erk", *map(last_layer_quota, LAST_LAYER[preset])], [OVERALL]),
            ratios(["erk", "ratio:snip", "erk_plus"], RIGHT[preset])]


def wide_studies(storage: str, data_root: str | None, blocks) -> tuple[sweep.StudySpec, sweep.StudySpec]:
    """Wide ResNet-50's ImageNet studies (Figure 5's): the pruned networks under `blocks`, and the dense one."""
    model = WIDE["paper"]
    return (fig5.imagenet_study(model, storage, data_root, blocks, sorted({s for g in blocks for s in g.sparsities})),
            fig5.imagenet_dense(model, storage, data_root))


def studies(preset: str, storage: str, data_root: str | None) -> list[sweep.StudySpec]:
    if preset == "paper":
        return [*wide_studies(storage, data_root, grids(preset)),
                *(fig5.imagenet_dense(m, storage, data_root) for m in DENSE_EQUIVALENTS[preset])]
    wide = liu.study(preset, WIDE[preset], storage, data_root, grids=grids(preset))
    return [wide, *(liu.study(preset, m, storage, data_root, grids=[]) for m in DENSE_EQUIVALENTS[preset])]


def name(row) -> str:
    if row["sparsity"] == 0:
        return f"Dense {row['model']}"
    if row["quota"].startswith("erk_power"):
        return "ERK, last layer fixed"
    return {"erk": "ERK", "ratio:snip": "SNIP ratio", "erk_plus": "ERK+"}[row["quota"]]


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(__doc__, argv)
    rows = [common.own_rows(common.run(spec, args, spec.name), spec)
            for spec in studies(args.preset, args.storage, args.data_root)]
    frame = fig5.with_parameters(common.lines(pd.concat(rows, ignore_index=True)))
    frame = frame.assign(line=[name(r) for _, r in frame.iterrows()],
                         last_layer=[s.get(list(s)[-1]) if isinstance(s, dict) else float("nan")
                                     for s in frame["layer_sparsities"]],
                         params_m=frame["params"] / 1e6)
    wide = frame["model"] == WIDE[args.preset]
    left = frame[wide & (frame["sparsity"] == OVERALL) & frame["line"].isin(["ERK", "ERK, last layer fixed"])]
    # the original ERK is the figure's dashed reference line
    left = left.assign(line=left["line"].replace({"ERK": "original ERK"}))
    right = frame[(~wide & (frame["sparsity"] == 0))
                  | (wide & frame["sparsity"].isin(RIGHT[args.preset]) & frame["line"].isin(["ERK", "SNIP ratio", "ERK+"]))]
    out = common.Outputs(args.storage, SCRIPT)
    out.parquet(frame)
    titles = (f"{WIDE[args.preset]}, {OVERALL:.0%} sparse: last layer's sparsity",
              f"{WIDE[args.preset]}: randomly pruned against dense equivalents")
    panels = {titles[0]: left.assign(x=left["last_layer"], panel=titles[0]),
              titles[1]: right.assign(x=right["params_m"], panel=titles[1])}
    where = out.figure(lambda path: common.plot_panels(
        panels, path, "x", "accuracy", xlabel="last layer's sparsity / number of parameters (10^6)",
        ylabel="test accuracy (%)", scale=100, reference="original ERK", by="x", ncols=2), f"{SCRIPT}.png")
    print("\n" + common.table(left, "accuracy", columns="last_layer").to_string())
    print("\n" + common.table(right, "accuracy", columns="params").to_string())
    print(f"\nwrote {out.storage.path(SCRIPT, 'results.parquet')} and {where}")
    return pd.concat(panels.values(), ignore_index=True)


if __name__ == "__main__":
    main()
