"""Frankle et al. (2021), Figure 7: pruning at step t of training instead of at initialisation. Each method
(random, magnitude, SNIP, GraSP, SynFlow) prunes the dense network's weights at step t to the highest matching
sparsity and the network is trained again; LTR takes the mask of magnitude pruning after training and rewinds the
weights to step t. Vertical lines mark the learning-rate drops.

Every step's weights come from the one dense run per seed, trained once and reused through the engine's cache:
where the highest matching sparsity must be found, the first study (magnitude after training at every sparsity)
already includes LTR at every step t at the lowest sparsity, so the dense run saves every step's weights before the
second study needs them (studies.csv records the dense trainings: one per seed on fresh storage). The paper preset
prunes at the sparsities the paper states (frankle_matching.STATED), in one study per network, at the steps of
paper_steps: the whole of training, densest where the paper reads its crossings off the figure.

    python experiments/frankle_fig7.py                  # embedded: local Ray, scikit-learn digits, LeNet-300-100
    python experiments/frankle_fig7.py --preset paper   # the four networks of Appendix A
"""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import common  # noqa: E402
import frankle_matching  # noqa: E402
from raysweep import plots, sweep, training  # noqa: E402
from raysweep.sweep.spec import parse_when  # noqa: E402

SCRIPT = "frankle_fig7"
METHODS = ["random", "magnitude", "snip", "grasp", "synflow", "ltr"]
STEPS = {"embedded": ["init", "5it", "1ep", "2ep", "5ep", "10ep", "end"], "smoke": ["init", "5it"]}
# Appendix A.3's "Iters per Epoch" of each training preset, to place the paper's steps within its training.
ITERS_PER_EPOCH = {"frankle_cifar_resnet20": 391, "frankle_cifar_vgg16": 391, "frankle_tinyimagenet_resnet18": 391,
                   "frankle_imagenet_resnet50": 1251}


def paper_steps(training_preset: str) -> list[str]:
    """Figure 7 plots the whole of training ("pruning at all points during training", with the learning-rate drops
    marked) and its text reads crossings off it: "magnitude pruning does not match the accuracy of LTR at
    iterations 1K, 2K, and 1K until iterations 25K, 26K, and 36K". So: init; 100, 500, 1K, 2K, 5K, 10K and 15K
    iterations, where LTR saturates; every 2K from 20K to 40K, where the crossings are; every 10K from 50K; and
    the end of training."""
    hp = training.preset(training_preset)
    total = training.schedule.parse_steps(hp.training_steps, ITERS_PER_EPOCH[training_preset])
    steps = [100, 500, 1000, 2000, 5000, 10000, 15000, *range(20000, 40001, 2000), *range(50000, total, 10000)]
    return ["init", *(f"{t}it" for t in steps if t < total), "end"]


def steps(preset: str, spec: sweep.StudySpec) -> list[str]:
    return paper_steps(spec.training) if preset == "paper" else STEPS[preset]


def studies(preset: str, storage: str, data_root: str | None) -> dict[str, sweep.StudySpec]:
    """Each network's first study: what finds the highest matching sparsity, plus LTR at every step (so that its
    dense runs save every step's weights). The paper preset states its sparsities: nothing needs finding."""
    panels = common.frankle_panels(preset, storage, data_root, "frankle-fig7")
    if preset == "embedded":   # one network: the grid is methods x steps x seeds
        panels = {title: spec for title, spec in panels.items() if spec.model == "lenet_300_100"}
    return {title: spec.replace(grids=[common.AFTER_TRAINING, sweep.Grid(
                methods=["ltr"], prune_at=steps(preset, spec), sparsities=[min(spec.sparsities)])])
            for title, spec in panels.items()}


def at_step(spec: sweep.StudySpec, preset: str, sparsity: float) -> sweep.StudySpec:
    every_step = sweep.Grid(methods=METHODS, prune_at=steps(preset, spec), sparsities=[sparsity])
    if frankle_matching.stated(preset, spec) is not None:
        return spec.replace(grids=[every_step])
    return spec.replace(grids=spec.grids + [every_step])


def iterations(when: str, row) -> int:
    """The training step of a prune_at value, from the row's own schedule and evaluation history."""
    per_epoch = round(row["history"][0]["step"] / row["history"][0]["epoch"])
    if when == "end":
        return training.schedule.parse_steps(row["hp_training_steps"], per_epoch)
    return 0 if when == "init" else training.schedule.parse_steps(when, per_epoch)


def draw(panels: dict[str, tuple[pd.DataFrame, float, list[str]]], path) -> None:
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (title, (frame, sparsity, steps)) in zip(axes[0], panels.items()):
        done = frame[frame["status"].isin(["completed", "diverged"])]
        rows = done[done["method"].isin(METHODS) & (done["sparsity"] == sparsity)
                    & done["prune_at"].isin([parse_when(w) for w in steps])].copy()
        rows["t"] = [iterations(w, r) for w, (_, r) in zip(rows["prune_at"], rows.iterrows())]
        for method, group in rows.groupby("method", sort=True):
            stats = group.groupby("t")["accuracy"].agg(["mean", "std"]).fillna(0).sort_index()
            name = "LTR (rewind to t)" if method == "ltr" else method
            colour = "tab:blue" if method == "ltr" else plots.COLOURS.get(method)
            ax.plot(stats.index, 100 * stats["mean"], marker="o", ms=3, color=colour, label=name)
            ax.fill_between(stats.index, 100 * (stats["mean"] - stats["std"]), 100 * (stats["mean"] + stats["std"]),
                            color=colour, alpha=0.2)
        dense = done.loc[done["method"] == "dense", "accuracy"]
        ax.axhline(100 * dense.mean(), color=plots.COLOURS["dense"], ls="--", label="dense")
        any_row = rows.iloc[0]
        for drop in any_row["hp_lr_drops"]:
            ax.axvline(iterations(drop, any_row), color="black", lw=0.6, ls=":")
        positive = rows.loc[rows["t"] > 0, "t"]
        ax.set_xscale("symlog", linthresh=max(1, positive.min() if len(positive) else 1))   # linear down to t = 0
        ax.set_xlim(left=0, right=1.2 * max(rows["t"].max(), 1))
        ax.set_xlabel("training step t at which the network is pruned")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{title} at {100 * sparsity:.1f}% sparsity")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(__doc__, argv)
    panels, runs = {}, {}
    for title, spec in studies(args.preset, args.storage, args.data_root).items():
        trainings = []   # the dense runs each study trained: one per seed in all on fresh storage
        sparsity = frankle_matching.stated(args.preset, spec)
        if sparsity is None:
            sparsity = frankle_matching.highest_matching(spec, args, title, trainings)
        second = common.run(at_step(spec, args.preset, sparsity), args, title)
        runs[title] = dataclasses.replace(second, dense_trainings=sum(trainings) + second.dense_trainings)
        panels[title] = (second.frame, sparsity, steps(args.preset, spec))
    out = common.Outputs(args.storage, SCRIPT)
    combined = pd.concat([frame for frame, *_ in panels.values()], ignore_index=True)
    written = [out.parquet(combined), out.figure(lambda p: draw(panels, p), f"{SCRIPT}.png"),
               frankle_matching.record(out, runs)]
    print("\nwrote " + ", ".join(written))
    return combined


if __name__ == "__main__":
    main()
