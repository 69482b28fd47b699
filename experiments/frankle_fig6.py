"""Frankle et al. (2021), Figure 6: neuron collapse at the highest matching sparsity — for each method at
initialisation (and SynFlow shuffled within each layer), the percent of neurons (conv. channels, linear units)
whose own sparsity is at least s%, for s from 0 to 100.

The masks are not stored by the engine; pruning is deterministic per seed, so this script prunes each trial's
initial network again from the trial's own row and checks that the masks agree with what the trial measured
(its neuron_collapse and layer_sparsities columns) before drawing the curves.

    python experiments/frankle_fig6.py                  # embedded: local Ray, scikit-learn digits, LeNets
    python experiments/frankle_fig6.py --preset paper   # the four networks of Appendix A (at the matching
                                                        # sparsities the paper states) and Appendix I's
                                                        # modified ResNet-18
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import common  # noqa: E402
import frankle_matching  # noqa: E402
from raysweep import data, models, plots, pruning  # noqa: E402

SCRIPT = "frankle_fig6"
THRESHOLDS = [round(x, 2) for x in np.linspace(0.0, 1.0, 51)]


def trial_masks(row, data_root: str | None) -> pruning.Masks:
    """The masks the trial of `row` (a method at initialisation) pruned, made again exactly as the trial did."""
    ds = data.get(row["data"], data_root)
    model = models.create(row["model"], num_classes=ds.num_classes, input_shape=ds.input_shape,
                          seed=int(row["seed"]), init=row["init"], bn_init=row["bn_init"])
    batch = data.balanced_batch(ds, int(row["per_class"]), seed=int(row["seed"]))
    iterations = row.get("iterations")
    iterations = None if iterations is None or (isinstance(iterations, float) and math.isnan(iterations)) \
        else int(iterations)
    return pruning.prune(model, float(row["sparsity"]), row["method"], data=batch, seed=int(row["seed"]),
                         ablation=None if row["ablation"] == "none" else row["ablation"], iterations=iterations)


def collapse_rows(frame: pd.DataFrame, sparsity: float, data_root: str | None) -> list[dict]:
    at_init = frame[(frame["prune_at"] == "init") & (frame["method"] != "dense") & (frame["sparsity"] == sparsity)
                    & frame["status"].isin(["completed", "diverged"])]
    rows = []
    for _, row in at_init.iterrows():
        masks = trial_masks(row, data_root)
        curve = pruning.collapse_curve(masks, THRESHOLDS)
        measured = row["layer_sparsities"]
        if (abs(curve[-1] - row["neuron_collapse"]) > 1e-9
                or any(abs(v - measured[k]) > 1e-9 for k, v in masks.layer_sparsities().items())):
            raise RuntimeError(f"trial {row['trial_id']} ({row['method']}, seed {row['seed']}): the masks made again "
                               f"differ from the trial's; pruning is not deterministic for this setting")
        rows += [{"model": row["model"], "data": row["data"], "trial_id": row["trial_id"], "line": plots.label(row),
                  "method": row["method"], "ablation": row["ablation"], "seed": int(row["seed"]),
                  "sparsity": float(sparsity), "threshold": t, "fraction": f} for t, f in zip(THRESHOLDS, curve)]
    return rows


def draw(curves: pd.DataFrame, path) -> None:
    titles = list(dict.fromkeys(curves["panel"]))
    fig, axes = plt.subplots(1, len(titles), figsize=(5.5 * len(titles), 4.2), squeeze=False)
    for ax, title in zip(axes[0], titles):
        panel = curves[curves["panel"] == title]
        for line, rows in panel.groupby("line", sort=True):
            stats = rows.groupby("threshold")["fraction"].agg(["mean", "std"]).fillna(0).sort_index()
            colour = frankle_matching.colour(line)
            ax.plot(100 * stats.index, 100 * stats["mean"], color=colour, label=line)
            ax.fill_between(100 * stats.index, 100 * (stats["mean"] - stats["std"]),
                            100 * (stats["mean"] + stats["std"]), color=colour, alpha=0.2)
        ax.set_xlabel("neuron sparsity s (%)")
        ax.set_ylabel("neurons with sparsity >= s (%)")
        ax.set_title(f"{title} at {100 * panel['sparsity'].iloc[0]:.1f}% sparsity")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(__doc__, argv)
    runs = frankle_matching.at_matching(args)
    curves = pd.DataFrame([{"panel": title, **r} for title, (run, sparsity) in runs.items()
                           for r in collapse_rows(run.frame, sparsity, args.data_root)])
    at_one = curves[curves["threshold"] == 1.0].groupby(["panel", "line"])["fraction"].mean().unstack("panel")
    print("\npercent of neurons pruned entirely at the highest matching sparsity:\n"
          + (100 * at_one).round(1).to_string())
    out = common.Outputs(args.storage, SCRIPT)
    written = [out.parquet(pd.concat([run.frame for run, _ in runs.values()], ignore_index=True)),
               out.parquet(curves, "collapse.parquet"), out.figure(lambda p: draw(curves, p), f"{SCRIPT}.png"),
               frankle_matching.record(out, {title: run for title, (run, _) in runs.items()})]
    print("\nwrote " + ", ".join(written))
    return curves


if __name__ == "__main__":
    main()
