"""Frankle et al. (2021), Figure 10 (Appendix F.4): their replication of Tanaka et al.'s SynFlow experiments —
random, magnitude, SNIP, GraSP and SynFlow at initialisation "at sparsities between 0% and 99.9% at intervals of an
additional 50% sparsity (e.g., 50% sparsity, 75% sparsity, 87.5% sparsity, etc.)", on the settings Appendix F
replicates (Table 6, "Replicated"): VGG-11 and VGG-16 on CIFAR-10, the modified ResNet-18 on CIFAR-10 and on
TinyImageNet; the dense network as reference.

Hyperparameters: the VGGs' are "identical to ours" (Appendix A's VGG-16 preset). The modified ResNet-18 trains with
the settings under which Frankle's network matched Tanaka et al.'s accuracy (Table 7): on TinyImageNet "lr=0.2,
batch size=256, epochs=200" (Appendix A's TinyImageNet preset), on CIFAR-10 "lr=0.2, batch size=256, drop
factor=0.1" over Appendix A's CIFAR-10 schedule (training preset frankle_cifar_modified_resnet18). Initialisation
as in the main body (Kaiming normal fan-in, BatchNorm gamma uniform on (0, 1): "both PyTorch defaults").

    python experiments/frankle_fig10.py                  # embedded: local Ray, scikit-learn digits, LeNets
    python experiments/frankle_fig10.py --preset paper   # the four settings above; 0% to 99.9% sparsity
"""

from __future__ import annotations

import pandas as pd

import common
from raysweep import sweep

SCRIPT = "frankle_fig10"
# 0%, 50%, 75%, ..., 99.9% (1 - 2^-10 = 99.902%)
SPARSITIES = [round(1 - 0.5 ** k, 6) for k in range(11)]
AT_INIT = sweep.Grid(methods=["random", "magnitude", "snip", "grasp", "synflow"])
# (model, data, training preset, seeds, GPUs per worker, workers); five replicates on CIFAR-10, three on
# TinyImageNet, as in the main body
PAPER = [("cifar_vgg_11", "cifar10", "frankle_cifar_vgg16", 5, 1, 1),
         ("cifar_vgg_16", "cifar10", "frankle_cifar_vgg16", 5, 1, 1),
         ("tiny_resnet_18", "cifar10", "frankle_cifar_modified_resnet18", 5, 1, 1),
         ("tiny_resnet_18", "tinyimagenet", "frankle_tinyimagenet_resnet18", 3, 1, 2)]


def studies(preset: str, storage: str, data_root: str | None) -> dict[str, sweep.StudySpec]:
    if preset != "paper":
        panels = common.frankle_panels(preset, storage, data_root, "frankle-fig10", grids=[AT_INIT])
        if preset == "embedded":
            panels = {title: spec.replace(sparsities=SPARSITIES[1:8]) for title, spec in panels.items()}
        return panels
    return {f"{model} ({data})": sweep.StudySpec(
                name=f"frankle-fig10-{model}-{data}", storage=storage, data_root=data_root, model=model, data=data,
                training=training, seeds=list(range(seeds)), bn_init="uniform", gpus_per_worker=gpus,
                workers=workers, sparsities=SPARSITIES, grids=[AT_INIT])
            for model, data, training, seeds, gpus, workers in PAPER}


def main(argv=None) -> pd.DataFrame:
    return common.accuracy_figure(SCRIPT, __doc__, argv, studies)


if __name__ == "__main__":
    main()
