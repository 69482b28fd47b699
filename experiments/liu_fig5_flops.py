"""Liu et al. (2022), Figure 5 (its FLOPs axis): test accuracy, FGSM robust accuracy, ECE and NLL of randomly
pruned networks with SNIP ratios against the cost of one forward pass of the masked network in multiply-adds (MACs:
torch's flop counter halved, zeros of the masks removed; 1 MAC = 2 FLOPs in torch's count), one line per
architecture over sparsities, the dense networks as single points.

    python experiments/liu_fig5_flops.py                  # embedded: ResNets of width 2 and 4 on the digits 0-4
    python experiments/liu_fig5_flops.py --preset paper   # ResNet-18, 34, 50, 101 (SNIP ratios) and Wide
                                                          # ResNet-50 (SNIP and ERK+ ratios) on ImageNet at
                                                          # sparsities 0.3, 0.5, 0.7 (sparse schedule), dense ones
                                                          # on their own 90-epoch schedule; Table 1
"""

from __future__ import annotations

import pandas as pd

import common
import liu_fig1_2 as liu
from raysweep import metrics, sweep

SCRIPT = "liu_fig5_flops"
PAPER_MODELS = ["imagenet_resnet_18", "imagenet_resnet_34", "imagenet_resnet_50", "imagenet_resnet_101",
                "imagenet_wide_resnet_50"]
PAPER_SPARSITIES = [0.3, 0.5, 0.7]
SNIP_RATIO = sweep.Grid(methods=["random"], quotas=["ratio:snip"])
WIDE_RATIOS = sweep.Grid(methods=["random"], quotas=["ratio:snip", "erk_plus"])   # Liu: SNIP and ERK+ for WRN-50
FIGURES = {"accuracy": ("test accuracy (%)", 100), "fgsm_accuracy": ("FGSM robust accuracy (%)", 100),
           "ece": ("ECE", 1), "nll": ("NLL", 1)}


def paper_studies(storage: str, data_root: str | None) -> dict[str, sweep.StudySpec]:
    """Two studies per architecture: the pruned networks on the sparse schedule, the dense one on the dense."""
    out = {}
    for model in PAPER_MODELS:
        fields = dict(model=model, data="imagenet", storage=storage, data_root=data_root, seeds=[0], dense=False,
                      metrics=["ece", "nll", "fgsm_accuracy", "flops"], gpus_per_worker=1, workers=4)
        out[f"{model} (imagenet)"] = sweep.StudySpec(name=f"liu-{model}-imagenet", training="liu_imagenet_sparse",
                                                     sparsities=PAPER_SPARSITIES,
                                                     grids=[WIDE_RATIOS if "wide" in model else SNIP_RATIO], **fields)
        out[f"{model} (imagenet, dense)"] = sweep.StudySpec(
            name=f"liu-{model}-imagenet-dense", training="liu_imagenet_dense", sparsities=[0.0],
            grids=[sweep.Grid(methods=["random"])], **fields)
    return out


def by_architecture(frame: pd.DataFrame) -> pd.DataFrame:
    dense = frame["sparsity"] == 0
    ratio = {"ratio:snip": "SNIP ratio", "erk_plus": "ERK+"}
    return frame.assign(line=[f"Dense {m}" if d else f"{ratio.get(q, q)} {m}"
                              for d, m, q in zip(dense, frame["model"], frame["quota"])])


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(__doc__, argv)
    if args.preset == "paper":
        rows = [common.own_rows(common.run(spec, args, title), spec)
                for title, spec in paper_studies(args.storage, args.data_root).items()]
        out = common.Outputs(args.storage, SCRIPT)
        frame = by_architecture(common.lines(pd.concat(rows, ignore_index=True)))
        out.parquet(frame)
    else:
        panels, out = liu.run(SCRIPT, __doc__, argv, lambda preset: liu.WIDTH[preset] or liu.DEPTH[preset],
                              transform=by_architecture, grids=[SNIP_RATIO])
        frame = pd.concat(panels.values(), ignore_index=True)
    frame = metrics.with_macs(frame)   # rows of earlier runs hold flops_sparse (2 per multiply-add)
    unit, power = ("10^9", 1e9) if frame["macs_sparse"].max() >= 1e9 else ("10^6", 1e6)
    frame = frame.assign(macs=frame["macs_sparse"] / power)
    where = out.figure(lambda path: common.plot_panels(
        {FIGURES[v][0]: frame.assign(value=FIGURES[v][1] * frame[v]) for v in FIGURES}, path, "macs", "value",
        xlabel=f"multiply-adds (MACs) per example ({unit}; FLOPs = 2 x MACs)", ylabel="", reference="none",
        ncols=2), f"{SCRIPT}.png")
    print("\n" + common.table(frame, "macs_sparse").to_string())
    print("\n" + common.table(frame, "accuracy").to_string())
    print(f"\nwrote {out.storage.path(SCRIPT, 'results.parquet')} and {where}")
    return frame


if __name__ == "__main__":
    main()
