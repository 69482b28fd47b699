"""raysweep.plots: Frankle et al.'s Figure 4 layout (log weights-remaining axis), legends clear of the data, std bands
inside the metric's range, panels titled by model and data."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from raysweep import plots


def rows(model="lenet_300_100", data="fashion_mnist"):
    out = []
    for seed, spread in enumerate((-0.1, 0.1)):
        out.append(dict(method="dense", prune_at="init", sparsity=0.0, accuracy=0.88 + spread / 10, seed=seed))
        for s in (0.2, 0.8, 0.98):
            out.append(dict(method="magnitude", prune_at="end", sparsity=s, accuracy=0.87, seed=seed))
            # random collapses at 98%: 0.02 +- 0.1 would dip below 0% unclipped; snip nears 100% +- 10
            out.append(dict(method="random", prune_at="init", sparsity=s, accuracy=0.02 + spread if s > 0.9 else 0.8,
                            seed=seed))
            out.append(dict(method="snip", prune_at="init", sparsity=s, accuracy=0.97 + spread / 2, seed=seed))
    return pd.DataFrame(out).assign(status="completed", model=model, data=data)


def test_accuracy_figure_layout():
    fig = plots.accuracy_figure({"runs/fig4-lenet": rows(), "other": rows("cifar_resnet_20", "cifar10")},
                                title="Figure 4 on Fashion-MNIST")
    fig.canvas.draw()
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["LeNet-300-100 on Fashion-MNIST", "ResNet-20 on CIFAR-10"]
    assert fig._suptitle.get_text() == "Figure 4 on Fashion-MNIST"
    for ax in axes:
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "weights remaining (%)"
        lo, hi = ax.get_xlim()
        assert lo > hi                                            # sparser to the right, as in the paper
        assert [t.get_text() for t in ax.get_xticklabels()] == ["80", "20", "2"]
        for band in ax.collections:                                # std bands stay within [0, 100] %
            ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
            assert ys.min() >= 0.0 and ys.max() <= 100.0
        assert ax.get_legend() is None
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["dense", "magnitude after training", "random", "snip"]
    box = legend.get_window_extent()
    assert all(not box.overlaps(ax.get_window_extent()) for ax in axes)   # beside the data, not over it
    plt.close(fig)


def test_unclipped_metrics_and_fallback_titles():
    lo, hi = plots.band([-0.5, 0.2], [0.5, 1.3], "accuracy", 100)
    assert lo.tolist() == [0.0, 20.0] and hi.tolist() == [50.0, 100.0]
    lo, hi = plots.band([-0.5], [7.0], "loss")
    assert lo.tolist() == [-0.5] and hi.tolist() == [7.0]
    mixed = pd.concat([rows(), rows(data="digits")])
    assert plots.panel_title(mixed, "runs/study") == "runs/study"
    assert plots.panel_title(rows(data="digits"), "x") == "LeNet-300-100 on digits (scikit-learn, 8x8)"


def test_accuracy_vs_sparsity_writes_a_png(tmp_path):
    plots.accuracy_vs_sparsity({"a": rows()}, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(KeyError):
        plots.accuracy_figure({"a": rows()}, value="no_such_metric")


def test_the_summary_of_rows_that_all_failed_is_an_empty_table():
    # a failed row has no metric columns: the table has no line to show, and no 'accuracy' column to read
    failed = pd.DataFrame([dict(method=m, prune_at="init", sparsity=s, seed=0, status="failed", error="KeyError")
                           for m, s in (("dense", 0.0), ("snip", 0.5))])
    assert plots.summary(failed).empty
    assert plots.summary(pd.concat([failed, rows()])).equals(plots.summary(rows()))   # failed rows are left out
