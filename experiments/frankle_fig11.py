"""Frankle et al. (2021), Figure 11: the per-layer sparsities each method produces at the highest matching
sparsity — methods at initialisation, SynFlow shuffled within each layer, and magnitude pruning after training —
layers ordered from input to output (the model's parameter order), mean over seeds.

    python experiments/frankle_fig11.py                  # embedded: local Ray, scikit-learn digits, LeNets
    python experiments/frankle_fig11.py --preset paper   # the four networks of Appendix A (at the matching
                                                         # sparsities the paper states) and Appendix I's
                                                         # modified ResNet-18
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import common  # noqa: E402
import frankle_matching  # noqa: E402
from raysweep import plots  # noqa: E402

SCRIPT = "frankle_fig11"


def layer_table(frame: pd.DataFrame, sparsity: float) -> pd.DataFrame:
    """Long table: line, layer (in the model's order), seed, layer sparsity — every method's rows at `sparsity`."""
    rows = plots.with_labels(frame[(frame["sparsity"] == sparsity) & (frame["method"] != "dense")])
    return pd.DataFrame([{"line": r["line"], "layer": layer, "order": i, "seed": int(r["seed"]), "layer_sparsity": v}
                         for _, r in rows.iterrows() for i, (layer, v) in enumerate(r["layer_sparsities"].items())])


def draw(tables: dict[str, pd.DataFrame], path) -> None:
    fig, axes = plt.subplots(len(tables), 1, figsize=(11, 3.6 * len(tables)), squeeze=False)
    for ax, (title, table) in zip(axes[:, 0], tables.items()):
        means = table.groupby(["order", "layer", "line"])["layer_sparsity"].mean().unstack("line").sort_index()
        width = 0.8 / len(means.columns)
        for k, line in enumerate(means.columns):
            colour = frankle_matching.colour(line)
            ax.bar(np.arange(len(means)) + (k - (len(means.columns) - 1) / 2) * width, 100 * means[line], width,
                   color=colour, label=line)
        ax.set_xticks(np.arange(len(means)), [layer for _, layer in means.index], rotation=60, fontsize=7)
        ax.set_ylabel("layer sparsity (%)")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(0, 115)   # room for the legend above the bars
        ax.legend(fontsize=7, ncol=4, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(__doc__, argv)
    runs = frankle_matching.at_matching(args)
    tables = {f"{title} at {100 * s:.1f}% sparsity": layer_table(run.frame, s) for title, (run, s) in runs.items()}
    for title, table in tables.items():
        print(f"\n{title}: layer sparsities (%)\n"
              + (100 * table.pivot_table(index=["order", "layer"], columns="line", values="layer_sparsity"))
              .round(1).to_string())
    out = common.Outputs(args.storage, SCRIPT)
    combined = pd.concat([t.assign(panel=title) for title, t in tables.items()], ignore_index=True)
    written = [out.parquet(pd.concat([run.frame for run, _ in runs.values()], ignore_index=True)),
               out.parquet(combined, "layer_sparsities.parquet"),
               out.figure(lambda p: draw(tables, p), f"{SCRIPT}.png"),
               frankle_matching.record(out, {title: run for title, (run, _) in runs.items()})]
    print("\nwrote " + ", ".join(written))
    return combined


if __name__ == "__main__":
    main()
