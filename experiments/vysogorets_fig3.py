"""Vysogorets & Kempe (2023), Figure 3: effective against direct compression of the subnetworks each pruning method
produces (random with uniform quotas, SNIP, SNIP-iterative, GraSP, SynFlow, magnitude after training, LAMP), per
model. As the caption says, "curves and bands represent min/average/max across 3 seeds where subnetworks disconnect
last among a total of 5 seeds". A point far above the diagonal is a subnetwork with many inactive weights.

    python experiments/vysogorets_fig3.py                  # embedded: LeNet-300-100 on digits
    python experiments/vysogorets_fig3.py --preset paper   # LeNet-300-100 (MNIST), LeNet-5 (CIFAR-10), VGG-16
                                                           # (CIFAR-10), VGG-19 (CIFAR-100), ResNet-18
                                                           # (TinyImageNet), ResNet-50 and MobileNetV2 (ImageNet)

Figure 3 measures subnetworks, not their training: its studies prune without retraining ("structure" studies, see
structure_studies). Methods at initialisation are measured when they prune (then train the one step the engine
requires); magnitude pruning and LAMP prune the trained dense network of the accuracy studies (shared, trained once
per seed) and train no further.

Continuous sparsification (CS, Savarese et al. 2020), which the paper also plots, is left out: it learns its mask
during training (sigmoid gates on every weight, an l1 penalty, a temperature annealed over several rounds with
weight rewinding), so it is no ranking at a target sparsity that pruning.prune could apply, and the sparsity it
reaches follows from its penalty and gate initialisation, of which the paper gives no values (Table 1 lists only the
training of the pruned networks). A CS line would need a training loop with learnable masks in the engine and values
we would have to invent; its points could not be compared with the paper's.

This module also holds the settings every Vysogorets script shares: the accuracy figures (4, 5, 8, 9) run their
grids in the study "vysogorets-<model>-<data>", so a trial two figures need (SynFlow at 100x, say) runs once, and
the structure figures (3, 7, 10) in "vysogorets-<model>-<data>-at-init" and "-after-training".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import common
from raysweep import sweep

SCRIPT = "vysogorets_fig3"

# The paper plots compression from 1x to beyond 10,000x; we sample it at quarter decades.
PAPER_SPARSITIES = common.compressions([10 ** (k / 4) for k in range(1, 17)])
EMBEDDED_SPARSITIES = common.compressions([10, 100, 1000])
# model -> (data, training preset, seeds, GPUs per worker, workers, input shape, classes): Appendix A, Table 1.
# "All non-ImageNet runs were repeated 3 times"; ImageNet once. "All architectures include batch normalization layers
# followed by ReLU activations" (Table 1): the LeNets are their BatchNorm variants. ResNet-18 is the TinyImageNet
# ResNet-18 (3x3 stride-1 stem, no max-pool; Tanaka et al., Frankle et al. App. I): the paper's statement that ERK is
# invalid below 98% on ResNet-18 holds for it (98.01%) and not for the ImageNet stem (96.45%); see
# tests/test_pruning_quotas.py.
PAPER = {
    "lenet_300_100_bn": ("mnist", "vysogorets_mnist_lenet300", 3, 0.25, 1, (1, 28, 28), 10),
    "lenet_5_bn": ("cifar10", "vysogorets_cifar_lenet5", 3, 0.25, 1, (3, 32, 32), 10),
    "cifar_vgg_16": ("cifar10", "vysogorets_cifar_vgg16", 3, 1, 1, (3, 32, 32), 10),
    "cifar_vgg_19": ("cifar100", "vysogorets_cifar100_vgg19", 3, 1, 1, (3, 32, 32), 100),
    "tiny_resnet_18": ("tinyimagenet", "vysogorets_tinyimagenet_resnet18", 3, 1, 2, (3, 64, 64), 200),
    "imagenet_resnet_50": ("imagenet", "vysogorets_imagenet_resnet50", 1, 1, 8, (3, 224, 224), 1000),
    "mobilenet_v2": ("imagenet", "vysogorets_imagenet_mobilenetv2", 1, 1, 8, (3, 224, 224), 1000),
}
# Table 1: "Models are initialized using Kaiming normal scheme (fan-avg)"; BatchNorm gammas start at 1.
INIT = "kaiming_normal_fan_avg"
EMBEDDED_MODEL = "lenet_300_100_bn"
DIGITS = (1, 8, 8)
# Figure 3: 3 of 5 seeds (the embedded preset too; smoke: one)
FIG3_SEEDS = {"paper": (5, 3), "embedded": (5, 3), "smoke": (1, 1)}

# LAMP is magnitude pruning within each layer under LAMP's layerwise quotas; the paper prunes the trained network
# and rewinds the kept weights to their initial values ('ltr' at 'init'). The structure figures need its mask only:
# magnitude pruning of the trained network under LAMP's quotas, the same call.
LAMP = sweep.Grid(methods=["ltr"], quotas=["ratio:lamp"], prune_at=["init"])
LAMP_MASK = sweep.Grid(methods=["magnitude"], quotas=["ratio:lamp"], prune_at=["end"])
NAMES = {"random [uniform]": "random (uniform)", "random [igq]": "random (IGQ)",
         "magnitude after training": "magnitude (after training)", "LTR (rewind to init) [ratio:lamp]": "LAMP",
         "magnitude after training [ratio:lamp]": "LAMP", "lamp at end": "LAMP",
         "LTR (rewind to init)": "global magnitude", "snip_iterative": "SNIP-iterative", "snip": "SNIP",
         "grasp": "GraSP", "synflow": "SynFlow"}
AT_INIT = [sweep.Grid(methods=["random"], quotas=["uniform"]),
           sweep.Grid(methods=["snip", "snip_iterative", "grasp", "synflow"])]
AFTER_TRAINING = sweep.Grid(methods=["magnitude"], prune_at=["end"])
METHODS = [*AT_INIT, AFTER_TRAINING, LAMP]          # Figure 4: trained
STRUCTURE = [*AT_INIT, AFTER_TRAINING, LAMP_MASK]   # Figure 3: measured


def grids(model, shape, classes, sparsities) -> list[sweep.Grid]:
    """This figure's blocks of the grid for one model (every Vysogorets script has such a function)."""
    return STRUCTURE


def settings(preset: str, paper=tuple(PAPER)) -> dict:
    """Panel title -> the fields of its model's accuracy study, and (model, input shape, classes) for grids()."""
    if preset == "paper":
        out = {}
        for model in paper:
            data, training, seeds, gpus, workers, shape, classes = PAPER[model]
            out[f"{model} ({data})"] = (dict(name=f"vysogorets-{model}-{data}", model=model, data=data,
                                             training=training, seeds=list(range(seeds)), gpus_per_worker=gpus,
                                             workers=workers, sparsities=PAPER_SPARSITIES), (model, shape, classes))
        return out
    if preset == "smoke":
        return {f"{EMBEDDED_MODEL} (digits)": (dict(
            name="vysogorets-smoke", model=EMBEDDED_MODEL, data="digits", training="digits", seeds=[0],
            hparams=dict(common.SMOKE_HPARAMS), sparsities=[EMBEDDED_SPARSITIES[1]]), (EMBEDDED_MODEL, DIGITS, 10))}
    # one model, so that every figure's embedded grid reads the trials the others ran
    return {f"{EMBEDDED_MODEL} (digits)": (dict(
        name=f"vysogorets-{EMBEDDED_MODEL}-digits", model=EMBEDDED_MODEL, data="digits", training="digits",
        seeds=[0, 1], sparsities=EMBEDDED_SPARSITIES), (EMBEDDED_MODEL, DIGITS, 10))}


def studies(preset: str, storage: str, data_root: str | None, grids,
            paper=tuple(PAPER)) -> dict[str, list[sweep.StudySpec]]:
    """Panel title -> [its accuracy study]. grids(model, input_shape, classes, sparsities) -> the Grid blocks."""
    return {title: [sweep.StudySpec(**fields, grids=grids(*net, fields["sparsities"]), storage=storage,
                                    data_root=data_root, dense=True, init=INIT)]
            for title, (fields, net) in settings(preset, paper).items()}


def structure_studies(preset: str, storage: str, data_root: str | None, grids, paper=tuple(PAPER),
                      seeds: int | None = None) -> dict[str, list[sweep.StudySpec]]:
    """Panel title -> the studies that prune without retraining, for figures of masks (3, 7, 10): blocks pruning at
    'init' train a single step ("-at-init": the engine trains at least one, and a trial's masks are measured when
    they are made, before it); blocks pruning at 'end' prune the accuracy study's trained dense networks (the same
    dense runs: same hyperparameters) and train no further ("-after-training", retrain 'remaining').
    seeds: how many seeds (default: the accuracy study's)."""
    out = {}
    for title, (fields, net) in settings(preset, paper).items():
        blocks = grids(*net, fields["sparsities"])
        when = {id(g): set(g.prune_at) for g in blocks}
        if any(w not in ({"init"}, {"end"}) for w in when.values()):
            raise ValueError("a structure study prunes either at 'init' or at 'end', one block at a time")
        fields = {**fields, "seeds": list(range(seeds)) if seeds else fields["seeds"], "storage": storage,
                  "data_root": data_root, "dense": False, "init": INIT}
        hparams = fields.pop("hparams", {})
        specs = []
        at_init = [g for g in blocks if when[id(g)] == {"init"}]
        if at_init:
            specs.append(sweep.StudySpec(**{**fields, "name": fields["name"] + "-at-init"}, grids=at_init,
                                         hparams={**hparams, "training_steps": "1it", "lr_drops": []}))
        at_end = [g for g in blocks if when[id(g)] == {"end"}]
        if at_end:
            specs.append(sweep.StudySpec(**{**fields, "name": fields["name"] + "-after-training"}, grids=at_end,
                                         hparams=hparams, retrain="remaining"))
        out[title] = specs
    return out


def accuracy_figure(script: str, panels: dict, out, x: str, xlabel: str,
                    styles: dict | None = None) -> pd.DataFrame:
    """Test accuracy against a compression column, one panel per model, and its tables printed: how Figures 4, 5, 8
    and 9 end."""
    where = out.figure(lambda path: common.plot_panels(
        panels, path, x, "accuracy", xlabel=xlabel, ylabel="test accuracy (%)", logx=True, scale=100,
        styles=styles), f"{script}.png")
    for title, frame in panels.items():
        print(f"\n{title}: test accuracy\n" + common.table(frame, "accuracy").to_string())
    print(f"\nwrote {out.storage.path(script, 'results.parquet')} and {where}")
    return pd.concat(panels.values(), ignore_index=True)


def run(script: str, doc: str, argv, grids, names=None, transform=None, structure: bool = False,
        **which) -> tuple[dict[str, pd.DataFrame], common.Outputs]:
    """Parse the command line, run the studies (accuracy studies, or structure studies) and return each panel's rows
    with a 'line' column (the paper's names: NAMES, then `names`), passed through `transform`; they are saved as
    <storage>/<script>/results.parquet."""
    args = common.parse_args(doc, argv)
    make = structure_studies if structure else studies
    panels = {}
    for title, specs in make(args.preset, args.storage, args.data_root, grids, **which).items():
        rows = [common.own_rows(common.run(spec, args, title), spec) for spec in specs]
        frame = common.lines(pd.concat(rows, ignore_index=True), {**NAMES, **(names or {})})
        panels[title] = (transform or (lambda f: f))(frame.assign(panel=title))
    out = common.Outputs(args.storage, script)
    out.parquet(pd.concat(panels.values(), ignore_index=True))
    return panels, out


def disconnect_last(frame: pd.DataFrame, keep: int) -> pd.DataFrame:
    """The rows of the `keep` seeds of each panel and line whose subnetworks disconnect last: a seed disconnects at
    the least sparsity at which its subnetwork has no input-output path left (infinite effective compression), never
    if it has one everywhere; later first, ties to the smaller seed."""
    chosen = []
    for _, rows in frame.groupby(["panel", "line"], sort=False):
        cut = rows[~np.isfinite(rows["compression_effective"])].groupby("seed")["sparsity"].min()
        seeds = sorted(rows["seed"].unique(), key=lambda s: (-cut.get(s, np.inf), s))
        chosen.append(rows[rows["seed"].isin(seeds[:keep])])
    return pd.concat(chosen, ignore_index=True)


def main(argv=None) -> pd.DataFrame:
    preset = common.parse_args(__doc__, argv).preset
    total, keep = FIG3_SEEDS[preset]
    panels, out = run(SCRIPT, __doc__, argv, grids, structure=True, seeds=total)
    panels = {title: disconnect_last(frame, keep) for title, frame in panels.items()}
    out.parquet(pd.concat(panels.values(), ignore_index=True), "plotted.parquet")
    where = out.figure(lambda path: common.plot_panels(
        panels, path, "compression_direct", "compression_effective", xlabel="direct compression",
        ylabel="effective compression", logx=True, logy=True, diagonal=True), f"{SCRIPT}.png")
    for title, frame in panels.items():
        print(f"\n{title}: effective compression\n" + common.table(frame, "compression_effective").to_string())
    print(f"\nwrote {out.storage.path(SCRIPT, 'results.parquet')} (all {total} seeds), plotted.parquet (the {keep} "
          f"seeds that disconnect last) and {where}")
    return pd.concat(panels.values(), ignore_index=True)


if __name__ == "__main__":
    main()
