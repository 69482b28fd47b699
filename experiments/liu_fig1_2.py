"""Liu et al. (2022), Figures 1 and 2: test accuracy of randomly pruned networks trained from scratch, against
sparsity, under the layerwise ratios ERK, Uniform, Uniform+ and SNIP's ('ratio:snip'), from shallow to deep
(Figure 1) and from narrow to wide (Figure 2); mean and min-max over seeds, the dense network dashed.

    python experiments/liu_fig1_2.py                  # embedded: CIFAR-style ResNets of depth 8/14 and width 2/4
                                                      # on the digits 0-4 (digits_holdout plugin)
    python experiments/liu_fig1_2.py --preset paper   # ResNet-20..110 and ResNet-20-8..56 on CIFAR-10, Table 1

This module also holds what every Liu et al. CIFAR script shares: each model's study "liu-<model>-<data>" computes
all of the paper's metrics (ECE, NLL, OoD ROC-AUC, FGSM accuracy, FLOPs) in every trial, so Figures 1-4, 7-13 and the
appendix figures read the same trials. The dense reference is random pruning at sparsity 0 (the engine's dense rows
carry no metrics).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import common
from raysweep import sweep

SCRIPT = "liu_fig1_2"
QUOTAS = ["erk", "uniform", "uniform_plus", "ratio:snip"]
NAMES = {"random [erk]": "ERK", "random [uniform]": "Uniform", "random [uniform_plus]": "Uniform+",
         "random [ratio:snip]": "SNIP ratio", "random [ratio:grasp]": "GraSP ratio"}
METRICS = ["ece", "nll", "ood_auroc", "fgsm_accuracy", "flops"]
PAPER_SPARSITIES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
EMBEDDED_SPARSITIES = [0.5, 0.9]
PLUGIN = str(Path(__file__).resolve().with_name("digits_holdout.py"))


def resnet(depth: int, width: int = 16) -> str:
    """Liu's ResNet-A-B (A layers, B filters in the first convolution); B = 16 is the standard ResNet-A, one name."""
    return f"cifar_resnet_{depth}" if width == 16 else f"cifar_resnet_{depth}_{width}"


DEPTH = {"paper": [resnet(d) for d in (20, 32, 44, 56, 110)],
         "embedded": ["cifar_resnet_8_4", "cifar_resnet_14_4"], "smoke": ["cifar_resnet_8_4"]}
WIDTH = {"paper": [resnet(20, w) for w in (8, 16, 24, 32, 40, 56)],
         "embedded": ["cifar_resnet_8_2", "cifar_resnet_8_4"], "smoke": []}
# the paper's data set -> the one the embedded and smoke presets stand it in with (no download): five classes of
# digits for CIFAR-10, all ten for CIFAR-100 (more classes, as there)
EMBEDDED_DATA = {"cifar10": "digits_0to4", "cifar100": "digits"}
OOD = {"cifar10": ["cifar100", "svhn"], "digits_0to4": ["digits_5to9"]}   # Appendix A; the digits 5-9 here
SHAPES = {"cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "digits_0to4": (1, 8, 8), "digits": (1, 8, 8)}
CLASSES = {"cifar10": 10, "cifar100": 100, "digits_0to4": 5, "digits": 10}


def study(preset: str, model: str, storage: str, data_root: str | None, grids=None, sparsities=None,
          data: str = "cifar10", quotas=tuple(QUOTAS)) -> sweep.StudySpec:
    """Model `model`'s study on `data` (the paper's: cifar10 or cifar100) under `preset`: random pruning under
    `quotas` where they exist (or the blocks `grids`, [] for none) and the dense reference; every metric of the paper (OoD only where the
    paper has OoD sets)."""
    if preset == "paper":
        fields = dict(training="liu_cifar", seeds=[0, 1, 2], gpus_per_worker=0.5)
        sparsities = sparsities or PAPER_SPARSITIES
    else:
        data = EMBEDDED_DATA[data]
        fields = dict(training="digits", seeds=[0, 1], plugins=[PLUGIN])
        sparsities = sparsities or EMBEDDED_SPARSITIES
        if preset == "smoke":   # three steps: enough for Figure 6's first iterations, cheap for the VGGs
            fields.update(seeds=[0], hparams={**common.SMOKE_HPARAMS, "training_steps": "3it"})
            sparsities = sparsities[-1:]
    metrics = [m for m in METRICS if m != "ood_auroc" or data in OOD]
    if grids is None:
        grids = common.quota_grids(model, SHAPES[data], ["random"], quotas, sparsities, num_classes=CLASSES[data])
    dense = sweep.Grid(methods=["random"], sparsities=[0.0])
    return sweep.StudySpec(name=f"liu-{model}-{data}" + ("-smoke" if preset == "smoke" else ""), model=model,
                           data=data, storage=storage, data_root=data_root, sparsities=sparsities,
                           grids=[*grids, dense], dense=False, metrics=metrics, ood=list(OOD.get(data, [])),
                           **fields)


def run(script: str, doc: str, argv, models, transform=None,
        **kwargs) -> tuple[dict[str, pd.DataFrame], common.Outputs]:
    """Parse the command line, run each model's study; return panel title -> rows with a 'line' column ('dense'
    for sparsity 0) passed through `transform`, saved as <storage>/<script>/results.parquet."""
    args = common.parse_args(doc, argv)
    panels = {}
    for model in models(args.preset):
        spec = study(args.preset, model, args.storage, args.data_root, **kwargs)
        title = f"{model} ({spec.data})"
        frame = common.lines(common.own_rows(common.run(spec, args, title), spec), NAMES)
        frame.loc[frame["sparsity"] == 0, "line"] = "dense"
        panels[title] = (transform or (lambda f: f))(frame.assign(panel=title))
    out = common.Outputs(args.storage, script)
    out.parquet(pd.concat(panels.values(), ignore_index=True))
    return panels, out


def figure(script: str, panels: dict, out: common.Outputs, value: str, label: str, scale: float = 1.0,
           x: str = "sparsity", xlabel: str = "sparsity") -> str:
    """`value` against sparsity (or `x`), one panel per model; prints the table of mean ± std."""
    where = out.figure(lambda path: common.plot_panels(panels, path, x, value, xlabel=xlabel, ylabel=label,
                                                       scale=scale), f"{script}.png")
    for title, frame in panels.items():
        print(f"\n{title}: {value}\n" + common.table(frame, value).to_string())
    print(f"\nwrote {out.storage.path(script, 'results.parquet')} and {where}")
    return where


def accuracy_main(script: str, doc: str, argv, models, **kwargs) -> pd.DataFrame:
    """Test accuracy against sparsity, one panel per model: how Figures 1-2 and 8-13 end."""
    panels, out = run(script, doc, argv, models, **kwargs)
    figure(script, panels, out, "accuracy", "test accuracy (%)", scale=100)
    return pd.concat(panels.values(), ignore_index=True)


def main(argv=None) -> pd.DataFrame:
    return accuracy_main(SCRIPT, __doc__, argv, lambda preset: list(dict.fromkeys(DEPTH[preset] + WIDTH[preset])))


if __name__ == "__main__":
    main()
