"""Liu et al. (2022), Figure 6: "Gradient norm of randomly pruned networks during training": the norm of the loss
gradient over the active weights ("the effective gradient flow (Tessera et al., 2021) which only calculates the
gradient norm of active weights"; metric 'active_grad_norm', on a fixed training batch) against the training
iteration, for SNIP and ERK ratios and the dense network. Top: ResNet-20, 56 and 110 at 50% sparsity on CIFAR-10;
bottom: Wide ResNet-50 at 85%, 70% and 60% sparsity on ImageNet. Each line's legend gives its final test accuracy,
read from the full runs of liu_fig1_2 and liu_fig14 (same trials).

The norm at iteration t is measured after a run of exactly t iterations ('training_steps': 't it', one study per t):
as a trial is a function of its settings only (data order and augmentation per seed and epoch, the same seed for
weights and masks, no learning-rate drop before 20,000 iterations on CIFAR-10 or 40,000 on ImageNet), that run is the
first t iterations of the full run, and the engine needs no per-iteration hook. Iterations are sampled more densely
early, where the paper's curves drop, from iteration 1 (the engine trains at least one step; the paper starts at 0).

    python experiments/liu_fig6.py                  # embedded: ResNet-8-4 (digits 0-4) at 50%
    python experiments/liu_fig6.py --preset paper   # as the paper; Table 1's schedules
"""

from __future__ import annotations

import pandas as pd

import common
import liu_fig1_2 as liu
import liu_fig14 as fig14
from raysweep import sweep

SCRIPT = "liu_fig6"
RATIOS = ["erk", "ratio:snip"]
NAMES = {"random [erk]": "ERK", "random [ratio:snip]": "SNIP"}
CIFAR = {"paper": ["cifar_resnet_20", "cifar_resnet_56", "cifar_resnet_110"], "embedded": ["cifar_resnet_8_4"],
         "smoke": ["cifar_resnet_8_4"]}
# the first point is iteration 1: the engine trains at least one step (the paper's curves start at 0)
ITERATIONS = {"paper": [1, 250, 500, 1000, 2000, 4000, 7000, 10000, 15000, 20000],
              "embedded": [1, 10, 20, 50, 100, 200], "smoke": [2]}   # smoke: one Tune run
IMAGENET_ITERATIONS = [1, 1000, 2000, 5000, 10000, 20000, 40000]
IMAGENET_SPARSITIES = [0.85, 0.7, 0.6]


def prefix(spec: sweep.StudySpec, t: int) -> sweep.StudySpec:
    """`spec`'s first seed's trials stopped after t iterations, with the active gradient norm measured there."""
    return spec.replace(name=f"{spec.name}-first-{t}it", hparams={**(spec.hparams or {}), "training_steps": f"{t}it"},
                        metrics=["active_grad_norm"], ood=[], seeds=spec.seeds[:1])


def groups(preset: str, storage: str, data_root: str | None) -> dict[str, tuple[list, list, float]]:
    """Panel title -> (the full runs' studies, the studies of their first t iterations, the panel's sparsity)."""
    out = {}
    for model in CIFAR[preset]:
        full = liu.study(preset, model, storage, data_root, quotas=RATIOS, sparsities=[0.5])
        out[f"{model} ({full.data}), sparsity 50%"] = ([full], [prefix(full, t) for t in ITERATIONS[preset]], 0.5)
    if preset == "paper":
        full = fig14.wide_studies(storage, data_root, [fig14.ratios(RATIOS, IMAGENET_SPARSITIES)])
        for s in IMAGENET_SPARSITIES:
            out[f"imagenet_wide_resnet_50 (imagenet), sparsity {s:.0%}"] = (
                list(full), [prefix(spec, t) for t in IMAGENET_ITERATIONS for spec in full], s)
    return out


def lines(frame: pd.DataFrame, sparsity: float) -> pd.DataFrame:
    """The rows of the panel's sparsity and the dense network's, named SNIP, ERK and Dense."""
    frame = common.lines(frame, NAMES)
    frame = frame[frame["sparsity"].isin([0.0, sparsity])]
    return frame.assign(line=["Dense" if s == 0 else line for line, s in zip(frame["line"], frame["sparsity"])])


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(__doc__, argv)
    done: dict[str, pd.DataFrame] = {}

    def rows(spec, title):
        if spec.name not in done:   # the ImageNet studies serve three panels
            done[spec.name] = common.own_rows(common.run(spec, args, title), spec)
        return done[spec.name]

    panels = {}
    for title, (full, prefixes, sparsity) in groups(args.preset, args.storage, args.data_root).items():
        final = lines(pd.concat([rows(s, title) for s in full], ignore_index=True), sparsity)
        accuracy = final.groupby("line")["accuracy"].mean()
        frame = lines(pd.concat([rows(s, title) for s in prefixes], ignore_index=True), sparsity)
        frame = frame.assign(iteration=frame["hp_training_steps"].str.removesuffix("it").astype(int),
                             line=[f"{line}, final accuracy {100 * accuracy[line]:.2f}%" for line in frame["line"]])
        panels[title] = frame.assign(panel=title)
    out = common.Outputs(args.storage, SCRIPT)
    out.parquet(pd.concat(panels.values(), ignore_index=True))
    where = out.figure(lambda path: common.plot_panels(
        panels, path, "iteration", "active_grad_norm", xlabel="training iterations", ylabel="gradient norm",
        reference="none", by="iteration"), f"{SCRIPT}.png")
    for title, frame in panels.items():
        print(f"\n{title}: gradient norm of the active weights\n"
              + common.table(frame, "active_grad_norm", columns="iteration").to_string())
    print(f"\nwrote {out.storage.path(SCRIPT, 'results.parquet')} and {where}")
    return pd.concat(panels.values(), ignore_index=True)


if __name__ == "__main__":
    main()
