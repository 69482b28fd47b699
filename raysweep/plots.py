"""Figures and tables from a study's rows: accuracy against sparsity, one line per method, mean and std over seeds."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# Frankle et al.'s colours: after training blue, random orange, magnitude green, SNIP red, GraSP purple,
# SynFlow brown, dense gray.
COLOURS = {"magnitude after training": "tab:blue", "random": "tab:orange", "magnitude": "tab:green",
           "snip": "tab:red", "grasp": "tab:purple", "synflow": "tab:brown", "dense": "tab:gray"}
# other lines (variants, ablations, LTR) take these in turn, so no two lines of a panel share a colour
SPARE_COLOURS = ["tab:pink", "tab:olive", "tab:cyan", "black", "gold", "navy", "lime", "teal", "maroon", "orchid"]
# Readable names for panel titles; others are shown as they are.
MODEL_NAMES = {"lenet_300_100": "LeNet-300-100", "lenet_5": "LeNet-5", "cifar_resnet_20": "ResNet-20",
               "cifar_vgg_16": "VGG-16", "imagenet_resnet_18": "ResNet-18", "imagenet_resnet_50": "ResNet-50"}
DATA_NAMES = {"digits": "digits (scikit-learn, 8x8)", "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST",
              "kmnist": "KMNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN",
              "tinyimagenet": "TinyImageNet", "imagenet": "ImageNet"}
# Metrics bounded by definition (raw units): their std bands are clipped to these ranges.
METRIC_RANGES = {"accuracy": (0.0, 1.0), "ood_auroc": (0.0, 1.0), "sparsity": (0.0, 1.0),
                 "sparsity_direct": (0.0, 1.0), "sparsity_effective": (0.0, 1.0)}


def label(row) -> str:
    """A line's name: the method, when it pruned, and any ablation or layerwise quota."""
    if row["method"] == "dense":
        return "dense"
    if row["method"] == "magnitude" and row["prune_at"] == "end":
        name = "magnitude after training"
    elif row["method"] == "ltr":
        name = f"LTR (rewind to {row['prune_at']})"
    else:
        name = row["method"] if row["prune_at"] == "init" else f"{row['method']} at {row['prune_at']}"
    if row.get("ablation", "none") != "none":
        name += f" ({row['ablation']})"
    if row.get("quota", "global") != "global":
        name += f" [{row['quota']}]"
    return name


def panel_title(df: pd.DataFrame, fallback: str) -> str:
    """'<model> on <data>' when the rows hold one model and one data set, else `fallback`."""
    if {"model", "data"} <= set(df.columns) and df["model"].nunique() == 1 and df["data"].nunique() == 1:
        model, data = df["model"].iloc[0], df["data"].iloc[0]
        return f"{MODEL_NAMES.get(model, model)} on {DATA_NAMES.get(data, data)}"
    return fallback


def band(lo, hi, value: str, scale: float = 1.0):
    """A band's edges clipped to the range of metric `value` (METRIC_RANGES), both scaled by `scale`."""
    bounds = METRIC_RANGES.get(value)
    if bounds is None:
        return scale * np.asarray(lo, dtype=float), scale * np.asarray(hi, dtype=float)
    return (scale * np.clip(np.asarray(lo, dtype=float), *bounds), scale * np.clip(np.asarray(hi, dtype=float), *bounds))


def with_labels(df: pd.DataFrame) -> pd.DataFrame:
    df = df[df["status"].isin(["completed", "diverged"])].copy()
    df["line"] = [label(r) for _, r in df.iterrows()]
    return df


def summary(df: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Table of 'mean ± std (n)' of `value` in percent: lines x sparsities; empty when no trial finished."""
    df = with_labels(df)
    if value not in df:   # every row failed, and a failed row has no metric columns
        return pd.DataFrame(index=pd.Index([], name="line"))
    grouped = df.groupby(["line", "sparsity"])[value].agg(["mean", "std", "count"]).reset_index()
    grouped["cell"] = [f"{100 * m:.1f} ± {100 * (0 if math.isnan(s) else s):.1f} ({n})"
                       for m, s, n in zip(grouped["mean"], grouped["std"], grouped["count"])]
    table = grouped.pivot(index="line", columns="sparsity", values="cell").fillna("")
    table.columns = [f"{100 * c:.1f}%" for c in table.columns]
    return table


def _density_ticks(ax, sparsities) -> None:
    """Frankle et al.'s axis: weights remaining (%), log scale, falling from left to right."""
    densities = sorted({round(1 - s, 6) for s in sparsities}, reverse=True)
    if not densities:
        return
    step = max(1, -(-len(densities) // 10))       # at most about ten labels
    shown = densities[::step]
    ax.set_xscale("log")
    ax.set_xlim(max(densities) * 1.15, min(densities) / 1.15)   # reversed: sparser to the right
    ax.set_xticks(shown, [f"{100 * d:.3g}" for d in shown], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("weights remaining (%)")


def accuracy_vs_sparsity(panels: dict[str, pd.DataFrame], path, value: str = "accuracy",
                         title: str | None = None) -> None:
    """Write accuracy_figure(panels, value, title) to `path`."""
    fig = accuracy_figure(panels, value, title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def accuracy_figure(panels: dict[str, pd.DataFrame], value: str = "accuracy", title: str | None = None):
    """One panel per study: x is the share of weights remaining on a log scale (Frankle et al.'s Figure 4), y the
    mean of `value` over seeds with a band of one standard deviation, clipped to the metric's range; the dense
    network is a horizontal reference line. Panels are titled by model and data set (panel_title, else by their
    key); one legend for all panels sits outside them, right of the data; `title` heads the figure."""
    frames = {key: with_labels(df) for key, df in panels.items()}
    lines = sorted({line for df in frames.values() for line in df["line"]})
    spare = iter(SPARE_COLOURS * (1 + len(lines) // len(SPARE_COLOURS)))
    colours = {line: COLOURS.get(line) or next(spare) for line in lines}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels) + 2.2, 4.2), squeeze=False,
                             layout="constrained")
    handles = {}
    for ax, (key, df) in zip(axes[0], frames.items()):
        for line, rows in df.groupby("line", sort=True):
            colour = colours[line]
            if line == "dense":
                m, sd = rows[value].mean(), rows[value].std() if len(rows) > 1 else 0.0
                handles[line] = ax.axhline(100 * m, color=colour, ls="--", label=line)
                ax.axhspan(*band(m - sd, m + sd, value, 100), color=colour, alpha=0.15)
                continue
            stats = rows.groupby("sparsity")[value].agg(["mean", "std"]).fillna(0).sort_index()
            density = 1 - stats.index.to_numpy()
            handles[line], = ax.plot(density, 100 * stats["mean"], marker="o", ms=3, color=colour, label=line)
            ax.fill_between(density, *band(stats["mean"] - stats["std"], stats["mean"] + stats["std"], value, 100),
                            color=colour, alpha=0.2)
        _density_ticks(ax, df.loc[df["line"] != "dense", "sparsity"])
        ax.set_ylabel(f"test {value} (%)")
        ax.set_title(panel_title(df, key), fontsize=10)
        ax.grid(alpha=0.3)
    fig.legend([handles[k] for k in lines if k in handles], [k for k in lines if k in handles], fontsize=8,
               loc="outside right center")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
