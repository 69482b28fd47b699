"""The Hayou et al. tables script: its smoke grid run end to end through a real local Ray cluster, its paper preset
checked without data (the networks, initialisations and hyperparameters it runs, and that it runs every number the
paper's tables publish), and the published numbers read from the paper's text."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray
from torch import nn

from raysweep import models, sweep, training
from test_experiments_frankle import number

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
hayou = importlib.import_module("hayou_tables")

pytestmark = pytest.mark.ray
PUBLISHED = Path(__file__).resolve().parents[1] / "raysweep" / "published" / "hayou_tables.csv"


def paper_lines() -> dict[tuple, set]:
    """(network, data, line label) -> the sparsities the paper preset runs it at."""
    out = {}
    for b in hayou.layout("paper")[0]:
        for line, sparsities in b.lines:
            out.setdefault((b.network, b.data, line.label), set()).update(sparsities)
        if b.dense:
            out[(b.network, b.data, hayou.NO_PRUNING)] = {0.0}
    return out


def test_paper_preset_runs_every_published_number():
    runs = paper_lines()
    published = pd.read_csv(PUBLISHED)
    for row in published.itertuples():
        assert row.sparsity in runs.get((row.network, row.dataset, row.line), set()), row
    # and the tables it prints are those of the paper
    names = [t.name.split(" (")[0] for t in hayou.layout("paper")[1]]
    assert names == ["Table 1", "Table 2", "Table 2", "Table 3", "Table 4", "Table 5", "Table 8", "Table 9"]
    assert set(published["figure"]) == set(names)


def test_paper_networks_are_the_widths_and_architectures_the_numbers_imply():
    blocks = {(b.network, b.data): b for b in hayou.layout("paper")[0]}
    built = {}

    def create(name):
        return built.setdefault(name, models.create(name, input_shape=(3, 32, 32)))

    for (network, data), block in blocks.items():
        lines = {line.label: line for line, _ in block.lines}
        if network.startswith("ResNet") and data != "imagenet":
            # Wang et al.'s ResNet-32 width: stages of 32, 64, 128 channels ("twice the standard width")
            for line in lines.values():
                model = create(line.model)
                assert model.conv.out_channels == 32 and model.fc.in_features == 128, line.model
                assert ("stable" in line.model) == (line.label in ("SBP-SR", "GraSP-SR")), line
                assert ("tanh" in line.model) == network.endswith("(tanh)"), line
        if network in ("VGG16", "3xVGG16"):
            for line in lines.values():   # no BatchNorm: the rescaling is not divided out again
                model = create(line.model)
                assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
            assert lines["EOC + rescaling"].init == "eoc" and lines["EOC + rescaling"].rescale
            assert lines["snip"].init == "kaiming_normal" and not lines["snip"].rescale
    table4 = [blocks[(f"V-CNN L={d}", "mnist")] for d in (10, 50, 100)]
    for depth, block in zip((10, 50, 100), table4):
        settings = {line.label: (line.model, line.init, line.rescale, s) for line, s in block.lines}
        assert settings == {"Ordered phase init": (f"vanilla_cnn_{depth}_128", "ordered_relu", False, [0.5]),
                            "EOC init": (f"vanilla_cnn_{depth}_128", "eoc", False, [0.5]),
                            "EOC + rescaling": (f"vanilla_cnn_{depth}_128", "eoc", True, [0.5])}
    sbp = {line.label: line for line, _ in blocks[("ResNet50", "imagenet")].lines}["SBP-SR"]
    assert sbp.model == "stable_imagenet_resnet_50"
    tanh = {line.label: line for line, _ in blocks[("ResNet32 (tanh)", "cifar10")].lines}["SBP-SR"]
    assert tanh.init == "eoc_tanh"


def test_paper_hyperparameters_are_wang_et_als():
    # github.com/alecwangcq/GraSP configs: cifar10/resnet32 and cifar100/resnet32 batch 128, 160 epochs, lr 0.1,
    # wd 1e-4; cifar10/vgg19 wd 5e-4; tiny_imagenet/resnet32 300 epochs; 10x drops at 1/2 and 3/4 of training.
    expected = {"wang_cifar_resnet": (128, 0.1, 1e-4, "160ep", ("80ep", "120ep")),
                "wang_cifar_vgg": (128, 0.1, 5e-4, "160ep", ("80ep", "120ep")),
                "wang_tinyimagenet_resnet": (128, 0.1, 1e-4, "300ep", ("150ep", "225ep"))}
    for name, values in expected.items():
        hp = training.preset(name)
        assert (hp.batch_size, hp.lr, hp.weight_decay, hp.training_steps, hp.lr_drops) == values
        assert (hp.momentum, hp.gamma) == (0.9, 0.1)
    trainings = {(b.network, b.data): b.training for b in hayou.layout("paper")[0]}
    assert trainings[("ResNet32", "cifar100")] == "wang_cifar_resnet"
    assert trainings[("ResNet104", "tinyimagenet")] == "wang_tinyimagenet_resnet"
    assert trainings[("ResNet50", "imagenet")] == "frankle_imagenet_resnet50"
    specs = [spec for specs in hayou.studies("paper", "runs", None).values() for spec, _ in specs]
    assert all(spec.gpus_per_worker == 1 for spec in specs)
    assert sum(len(sweep.expand(spec)) for spec in specs) > 600


def test_table_puts_the_unpruned_network_in_the_first_column_and_table4_by_depth():
    rows = [("ResNet8-4", "digits", hayou.NO_PRUNING, 0.0, 0.95), ("ResNet8-4", "digits", hayou.NO_PRUNING, 0.0, 0.97),
            ("ResNet8-4", "digits", "snip", 0.9, 0.90), ("ResNet8-4", "digits", "snip", 0.95, 0.80),
            ("V-CNN L=2", "digits", "EOC init", 0.5, 0.7), ("V-CNN L=12", "digits", "EOC init", 0.5, 0.1)]
    frame = pd.DataFrame(rows, columns=["network", "data", "line", "sparsity", "accuracy"]).assign(status="completed")
    t2 = hayou.table(frame, hayou.Table("T2", [("ResNet8-4", "digits")], [hayou.NO_PRUNING, "snip"], [0.9, 0.95]))
    assert t2.loc[("ResNet8-4", hayou.NO_PRUNING)].tolist() == [f"96.00 ± {100 * math.sqrt(2e-4):.2f}", "-"]
    assert t2.loc[("ResNet8-4", "snip")].tolist() == ["90.00 ± 0.00", "80.00 ± 0.00"]
    t4 = hayou.table(frame, hayou.Table("T4", [("V-CNN L=2", "digits"), ("V-CNN L=12", "digits")], ["EOC init"],
                                        [0.5], by_network=True))
    assert list(t4.columns) == ["V-CNN L=2", "V-CNN L=12"]
    assert t4.loc["EOC init"].tolist() == ["70.00 ± 0.00", "10.00 ± 0.00"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    storage = tmp_path_factory.mktemp("hayou")
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        frame = hayou.main(["--preset", "smoke", "--storage", str(storage)])
    finally:
        ray.shutdown()
    return storage, frame


def test_smoke_runs_every_kind_of_line(smoke):
    storage, frame = smoke
    assert set(frame["status"]) == {"completed"}, frame[["method", "status", "error"]]
    lines = {r["line"]: (r["model"], r["init"], bool(r["rescale"]), r["method"]) for _, r in frame.iterrows()}
    assert lines == {"Ordered phase init": ("vanilla_cnn_2_8", "ordered_relu", False, "snip"),
                     "EOC init": ("vanilla_cnn_2_8", "eoc", False, "snip"),
                     "EOC + rescaling": ("vanilla_cnn_2_8", "eoc", True, "snip")}
    # EOC init and EOC + rescaling prune the same network (same seed and scores): the same masks; the ordered
    # phase's other initial weights give others
    by_line = frame.set_index("line")["layer_sparsities"]
    assert by_line["EOC init"] == pytest.approx(by_line["EOC + rescaling"])
    assert by_line["EOC init"] != pytest.approx(by_line["Ordered phase init"])
    text = (storage / "hayou_tables" / "tables.txt").read_text()
    for table in hayou.layout("smoke")[1]:
        block = text.split(table.name, 1)[1].split("\n\n", 1)[0]
        for line in table.lines:   # every line of every table has a number
            cells = [c for c in block.splitlines() if c.startswith(line) or f" {line} " in f" {c} "]
            assert cells and "±" in cells[0], (table.name, line)


def test_published_hayou_numbers_read_by_hand_from_the_tables():
    frame = pd.read_csv(PUBLISHED).fillna({"doubt": ""})
    assert number(frame, figure="Table 1", network="ResNet104", line="SBP-SR", sparsity=0.999) == (72.70, 0.48)
    assert number(frame, figure="Table 2", network="ResNet32", dataset="cifar100", line="random",
                  sparsity=0.9) == (63.13, 2.94)
    assert number(frame, figure="Table 2", network="ResNet50", dataset="cifar100", line="synflow",
                  sparsity=0.98) == (63.95, 0.11)
    assert number(frame, figure="Table 2", network="ResNet32", dataset="cifar10", line="GraSP-SR",
                  sparsity=0.98) == (87.8, 0.32)
    assert number(frame, figure="Table 2", network="ResNet50", dataset="cifar100", line="no pruning",
                  sparsity=0.0)[0] == 74.9
    assert number(frame, figure="Table 3", network="ResNet50", line="grasp", sparsity=0.95) == (52.5, 0.41)
    assert number(frame, figure="Table 4", network="V-CNN L=50", line="EOC init", sparsity=0.5) == (98.75, 0.11)
    assert number(frame, figure="Table 4", network="V-CNN L=100", line="Ordered phase init",
                  sparsity=0.5) == (10.0, 0.0)
    assert number(frame, figure="Table 5", network="VGG16", line="EOC + rescaling", sparsity=0.95) == (92.70, 0.06)
    assert number(frame, figure="Table 5", network="3xVGG16", line="snip", sparsity=0.95) == (92.85, 0.15)
    assert number(frame, figure="Table 8", network="ResNet50", line="SBP-SR", sparsity=0.95)[0] == 62.66
    assert number(frame, figure="Table 9", network="ResNet50 (tanh)", line="snip", sparsity=0.9) == (89.55, 0.1)
    # doubtful: Table 8 has no confidence intervals; two of Table 9's stds are garbled ("(008)", "(0.0.55)")
    assert (frame.loc[frame["figure"] == "Table 8", "doubt"] != "").all()
    garbled = frame[(frame["figure"] == "Table 9") & (frame["doubt"] != "")]
    assert sorted(garbled["mean"]) == [80.09, 85.47] and garbled["std"].isna().all()
    assert (frame.loc[frame["figure"].isin(["Table 1", "Table 2", "Table 3", "Table 4", "Table 5"]), "doubt"]
            == "").all()
    assert frame[frame["line"] == "obd"].empty
