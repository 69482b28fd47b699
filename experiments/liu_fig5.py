"""Liu et al. (2022), Figure 5: "Summary of evaluation on ImageNet": test accuracy against the parameter count
(#Param: the weights a network keeps plus its biases and BatchNorm parameters) and, against the cost of one forward
pass of the masked network in multiply-adds (the paper's "#FLOPs": dense ResNet-50 at 4.1 x 10^9; MACs: torch's flop
counter halved, zeros of the masks removed), test accuracy, FGSM robust accuracy, OoD ROC-AUC on ImageNet-O, ECE and
NLL; one line per architecture over sparsities 0.7, 0.5, 0.3 (SNIP
ratios; SNIP and ERK+ for Wide ResNet-50: "We choose SNIP and ERK+ sparsity ratios for Wide ResNet-50, and SNIP ratios
for the rest of the architectures. The sparsity of randomly pruned subnetworks is set as [0.7, 0.5, 0.3]"), the dense
networks as single points.

    python experiments/liu_fig5.py                  # embedded: ResNets of width 2 and 4 on the digits 0-4 (the
                                                    # digits 5-9 as OoD set)
    python experiments/liu_fig5.py --preset paper   # ResNet-18, 34, 50, 101 and Wide ResNet-50 on ImageNet, pruned
                                                    # ones on the sparse schedule, dense ones on their own 90-epoch
                                                    # schedule (Table 1); ImageNet-O in <data-root>/imagenet-o

This module also holds the ImageNet studies Figures 6 and 14 share: "liu-<model>-imagenet" (sparse schedule) and
"liu-<model>-imagenet-dense".
"""

from __future__ import annotations

import functools

import pandas as pd

import common
import liu_fig1_2 as liu
from raysweep import metrics, sweep

SCRIPT = "liu_fig5"
PAPER_MODELS = ["imagenet_resnet_18", "imagenet_resnet_34", "imagenet_resnet_50", "imagenet_resnet_101",
                "imagenet_wide_resnet_50"]
PAPER_SPARSITIES = [0.3, 0.5, 0.7]
SNIP_RATIO = sweep.Grid(methods=["random"], quotas=["ratio:snip"])
WIDE_RATIOS = sweep.Grid(methods=["random"], quotas=["ratio:snip", "erk_plus"])   # Liu: SNIP and ERK+ for WRN-50
# Appendix A: "ImageNet-O as the OoD dataset for models trained on ImageNet"
METRICS = ["ece", "nll", "fgsm_accuracy", "flops", "ood_auroc"]
FIGURES = {"accuracy": ("test accuracy (%)", 100), "fgsm_accuracy": ("FGSM robust accuracy (%)", 100),
           "ood_auroc": ("OoD ROC-AUC (ImageNet-O)", 1), "ece": ("ECE", 1), "nll": ("NLL", 1)}
SHAPES = {"imagenet": ((3, 224, 224), 1000), "digits_0to4": ((1, 8, 8), 5)}


def imagenet_study(model: str, storage: str, data_root: str | None, grids, sparsities) -> sweep.StudySpec:
    """`model`'s pruned networks on ImageNet, on the sparse schedule (Table 1: 100 epochs)."""
    return sweep.StudySpec(name=f"liu-{model}-imagenet", model=model, data="imagenet", training="liu_imagenet_sparse",
                           storage=storage, data_root=data_root, seeds=[0], dense=False, sparsities=sparsities,
                           grids=grids, metrics=list(METRICS), ood=["imagenet_o"], gpus_per_worker=1, workers=4)


def imagenet_dense(model: str, storage: str, data_root: str | None) -> sweep.StudySpec:
    """`model`'s dense network on ImageNet, on the dense schedule (Table 1: 90 epochs)."""
    return imagenet_study(model, storage, data_root, [sweep.Grid(methods=["random"])], [0.0]).replace(
        name=f"liu-{model}-imagenet-dense", training="liu_imagenet_dense")


def paper_studies(storage: str, data_root: str | None) -> dict[str, sweep.StudySpec]:
    """Two studies per architecture: the pruned networks on the sparse schedule, the dense one on the dense."""
    out = {}
    for model in PAPER_MODELS:
        grids = [WIDE_RATIOS if "wide" in model else SNIP_RATIO]
        out[f"{model} (imagenet)"] = imagenet_study(model, storage, data_root, grids, PAPER_SPARSITIES)
        out[f"{model} (imagenet, dense)"] = imagenet_dense(model, storage, data_root)
    return out


@functools.lru_cache(maxsize=None)
def parameter_counts(model: str, data: str) -> tuple[int, int]:
    """(all parameters, prunable weights) of `model` built for `data`."""
    from raysweep import pruning
    from raysweep.models.registry import build   # the architecture only: counting needs no initialisation
    shape, classes = SHAPES[data]
    net = build(model, classes, shape)
    return sum(p.numel() for p in net.parameters()), sum(p.numel() for p in pruning.prunable(net).values())


def with_parameters(frame: pd.DataFrame) -> pd.DataFrame:
    """Column 'params': the parameters a network keeps (all of them but its pruned weights)."""
    counts = [parameter_counts(m, d) for m, d in zip(frame["model"], frame["data"])]
    return frame.assign(params=[total - round(s * prunable) for (total, prunable), s in
                                zip(counts, frame["sparsity_direct"])])


def by_architecture(frame: pd.DataFrame) -> pd.DataFrame:
    dense = frame["sparsity"] == 0
    ratio = {"ratio:snip": "SNIP ratio", "erk_plus": "ERK+", "erk": "ERK"}
    return frame.assign(line=[f"Dense {m}" if d else f"{ratio.get(q, q)} {m}"
                              for d, m, q in zip(dense, frame["model"], frame["quota"])])


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(__doc__, argv)
    if args.preset == "paper":
        rows = [common.own_rows(common.run(spec, args, title), spec)
                for title, spec in paper_studies(args.storage, args.data_root).items()]
        out = common.Outputs(args.storage, SCRIPT)
        frame = by_architecture(common.lines(pd.concat(rows, ignore_index=True)))
    else:
        panels, out = liu.run(SCRIPT, __doc__, argv, lambda preset: liu.WIDTH[preset] or liu.DEPTH[preset],
                              transform=by_architecture, grids=[SNIP_RATIO])
        frame = pd.concat(panels.values(), ignore_index=True)
    frame = with_parameters(metrics.with_macs(frame))   # rows of earlier runs hold flops_sparse (2 per multiply-add)
    ood = [c for c in frame.columns if c.startswith("ood_auroc_")]
    frame = frame.assign(ood_auroc=frame[ood[0]] if ood else float("nan"))
    out.parquet(frame)
    unit, power = ("10^9", 1e9) if frame["macs_sparse"].max() >= 1e9 else ("10^6", 1e6)
    frame = frame.assign(macs=frame["macs_sparse"] / power, params_m=frame["params"] / 1e6)
    drawn = {"Accuracy (#Param)": frame.assign(x=frame["params_m"], value=100 * frame["accuracy"])}
    drawn.update({f"{FIGURES[v][0]} (#FLOPs)": frame.assign(x=frame["macs"], value=FIGURES[v][1] * frame[v])
                  for v in FIGURES})
    where = out.figure(lambda path: common.plot_panels(
        drawn, path, "x", "value", xlabel=f"#Param (10^6) / multiply-adds (MACs) per example ({unit}; FLOPs = 2 x "
                                          f"MACs)", ylabel="", reference="none", ncols=3), f"{SCRIPT}.png")
    for column in ("params", "macs_sparse", "accuracy"):
        print("\n" + common.table(frame, column).to_string())
    print(f"\nwrote {out.storage.path(SCRIPT, 'results.parquet')} and {where}")
    return frame


if __name__ == "__main__":
    main()
