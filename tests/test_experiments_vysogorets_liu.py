"""The Vysogorets & Kempe and Liu et al. scripts end to end on a real local Ray cluster, each with its smallest
grid (--preset smoke: one seed, one sparsity, one epoch); every script's outputs hold what its figure plots.
The Vysogorets scripts share their studies, the Liu scripts theirs, as they do at full size. The paper presets
cannot run here (no CIFAR or ImageNet, no GPU): their grids are expanded and checked against the papers."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray

from raysweep import pruning, sweep, training

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import liu_appendix  # noqa: E402
import liu_fig1_2  # noqa: E402
import liu_fig3  # noqa: E402
import liu_fig4  # noqa: E402
import liu_fig5  # noqa: E402
import liu_fig6  # noqa: E402
import liu_fig7  # noqa: E402
import liu_fig8_9  # noqa: E402
import liu_fig10_11  # noqa: E402
import liu_fig12_13  # noqa: E402
import liu_fig14  # noqa: E402
import vysogorets_fig3  # noqa: E402
import vysogorets_fig4  # noqa: E402
import vysogorets_fig5  # noqa: E402
import vysogorets_fig7  # noqa: E402
import vysogorets_fig8  # noqa: E402
import vysogorets_fig9  # noqa: E402
import vysogorets_fig10  # noqa: E402

TRAINED = [vysogorets_fig4, vysogorets_fig5, vysogorets_fig8, vysogorets_fig9]
STRUCTURE = [vysogorets_fig3, vysogorets_fig7, vysogorets_fig10]
SCRIPTS = [*STRUCTURE, *TRAINED, liu_fig1_2, liu_fig3, liu_fig4, liu_appendix, liu_fig5, liu_fig6, liu_fig7,
           liu_fig8_9, liu_fig10_11, liu_fig12_13, liu_fig14]
SPARSITY = vysogorets_fig3.EMBEDDED_SPARSITIES[1]
SMOKE = (vysogorets_fig3.EMBEDDED_MODEL, vysogorets_fig3.DIGITS, 10, [SPARSITY])
LENET = 64 * 300 + 300 * 100 + 100 * 10   # prunable weights of LeNet-300-100 on 8x8 digits


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Script name -> (the frame main() returned, its output directory); all scripts run once."""
    storage = tmp_path_factory.mktemp("runs")
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        # The union of the Vysogorets scripts' grids in one Tune run per study first (the scripts then find every
        # trial they need done): three Tune starts instead of seven on this small machine.
        trained = [g for s in TRAINED for g in s.grids(*SMOKE)]
        for spec in vysogorets_fig3.studies("smoke", str(storage), None, lambda *_: trained).values():
            sweep.run_study(spec[0], verbose=0)
        measured = [g for s in STRUCTURE for g in s.grids(*SMOKE)]
        seeds = vysogorets_fig3.FIG3_SEEDS["smoke"][0]
        for specs in vysogorets_fig3.structure_studies("smoke", str(storage), None, lambda *_: measured,
                                                       seeds=seeds).values():
            for spec in specs:
                sweep.run_study(spec, verbose=0)
        # likewise the Liu scripts' grids on their shared ResNet-8-4 study (Figures 1-9 and 14)
        shared = liu_fig1_2.study("smoke", "cifar_resnet_8_4", str(storage), None, quotas=liu_fig8_9.QUOTAS)
        blocks = [*shared.grids[:-1], sweep.Grid(methods=["random"], quotas=liu_fig6.RATIOS, sparsities=[0.5]),
                  *liu_fig14.grids("smoke")]
        sweep.run_study(liu_fig1_2.study("smoke", "cifar_resnet_8_4", str(storage), None, grids=blocks), verbose=0)
        runs = {}
        for script in SCRIPTS:
            frame = script.main(["--preset", "smoke", "--storage", str(storage)])
            runs[script.SCRIPT] = (frame, storage / script.SCRIPT)
        runs["storage"] = storage
        yield runs
    finally:
        ray.shutdown()


def layers(row) -> pd.Series:
    """A row's layer sparsities (Parquet gives the map back as (layer, sparsity) pairs)."""
    return pd.Series(dict(row["layer_sparsities"]))


def saved(outputs, name, file="results.parquet") -> pd.DataFrame:
    frame, directory = outputs[name]
    for png in [p for p in directory.iterdir() if p.suffix == ".png"] or [directory / f"{name}.png"]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    return pd.read_parquet(directory / file)


# ------------------------------------------------------------------------------------ Vysogorets & Kempe, smoke


@pytest.mark.ray
def test_fig3_effective_against_direct_compression_of_the_seeds_that_disconnect_last(outputs):
    every = saved(outputs, "vysogorets_fig3")
    plotted = saved(outputs, "vysogorets_fig3", "plotted.parquet")
    lines = {"random (uniform)", "SNIP", "SNIP-iterative", "GraSP", "SynFlow", "magnitude (after training)", "LAMP"}
    assert set(every["line"]) == set(plotted["line"]) == lines
    total, keep = vysogorets_fig3.FIG3_SEEDS["smoke"]
    assert (every.groupby("line")["seed"].nunique() == total).all()
    assert (plotted.groupby("line")["seed"].nunique() == keep).all()
    assert (every["status"] == "completed").all() and (every["sparsity"] == SPARSITY).all()
    # Table 1's networks: BatchNorm LeNet, Kaiming normal fan-avg
    assert set(every["model"]) == {"lenet_300_100_bn"} and set(every["init"]) == {"kaiming_normal_fan_avg"}
    # masks only: one step (the engine's least) after pruning at initialisation, none after pruning the trained network
    at_init = every[every["prune_at"] == "init"]
    assert set(at_init["hp_training_steps"]) == {"1it"} and (at_init["steps"] == 1).all()
    after = every[every["prune_at"] == "end"]
    assert set(after["retrain"]) == {"remaining"} and set(after["method"]) == {"magnitude"}
    # ... and the trained networks are the accuracy study's (the same dense runs)
    trained = saved(outputs, "vysogorets_fig4")
    assert set(after["dense_id"]) >= set(trained.loc[trained["method"] == "dense", "dense_id"])
    # direct sparsity is the target; removing inactive weights can only add to it
    assert np.allclose(every["sparsity_direct"], SPARSITY, atol=1 / LENET)
    assert (every["sparsity_effective"] >= every["sparsity_direct"] - 1e-12).all()
    # SynFlow's iterative pruning leaves (almost) nothing inactive (Vysogorets section 3)
    synflow = every[every["line"] == "SynFlow"]
    assert (synflow["sparsity_effective"] - synflow["sparsity_direct"] < 0.002).all()
    # the structure studies measure the same masks as the trained study: LAMP's and magnitude's at seed 0
    for line in ("LAMP", "magnitude (after training)", "SynFlow"):
        mine = every[(every["line"] == line) & (every["seed"] == 0)].iloc[0]
        theirs = trained[(trained["line"] == f"{line} (direct)") & (trained["seed"] == 0)].iloc[0]
        assert mine["sparsity_effective"] == theirs["sparsity_effective"], line


def test_fig3_keeps_the_seeds_whose_subnetworks_disconnect_last():
    inf = float("inf")
    rows = []
    # seed -> effective compression at sparsities 0.9, 0.99, 0.999 (inf: disconnected)
    for seed, values in {0: (10, inf, inf), 1: (10, 100, inf), 2: (10, 100, 1000), 3: (10, 100, inf),
                         4: (inf, inf, inf)}.items():
        rows += [dict(panel="p", line="SNIP", seed=seed, sparsity=s, compression_effective=v)
                 for s, v in zip((0.9, 0.99, 0.999), values)]
    rows += [dict(panel="p", line="SynFlow", seed=seed, sparsity=0.9, compression_effective=10.0) for seed in range(5)]
    chosen = vysogorets_fig3.disconnect_last(pd.DataFrame(rows), 3)
    # never disconnects (2), then at 0.999 (1 and 3); SynFlow never disconnects: the first three seeds
    assert set(chosen.loc[chosen["line"] == "SNIP", "seed"]) == {1, 2, 3}
    assert set(chosen.loc[chosen["line"] == "SynFlow", "seed"]) == {0, 1, 2}
    assert set(vysogorets_fig3.disconnect_last(pd.DataFrame(rows), 1).query("line == 'SNIP'")["seed"]) == {2}


@pytest.mark.ray
def test_fig4_plots_each_run_against_both_compressions(outputs):
    frame, _ = outputs["vysogorets_fig4"]
    saved(outputs, "vysogorets_fig4")
    direct = frame[frame["line"].str.endswith("(direct)")].set_index("trial_id")
    effective = frame[frame["line"].str.endswith("(effective)")].set_index("trial_id")
    assert set(direct.index) == set(effective.index) and len(direct) == 7
    assert np.allclose(direct["compression"], direct["compression_direct"])
    assert np.allclose(effective.loc[direct.index, "compression"], direct["compression_effective"])
    assert (frame.loc[frame["line"] == "dense", "compression"] == 1).all()
    assert (frame["steps"] > 0).all()   # trained


@pytest.mark.ray
def test_fig5_random_pruning_keeps_each_methods_layer_quotas(outputs):
    df = saved(outputs, "vysogorets_fig5")
    rows = {r["line"]: r for _, r in df.iterrows()}
    for method, name in (("snip", "SNIP"), ("grasp", "GraSP"), ("synflow", "SynFlow")):
        original, random = rows[name], rows[vysogorets_fig5.NAMES[f"random [ratio:{method}]"]]
        layers_o, layers_r = layers(original), layers(random)
        assert np.allclose(layers_o, layers_r[layers_o.index], atol=1e-9), method


@pytest.mark.ray
def test_fig7_layer_quotas_add_up_to_the_network_sparsity(outputs):
    layers = saved(outputs, "vysogorets_fig7", "layer_quotas.parquet")
    shares = vysogorets_fig7.layer_shares("lenet_300_100_bn", "digits")
    assert set(layers["panel"]) == {f"lenet_300_100_bn: {s}" for s in ("SynFlow", "IGQ", "LAMP")}
    for _, part in layers.groupby(["panel", "seed", "sparsity"]):
        total = sum(shares[r["layer"]] * r["layer_sparsity"] for _, r in part.iterrows())
        assert total == pytest.approx(SPARSITY, abs=1e-4)
    igq = layers[layers["panel"].str.endswith("IGQ")].set_index("layer")["layer_sparsity"]
    # IGQ prunes larger layers harder
    assert list(igq.sort_values().index) == sorted(shares, key=shares.get)


@pytest.mark.ray
def test_fig8_random_pruning_under_quotas(outputs):
    df = saved(outputs, "vysogorets_fig8")
    assert set(df["line"]) == {"dense", "Uniform", "ERK", "IGQ", "SynFlow quotas", "SynFlow (original)"}
    # Uniform+ keeps the first layer dense and cannot reach 99% on LeNet-300-100: left out, not run
    assert not (df["quota"] == "uniform_plus").any()
    assert set(df.loc[df["line"] == "ERK", "quota"]) == {"erk_plain"}   # the paper's ERK, no redistribution
    uniform = layers(df[df["line"] == "Uniform"].iloc[0])
    assert np.allclose(uniform, SPARSITY, atol=1e-3)


@pytest.mark.ray
def test_fig9_magnitude_after_training_rewound_under_quotas(outputs):
    df = saved(outputs, "vysogorets_fig9")
    pruned = df[df["method"] != "dense"]
    assert (pruned["method"] == "ltr").all() and (pruned["prune_at"] == "init").all()
    assert set(pruned["quota"]) == {"uniform", "erk_plain", "igq", "global", "ratio:lamp"}
    assert set(pruned["line"]) == {"Uniform", "ERK", "IGQ", "global magnitude", "LAMP"}


@pytest.mark.ray
def test_fig10_effective_pruning_reaches_the_target_with_each_method_as_in_direct_pruning(outputs):
    frame, _ = outputs["vysogorets_fig10"]
    saved(outputs, "vysogorets_fig10")
    assert len(frame) == 10 and set(frame["target"]) == {"direct", "effective"}
    assert {line.split(": ")[0] for line in frame["line"]} == {"GraSP", "SynFlow", "LAMP", "random (IGQ)",
                                                                "random (uniform)"}
    lamp = frame[frame["method"] == "lamp"]
    assert set(lamp["prune_at"]) == {"end"} and set(lamp["retrain"]) == {"remaining"}   # the trained network's
    regular, effective = frame[frame["target"] == "direct"], frame[frame["target"] == "effective"]
    assert np.allclose(regular["sparsity_direct"], SPARSITY, atol=1e-4)
    assert np.allclose(effective["sparsity_effective"], SPARSITY, atol=2e-3)
    assert np.allclose(frame["target_compression"], 1 / (1 - SPARSITY))
    assert all(line.endswith(("regular pruning", "effective pruning")) for line in frame["line"])
    # iterative SynFlow, direct or effective, leaves no inactive weight to speak of
    synflow = frame[frame["method"] == "synflow"]
    assert (synflow["sparsity_effective"] - synflow["sparsity_direct"] < 0.002).all()


# --------------------------------------------------------------------------------------------- Liu et al., smoke


@pytest.mark.ray
def test_liu_fig1_2_accuracy_and_every_metric_per_trial(outputs):
    df = saved(outputs, "liu_fig1_2")
    assert set(df["line"]) == {"dense", "ERK", "Uniform", "Uniform+", "SNIP ratio"}
    assert (df["data"] == "digits_0to4").all() and (df["status"] == "completed").all()
    for column in ("ece", "fgsm_accuracy", "ood_auroc_digits_5to9"):
        assert df[column].between(0, 1).all(), column
    assert (df["nll"] > 0).all()
    dense = df[df["line"] == "dense"].iloc[0]
    assert dense["sparsity_direct"] == 0 and dense["macs_sparse"] == dense["macs_dense"]
    pruned = df[df["line"] != "dense"]
    assert (pruned["macs_sparse"] < pruned["macs_dense"]).all()


@pytest.mark.ray
def test_liu_metric_figures_read_the_shared_study(outputs):
    base = saved(outputs, "liu_fig1_2").set_index("trial_id")
    ece = saved(outputs, "liu_fig3").set_index("trial_id")
    assert set(ece.index) == set(base.index)   # the same trials: nothing trained twice
    assert np.allclose(ece["ece"], base.loc[ece.index, "ece"])
    frame, directory = outputs["liu_fig4"]
    assert set(frame["panel"]) == {"cifar_resnet_8_4 (digits_0to4): OoD digits_5to9"}
    assert np.allclose(frame["ood_auroc"], frame["ood_auroc_digits_5to9"])
    appendix, directory = outputs["liu_appendix"]
    assert {p.name for p in directory.glob("*.png")} == {"liu_appendix_nll.png", "liu_appendix_fgsm.png"}
    assert appendix[["nll", "fgsm_accuracy"]].notna().all().all()


@pytest.mark.ray
def test_liu_fig5_accuracy_against_parameters_and_flops(outputs):
    frame, _ = outputs["liu_fig5"]
    saved(outputs, "liu_fig5")
    assert set(frame["line"]) == {"Dense cifar_resnet_8_4", "SNIP ratio cifar_resnet_8_4"}
    assert np.allclose(frame["macs"], frame["macs_sparse"] / 1e6)
    sparse = frame[frame["sparsity"] > 0]
    assert (sparse["quota"] == "ratio:snip").all()
    assert sparse["macs"].max() < frame.loc[frame["sparsity"] == 0, "macs"].min()
    # #Param: every parameter of the dense network; the pruned one keeps all but its pruned weights
    total, prunable = liu_fig5.parameter_counts("cifar_resnet_8_4", "digits_0to4")
    from raysweep.models.registry import build
    net = build("cifar_resnet_8_4", 5, (1, 8, 8))
    assert total == sum(p.numel() for p in net.parameters()) and prunable == pruning.Masks.ones(net).num_total()
    assert (frame.loc[frame["sparsity"] == 0, "params"] == total).all()
    row = sparse.iloc[0]
    assert row["params"] == total - round(row["sparsity_direct"] * prunable)
    assert np.allclose(frame["ood_auroc"], frame["ood_auroc_digits_5to9"])


@pytest.mark.ray
def test_liu_fig6_gradient_norm_over_the_first_iterations(outputs):
    frame, _ = outputs["liu_fig6"]
    saved(outputs, "liu_fig6")
    assert set(frame["iteration"]) == set(liu_fig6.ITERATIONS["smoke"])
    assert {line.split(",")[0] for line in frame["line"]} == {"ERK", "SNIP", "Dense"}
    assert (frame["active_grad_norm"] > 0).all() and set(frame["sparsity"]) == {0.0, 0.5}
    assert (frame["steps"] == frame["iteration"]).all()
    # the legend's final accuracy is the full run's, which liu_fig1_2's study holds
    full = liu_fig1_2.study("smoke", "cifar_resnet_8_4", str(outputs["storage"]), None, quotas=liu_fig6.RATIOS,
                            sparsities=[0.5])
    done = sweep.run_study(full, verbose=0).frame
    erk = done[(done["quota"] == "erk") & (done["sparsity"] == 0.5)]["accuracy"].mean()
    assert any(line == f"ERK, final accuracy {100 * erk:.2f}%" for line in frame["line"])
    # the run of t iterations is the full run's first t: the same hyperparameters but its length
    t = liu_fig6.ITERATIONS["smoke"][0]
    first = frame[(frame["iteration"] == t) & (frame["sparsity"] == 0)].iloc[0]
    last = done[done["sparsity"] == 0].iloc[0]
    assert first["hp_training_steps"] == f"{t}it" and first["dense_id"] != last["dense_id"]
    assert all(first[c] == last[c] for c in ("hp_lr", "hp_batch_size", "hp_augment", "seed", "model", "data"))


@pytest.mark.ray
def test_liu_fig7_accuracy_against_the_width_multiplier(outputs):
    frame, _ = outputs["liu_fig7"]
    saved(outputs, "liu_fig7")
    assert set(frame["width_multiplier"]) == set(liu_fig7.MULTIPLIERS["smoke"]) == {1.0}
    assert set(frame["model"]) == {"cifar_resnet_8_4"} and set(frame["panel"]) == {"ResNet-8"}
    assert set(frame["line"]) == {"Dense", "Sparsity=90%"} and set(frame.loc[frame["sparsity"] > 0, "quota"]) == {"erk"}
    assert set(liu_fig7.networks("embedded")) == {liu_fig1_2.resnet(d, w) for d in (8, 14) for w in (2, 4, 6, 8)}
    # ResNet-8-4's trials are Figure 1's
    base = saved(outputs, "liu_fig1_2")
    assert set(frame["trial_id"]) <= set(base["trial_id"])


@pytest.mark.ray
def test_liu_appendix_accuracy_figures(outputs):
    grasp = saved(outputs, "liu_fig8_9")
    assert set(grasp["line"]) == {"dense", "ERK", "Uniform", "Uniform+", "SNIP ratio", "GraSP ratio"}
    base = saved(outputs, "liu_fig1_2")
    assert set(base["trial_id"]) <= set(grasp["trial_id"])   # only the GraSP ratio is new
    cifar100 = saved(outputs, "liu_fig10_11")
    assert set(cifar100["data"]) == {"digits"} and "ood_auroc_digits_5to9" not in cifar100.columns
    assert set(cifar100["line"]) == {"dense", "ERK", "Uniform", "Uniform+", "SNIP ratio"}
    vgg = saved(outputs, "liu_fig12_13")
    assert set(vgg["model"]) == {"cifar_vgg_11"} and set(vgg["data"]) == {"digits_0to4"}   # smoke: one data set
    assert set(vgg["line"]) == {"dense", "ERK", "SNIP ratio"}
    for frame in (grasp, cifar100, vgg):
        assert (frame["status"] == "completed").all()


@pytest.mark.ray
def test_liu_fig14_last_layer_sparsity_and_dense_equivalents(outputs):
    frame, _ = outputs["liu_fig14"]
    every = saved(outputs, "liu_fig14")
    assert (every["status"] == "completed").all()
    left = frame[frame["panel"].str.contains("last layer")]
    assert set(left["line"]) == {"ERK, last layer fixed", "original ERK"}
    assert np.allclose(left["sparsity_direct"], liu_fig14.OVERALL, atol=1e-3)   # the overall sparsity is kept
    fixed = left[left["line"] == "ERK, last layer fixed"]
    assert np.allclose(fixed["x"], liu_fig14.LAST_LAYER["smoke"], atol=1e-2)   # the last layer where it was put
    right = frame[frame["panel"].str.contains("dense equivalents")]
    assert set(right["line"]) == {"ERK", "SNIP ratio", "ERK+"} and set(right["sparsity"]) == {0.9}
    assert np.allclose(right["x"], right["params"] / 1e6)
    plus = right[right["line"] == "ERK+"].iloc[0]
    assert list(plus["layer_sparsities"].values())[-1] == 0.0   # ERK+: the last layer dense


# ------------------------------------------------------------------------------------------- the paper presets


TABLE_1 = {   # Vysogorets & Kempe, Appendix A, Table 1: epochs, drop epochs, batch, LR, decay
    "vysogorets_mnist_lenet300": (160, (41, 83, 125), 100, 0.1, 5e-4),
    "vysogorets_cifar_lenet5": (307, (76, 153, 230), 128, 0.1, 5e-4),
    "vysogorets_cifar_vgg16": (160, (80, 120), 128, 0.1, 1e-4),
    "vysogorets_cifar100_vgg19": (160, (80, 120), 128, 0.1, 5e-4),
    "vysogorets_tinyimagenet_resnet18": (200, (100, 150), 256, 0.2, 1e-4),
    "vysogorets_imagenet_resnet50": (90, (30, 60, 80), 512, 0.4, 1e-4),
    "vysogorets_imagenet_mobilenetv2": (90, (30, 60, 80), 512, 0.4, 1e-4),
}
AUGMENTATION = {"mnist": "rotate4", "cifar10": "shift4_flip", "cifar100": "shift4_flip", "tinyimagenet": "shift4_flip",
                "imagenet": "random_crop_flip"}   # Appendix A


def test_vysogorets_presets_follow_table_1_and_appendix_a():
    studies = vysogorets_fig3.studies("paper", "/tmp/unused", None, lambda *_: [sweep.Grid(methods=["random"])])
    assert {spec.model for (spec,) in studies.values()} == {"lenet_300_100_bn", "lenet_5_bn", "cifar_vgg_16",
                                                          "cifar_vgg_19", "tiny_resnet_18", "imagenet_resnet_50",
                                                          "mobilenet_v2"}
    for (spec,) in studies.values():
        hp = training.preset(spec.training)
        epochs, drops, batch, lr, decay = TABLE_1[spec.training]
        assert (hp.training_steps, hp.lr_drops) == (f"{epochs}ep", tuple(f"{d}ep" for d in drops)), spec.training
        assert (hp.batch_size, hp.lr, hp.weight_decay, hp.momentum, hp.gamma) == (batch, lr, decay, 0.9, 0.1)
        assert hp.augment == AUGMENTATION[spec.data]
        assert (spec.init, spec.bn_init) == ("kaiming_normal_fan_avg", "ones")
        # "All non-ImageNet runs were repeated 3 times"
        assert len(spec.seeds) == (1 if spec.data == "imagenet" else 3)


def test_vysogorets_paper_grids_leave_out_plain_erk_where_the_paper_calls_it_invalid():
    spec = vysogorets_fig3.studies("paper", "/tmp/unused", None, vysogorets_fig8.grids,
                                   paper=("tiny_resnet_18", "cifar_vgg_19"))
    erk = {s.model: [g.sparsities for g in s.grids if g.quotas == ["erk_plain"]][0] for (s,) in spec.values()}
    grid = vysogorets_fig3.PAPER_SPARSITIES
    # feasible exactly from the first quarter-decade compression at or beyond 98.01% (ResNet-18) and 98.68% (VGG-19)
    assert erk["tiny_resnet_18"] == [s for s in grid if s >= 0.9801]
    assert erk["cifar_vgg_19"] == [s for s in grid if s >= 0.9868]
    assert min(erk["cifar_vgg_19"]) == pytest.approx(0.99)   # "less than ... 99% ... from VGG-19"
    fig9 = vysogorets_fig3.studies("paper", "/tmp/unused", None, vysogorets_fig9.grids, paper=("lenet_300_100_bn",))
    assert "uniform_plus" not in {q for (s,) in fig9.values() for g in s.grids for q in g.quotas}


def test_vysogorets_fig3_paper_preset_measures_five_seeds_without_retraining():
    studies = vysogorets_fig3.structure_studies("paper", "/tmp/unused", None, vysogorets_fig3.grids,
                                                seeds=vysogorets_fig3.FIG3_SEEDS["paper"][0])
    assert len(studies) == 7
    for untrained, after in studies.values():
        assert untrained.seeds == after.seeds == [0, 1, 2, 3, 4]
        assert untrained.hparams["training_steps"] == "1it" and after.retrain == "remaining"
    untrained, after = studies["lenet_300_100_bn (mnist)"]
    trials = sweep.expand(untrained)
    assert {t.method for t in trials} == {"random", "snip", "snip_iterative", "grasp", "synflow"}
    assert len(trials) == 5 * 5 * len(vysogorets_fig3.PAPER_SPARSITIES)
    # the after-training masks come from the accuracy study's dense runs (3 seeds), two more seeds trained for them
    (trained,) = vysogorets_fig3.studies("paper", "/tmp/unused", None, vysogorets_fig4.grids,
                                         paper=("lenet_300_100_bn",))["lenet_300_100_bn (mnist)"]
    dense = {t.dense_id for t in sweep.expand(trained) if t.method == "dense"}
    assert len(dense) == 3 and dense < {t.dense_id for t in sweep.expand(after)}


def test_vysogorets_fig10_ranks_by_grasp_synflow_and_lamp():
    (untrained, after), = vysogorets_fig3.structure_studies("paper", "/tmp/unused", None, vysogorets_fig10.grids,
                                                            paper=("tiny_resnet_18",)).values()
    methods = {(t.method, t.prune_at, t.target) for t in sweep.expand(untrained) + sweep.expand(after)}
    assert {m for m, _, _ in methods} == {"grasp", "synflow", "lamp", "random"}
    assert ("lamp", "end", "effective") in methods and ("synflow", "init", "effective") in methods
    # SynFlow's effective line runs its default 100 rounds, as the direct line does
    assert {t.iterations for t in sweep.expand(untrained) if t.method == "synflow"} == {None}


def test_liu_paper_presets():
    storage = "/tmp/unused"
    # Table 1: CIFAR ResNets and VGGs, ImageNet dense and sparse schedules
    cifar = training.preset("liu_cifar")
    assert (cifar.training_steps, cifar.lr_drops, cifar.batch_size, cifar.lr, cifar.weight_decay) == \
        ("160ep", ("80ep", "120ep"), 128, 0.1, 5e-4)
    dense, sparse = training.preset("liu_imagenet_dense"), training.preset("liu_imagenet_sparse")
    assert (dense.training_steps, dense.lr_drops, dense.batch_size) == ("90ep", ("30ep", "60ep", "80ep"), 768)
    assert (sparse.training_steps, sparse.lr_drops, sparse.batch_size) == ("100ep", ("30ep", "60ep", "90ep"), 768)
    # Figure 5: ImageNet-O for OoD, every metric; #Param from the architecture
    studies = liu_fig5.paper_studies(storage, None)
    for spec in studies.values():
        assert spec.ood == ["imagenet_o"] and "ood_auroc" in spec.metrics and spec.data == "imagenet"
    wide = studies["imagenet_wide_resnet_50 (imagenet)"]
    assert {q for g in wide.grids for q in g.quotas} == {"ratio:snip", "erk_plus"}
    assert wide.sparsities == [0.3, 0.5, 0.7]
    # Figure 7: ResNet-20/32/44 at widths 8, 16, 24, 32 (16 is the standard network, Figure 1's)
    assert set(liu_fig7.networks("paper")) == {liu_fig1_2.resnet(d, w) for d in (20, 32, 44) for w in (8, 16, 24, 32)}
    assert "cifar_resnet_20" in liu_fig7.networks("paper")
    # Figures 10-13: CIFAR-100 ResNets, VGG-11/13/16 on both data sets
    assert liu_fig1_2.study("paper", "cifar_resnet_20", storage, None, data="cifar100").data == "cifar100"
    assert liu_fig12_13.VGGS["paper"] == ["cifar_vgg_11", "cifar_vgg_13", "cifar_vgg_16"]
    # Figure 14: ERK with the last layer at 0.8 ... 0 at 70% overall; ERK, SNIP, ERK+ at 60%, 70%, 85%
    (left, right) = liu_fig14.grids("paper")
    assert left.sparsities == [0.7] and len(left.quotas) == 6 and right.sparsities == [0.6, 0.7, 0.85]
    spec, dense_wide, *equivalents = liu_fig14.studies("paper", storage, None)
    assert spec.name == "liu-imagenet_wide_resnet_50-imagenet"   # Figure 5's study
    assert [s.model for s in equivalents] == ["imagenet_resnet_18", "imagenet_resnet_34", "imagenet_resnet_50"]
    # Figure 6: the first t iterations of Figure 1's runs: no learning-rate drop before the last point
    groups = liu_fig6.groups("paper", storage, None)
    assert len(groups) == 6
    for full, prefixes, sparsity in groups.values():
        hp = training.preset(full[0].training)
        drops = [int(d.removesuffix("ep")) for d in hp.lr_drops]
        epoch = math.ceil(50_000 / 128) if full[0].data == "cifar10" else math.ceil(1_281_167 / 768)
        assert max(int(p.hparams["training_steps"].removesuffix("it")) for p in prefixes) < min(drops) * epoch
        assert {p.metrics[0] for p in prefixes} == {"active_grad_norm"}
