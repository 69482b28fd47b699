"""Vysogorets & Kempe (2023), Figure 7: layerwise direct compression quotas of SynFlow, IGQ (here under random
pruning) and LAMP, against the network's overall compression; one line per layer, labelled with its share of the
weights. A curve ends where its layer is removed entirely (the network disconnects). Masks only: the structure
studies (vysogorets_fig3.structure_studies), nothing retrained.

    python experiments/vysogorets_fig7.py                  # embedded: LeNet-300-100 on digits
    python experiments/vysogorets_fig7.py --preset paper   # LeNet-5 and VGG-16 on CIFAR-10; Appendix A
"""

from __future__ import annotations

import pandas as pd

import common
import vysogorets_fig3 as fig3
from raysweep import models, pruning, sweep

SCRIPT = "vysogorets_fig7"
GRIDS = [sweep.Grid(methods=["synflow"]), sweep.Grid(methods=["random"], quotas=["igq"]), fig3.LAMP_MASK]


def grids(model, shape, classes, sparsities) -> list[sweep.Grid]:
    return GRIDS


SOURCES = {"SynFlow": "SynFlow", "random (IGQ)": "IGQ", "LAMP": "LAMP"}


def layer_shares(model: str, data: str) -> dict[str, float]:
    """Each prunable layer's fraction of all prunable weights."""
    shape, classes = (fig3.PAPER[model][5:7] if data != "digits" else (fig3.DIGITS, 10))
    sizes = {name: p.numel() for name, p in pruning.prunable(models.create(model, num_classes=classes,
                                                                           input_shape=shape)).items()}
    total = sum(sizes.values())
    return {name: n / total for name, n in sizes.items()}


def per_layer(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Panel '<model>: <source>' -> rows (one per layer and trial) of the layer's compression."""
    panels = {}
    for (model, data), rows in frame[frame["line"].isin(list(SOURCES))].groupby(["model", "data"]):
        shares = layer_shares(model, data)
        records = [{"panel": f"{model}: {SOURCES[r['line']]}", "line": f"{layer} ({100 * shares[layer]:.1f}%)",
                    "sparsity": r["sparsity"], "seed": r["seed"], "compression_direct": r["compression_direct"],
                    "layer": layer, "layer_sparsity": s, "layer_compression": 1 / (1 - s) if s < 1 else float("inf")}
                   for _, r in rows.iterrows() for layer, s in r["layer_sparsities"].items()]
        for panel, part in pd.DataFrame(records).groupby("panel", sort=False):
            panels[panel] = part
    return panels


def main(argv=None) -> pd.DataFrame:
    panels, out = fig3.run(SCRIPT, __doc__, argv, grids, structure=True, paper=("lenet_5_bn", "cifar_vgg_16"))
    layers = per_layer(pd.concat(panels.values(), ignore_index=True))
    out.parquet(pd.concat(layers.values(), ignore_index=True), "layer_quotas.parquet")
    where = out.figure(lambda path: common.plot_panels(
        layers, path, "compression_direct", "layer_compression", xlabel="network compression",
        ylabel="layer compression", logx=True, logy=True), f"{SCRIPT}.png")
    for title, frame in layers.items():
        print(f"\n{title}: layer compression\n" + common.table(frame, "layer_compression").to_string())
    print(f"\nwrote {out.storage.path(SCRIPT, 'results.parquet')}, layer_quotas.parquet and {where}")
    return pd.concat(layers.values(), ignore_index=True)


if __name__ == "__main__":
    main()
