"""The Frankle et al. and Hayou et al. experiment scripts, each run end to end on its smoke grid (one seed, one
sparsity, one epoch of digits) through a real local Ray cluster; the outputs must hold what the figure or table
shows."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray

from raysweep import data, models, pruning, sweep

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))


def script(name):
    return importlib.import_module(name)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def smoke(name, storage):
    return script(name).main(["--preset", "smoke", "--storage", str(storage)])


def finished(frame):
    assert set(frame["status"]) == {"completed"}, frame[["method", "status", "error"]]
    return frame


def keys(frame, *columns):
    return set(map(tuple, frame[list(columns)].itertuples(index=False)))


def png(path: Path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def test_matching_sparsity_is_the_highest_sparsity_matching_the_dense_mean_minus_its_std():
    common = script("common")
    rows = [("dense", "init", 0.0, 0.90), ("dense", "init", 0.0, 0.92)]   # mean 0.91, std 0.01414
    rows += [("magnitude", "end", s, a) for s, a in [(0.2, 0.93), (0.5, 0.897), (0.8, 0.895), (0.9, 0.80)]]
    rows += [("snip", "init", 0.9, 0.99)]   # not magnitude after training: ignored
    frame = pd.DataFrame(rows, columns=["method", "prune_at", "sparsity", "accuracy"]).assign(status="completed")
    assert common.matching_sparsity(frame) == 0.5   # bar 0.91 - 0.01414 = 0.89586: 0.897 passes, 0.895 fails
    frame.loc[4, "accuracy"] = 0.8959
    assert common.matching_sparsity(frame) == 0.8
    frame.loc[frame["method"] == "magnitude", "accuracy"] = 0.5
    assert common.matching_sparsity(frame) == 0.2   # none matches: the lowest sparsity
    with pytest.raises(ValueError, match="dense"):
        common.matching_sparsity(frame[frame["method"] != "dense"])


def test_fig2_best_variants(tmp_path):
    frame = finished(smoke("frankle_fig2", tmp_path))
    assert keys(frame, "method", "ablation", "prune_at") == {
        ("dense", "none", "init"), ("random", "none", "init"), ("magnitude", "none", "init"),
        ("snip", "none", "init"), ("grasp_magnitude", "none", "init"), ("synflow", "shuffle", "init"),
        ("magnitude", "none", "end")}
    saved = pd.read_parquet(tmp_path / "frankle_fig2" / "results.parquet")
    assert sorted(saved["trial_id"]) == sorted(frame["trial_id"])
    png(tmp_path / "frankle_fig2" / "frankle_fig2.png")


def test_fig5_every_ablation_of_every_method(tmp_path):
    frame = finished(smoke("frankle_fig5", tmp_path))
    pruned = frame[frame["method"] != "dense"]
    methods = script("frankle_fig5").methods("smoke")
    assert keys(pruned, "method", "ablation") == {(m, a) for m in methods
                                                  for a in ("none", "shuffle", "reinit", "invert", "init_normal")}
    # shuffling keeps each layer's sparsity, so the shuffled masks have the unmodified method's layer sparsities
    for method in methods:
        by = {r["ablation"]: r["layer_sparsities"] for _, r in pruned[pruned["method"] == method].iterrows()}
        assert by["shuffle"] == pytest.approx(by["none"])
    png(tmp_path / "frankle_fig5" / "frankle_fig5_lenet_300_100.png")


def test_fig6_and_fig11_share_one_study_at_the_highest_matching_sparsity(tmp_path):
    curves = smoke("frankle_fig6", tmp_path)
    out6 = tmp_path / "frankle_fig6"
    rows = finished(pd.read_parquet(out6 / "results.parquet"))
    matching = curves["sparsity"].iloc[0]
    assert set(curves["line"]) == {"random", "magnitude", "snip", "grasp", "synflow", "synflow (shuffle)"}
    for line, curve in curves.groupby("line"):
        curve = curve.sort_values("threshold")
        assert curve["fraction"].iloc[0] == 1.0                    # every neuron has sparsity >= 0
        assert (curve["fraction"].diff().dropna() <= 0).all()       # fewer neurons as the bar rises
        trial = rows[rows["trial_id"] == curve["trial_id"].iloc[0]].iloc[0]
        assert curve["fraction"].iloc[-1] == pytest.approx(trial["neuron_collapse"])
        assert trial["sparsity"] == matching
    png(out6 / "frankle_fig6.png")

    layers = smoke("frankle_fig11", tmp_path)
    out11 = tmp_path / "frankle_fig11"
    assert pd.read_csv(out11 / "studies.csv")["ran"].tolist() == [0]   # everything came from fig6's study
    assert set(layers["line"]) == set(curves["line"]) | {"magnitude after training"}
    model = models.create("lenet_300_100", input_shape=data.get("digits").input_shape)
    sizes = {name: p.numel() for name, p in pruning.prunable(model).items()}
    assert list(layers.drop_duplicates("layer").sort_values("order")["layer"]) == list(sizes)
    for line, table in layers.groupby("line"):   # global pruning: the size-weighted layer sparsities give s
        pruned = sum(sizes[r["layer"]] * r["layer_sparsity"] for _, r in table.iterrows())
        assert pruned / sum(sizes.values()) == pytest.approx(matching, abs=1e-3), line
    png(out11 / "frankle_fig11.png")


def test_fig7_prunes_at_every_step_from_one_dense_run_per_seed(tmp_path):
    frame = finished(smoke("frankle_fig7", tmp_path))
    fig7 = script("frankle_fig7")
    at_matching = frame[frame["method"].isin(fig7.METHODS) & (frame["prune_at"].isin(["init", "5it"]))]
    matching = at_matching.loc[at_matching["method"] == "synflow", "sparsity"].iloc[0]
    assert keys(at_matching[at_matching["sparsity"] == matching], "method", "prune_at") == {
        (m, w) for m in fig7.METHODS for w in ("init", "5it")}
    studies = pd.read_csv(tmp_path / "frankle_fig7" / "studies.csv")
    assert studies["dense_trainings"].tolist() == [1]   # one seed: one dense run, every step's weights saved
    assert len(list((tmp_path / "dense").iterdir())) == 1
    png(tmp_path / "frankle_fig7" / "frankle_fig7.png")


def test_fig8_baselines(tmp_path):
    frame = finished(smoke("frankle_fig8", tmp_path))
    # the digits preset rewinds to step 0: LTR keeps the trained mask and the initial weights
    assert keys(frame, "method", "prune_at") == {("dense", "init"), ("random", "init"), ("magnitude", "init"),
                                                  ("magnitude", "end"), ("ltr", "init")}
    png(tmp_path / "frankle_fig8" / "frankle_fig8.png")


def test_hayou_tables(tmp_path):
    frame = finished(smoke("hayou_tables", tmp_path))
    sr = frame[frame["rescale"]]
    assert set(sr["model"]) == {"stable_resnet_8_4"} and set(sr["sparsity"]) == {0.9}
    assert set(sr["init"]) == {"eoc"} and set(sr["method"]) == {"snip"}
    text = (tmp_path / "hayou_tables" / "tables.txt").read_text()
    hayou = script("hayou_tables")
    for table in hayou.layout("smoke")[1]:
        block = text.split(table.name, 1)[1].split("\n\n", 1)[0]
        for line in table.lines:   # every line of every table has a number at every sparsity
            cells = [c for c in block.splitlines() if f" {line} " in f" {c} "]
            assert cells and "±" in cells[0], (table.name, line)
    assert "Table 1" in text and "Table 2" in text and "SBP-SR" in text


PUBLISHED = Path(__file__).resolve().parents[1] / "raysweep" / "published"
PAPERS = Path("/work/shared/papers")


def published(name):
    return pd.read_csv(PUBLISHED / name)


def number(frame, **where):
    rows = frame
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, where
    return rows.iloc[0]["mean"], rows.iloc[0]["std"]


def test_published_frankle_numbers_read_by_hand_from_appendix_h():
    frame = published("frankle_appendix_h.csv")
    assert number(frame, figure="Figure 2", network="cifar_resnet_20", line="snip", sparsity=0.982) == (77.2, 0.2)
    assert number(frame, figure="Figure 2", network="cifar_vgg_16", line="synflow (shuffle)",
                  sparsity=0.2) == (93.6, 0.2)
    assert number(frame, figure="Figure 2", network="cifar_resnet_20", line="magnitude after training",
                  sparsity=0.9775) == (79.4, 0.3)
    assert number(frame, figure="Figure 5", network="imagenet_resnet_18", method="magnitude", ablation="invert",
                  sparsity=0.5904) == (45.5, 0.4)
    assert number(frame, figure="Figure 5", network="cifar_resnet_20", line="magnitude (init_normal)",
                  sparsity=0.0) == (91.8, 0.2)
    # left out: the TinyImageNet table of Figure 2 (VGG-16's numbers) and garbled headers (GraSP on ResNet-20)
    assert frame[(frame["figure"] == "Figure 2") & (frame["network"] == "imagenet_resnet_18")].empty
    assert frame[(frame["network"] == "cifar_resnet_20") & (frame["method"] == "grasp")].empty
    # the sparsities are the scripts' own 1 - 0.8^k
    assert set(frame["sparsity"]) <= set(script("common").FRANKLE_SPARSITIES)


def test_published_hayou_numbers_read_by_hand_from_the_tables():
    frame = published("hayou_tables.csv")
    assert number(frame, figure="Table 1", network="ResNet104", line="SBP-SR", sparsity=0.999) == (72.70, 0.48)
    assert number(frame, figure="Table 2", network="ResNet32", dataset="cifar100", line="random",
                  sparsity=0.9) == (63.13, 2.94)
    assert number(frame, figure="Table 2", network="ResNet50", dataset="cifar100", line="synflow",
                  sparsity=0.98) == (63.95, 0.11)
    assert number(frame, figure="Table 3", network="ResNet50", line="grasp", sparsity=0.95) == (52.5, 0.41)
    assert number(frame, figure="Table 5", network="VGG16", line="EOC + rescaling", sparsity=0.95) == (92.70, 0.06)
    assert number(frame, figure="Table 5", network="3xVGG16", line="snip", sparsity=0.95) == (92.85, 0.15)
    # every line the table script prints is a line label of the published file, and vice versa for its methods
    assert {"random", "magnitude", "snip", "grasp", "synflow", "SBP-SR", "EOC + rescaling"} <= set(frame["line"])


@pytest.mark.skipif(not PAPERS.is_dir(), reason="the papers' text is not on this machine")
def test_published_files_are_what_the_parser_makes_of_the_papers():
    parser = script("published_numbers")
    for name, frame in parser.tables(PAPERS).items():
        assert (PUBLISHED / name).read_text() == parser.csv_text(frame), name


def test_fig4_default_runs_fashion_mnist_when_it_can_be_had_and_digits_otherwise(tmp_path, capsys):
    from test_data import write_idx_set
    fig4 = script("fig4")
    write_idx_set(tmp_path / "data" / "FashionMNIST" / "raw", gz=True)
    (title, spec), = fig4.studies("embedded", str(tmp_path / "runs"), str(tmp_path / "data"), download=False).items()
    assert (spec.model, spec.data, spec.data_root, spec.seeds) == ("lenet_300_100", "fashion_mnist",
                                                                   str(tmp_path / "data"), [0, 1])
    assert "fashion_mnist" in title and "running on fashion_mnist" in capsys.readouterr().out
    assert spec.sparsities == [0.7379, 0.8926, 0.956, 0.982, 0.9908]   # 1 - 0.8^k, k = 6, 10, 14, 18, 21
    trials = sweep.expand(spec)
    assert len(trials) == 2 * (1 + 6 * 5)                              # per seed: dense + 6 lines x 5 sparsities
    empty = tmp_path / "empty"
    (title, spec), = fig4.studies("embedded", str(tmp_path / "runs"), str(empty), download=False).items()
    assert spec.data == "digits" and "digits" in title and not empty.exists()
    assert "running scikit-learn digits instead" in capsys.readouterr().out


def test_fig4_smoke(tmp_path, capsys):
    frame = finished(smoke("fig4", tmp_path))
    assert keys(frame, "method", "prune_at") == {("dense", "init"), ("magnitude", "end"), *(
        (m, "init") for m in ("random", "magnitude", "snip", "grasp", "synflow"))}
    assert "fig4: data digits (scikit-learn, 8x8)" in capsys.readouterr().out
    png(tmp_path / "fig4" / "fig4.png")
