"""Frankle et al. (2021), Figure 5: ablations of magnitude, SNIP, GraSP and SynFlow at initialization — masks
shuffled within each layer, weights reinitialised, the scores inverted (pruning the most important weights), and
initialisation N(0, 1) before scoring — each method's panel against its unmodified version and the dense network.

    python experiments/frankle_fig5.py                  # embedded: local Ray, digits, a tiny ResNet (8-4)
    python experiments/frankle_fig5.py --preset paper   # the four networks of Appendix A and
                                                        # Appendix I's modified ResNet-18; 19 sparsities
"""

from __future__ import annotations

import pandas as pd

import common
from raysweep import plots, sweep

SCRIPT = "frankle_fig5"
METHODS = ["magnitude", "snip", "grasp", "synflow"]
ABLATIONS = ["none", "shuffle", "reinit", "invert", "init_normal"]


def methods(preset: str) -> list[str]:
    """The smoke grid keeps the two methods whose ablations differ most: magnitude (init N(0, 1) makes it random)
    and SynFlow (shuffling undoes its neuron collapse)."""
    return ["magnitude", "synflow"] if preset == "smoke" else METHODS


def studies(preset: str, storage: str, data_root: str | None) -> dict[str, sweep.StudySpec]:
    panels = common.frankle_panels(preset, storage, data_root, "frankle-fig5", appendix_i=True,
                                   grids=[sweep.Grid(methods=methods(preset), ablations=ABLATIONS)])
    if preset == "embedded":
        # One network, with BatchNorm as all of Frankle's: without it, training from the N(0, 1) weights of the
        # init_normal ablation stays at chance whatever the mask (as it does on the LeNets).
        spec = next(iter(panels.values()))
        return {"cifar_resnet_8_4 (digits)": spec.replace(name="frankle-fig5-cifar_resnet_8_4-digits",
                                                          model="cifar_resnet_8_4")}
    return panels


def method_panels(title: str, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One panel per method: its rows under every ablation, and the dense network as the reference line."""
    dense = frame[frame["method"] == "dense"]
    return {f"{method}: {title}": pd.concat([frame[frame["method"] == method], dense], ignore_index=True)
            for method in METHODS if method in set(frame["method"])}


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(__doc__, argv)
    frames = {title: common.run(spec, args, title).frame
              for title, spec in studies(args.preset, args.storage, args.data_root).items()}
    out = common.Outputs(args.storage, SCRIPT)
    combined = pd.concat(frames.values(), ignore_index=True)
    written = [out.parquet(combined)]
    for title, frame in frames.items():   # one figure per network, one panel per method
        panels = method_panels(title, frame)
        written.append(out.figure(lambda p: plots.accuracy_vs_sparsity(panels, p),
                                  f"{SCRIPT}_{frame['model'].iloc[0]}.png"))
    print("\nwrote " + ", ".join(written))
    return combined


if __name__ == "__main__":
    main()
