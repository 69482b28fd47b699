"""The Vysogorets & Kempe and Liu et al. scripts end to end on a real local Ray cluster, each with its smallest
grid (--preset smoke: one seed, one sparsity, one epoch); every script's outputs hold what its figure plots.
The Vysogorets scripts share one study, the Liu scripts another, as they do at full size."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray

from raysweep import sweep

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import liu_appendix  # noqa: E402
import liu_fig1_2  # noqa: E402
import liu_fig3  # noqa: E402
import liu_fig4  # noqa: E402
import liu_fig5_flops  # noqa: E402
import vysogorets_fig3  # noqa: E402
import vysogorets_fig4  # noqa: E402
import vysogorets_fig5  # noqa: E402
import vysogorets_fig7  # noqa: E402
import vysogorets_fig8  # noqa: E402
import vysogorets_fig9  # noqa: E402
import vysogorets_fig10  # noqa: E402

SCRIPTS = [vysogorets_fig3, vysogorets_fig4, vysogorets_fig5, vysogorets_fig7, vysogorets_fig8, vysogorets_fig9,
           vysogorets_fig10, liu_fig1_2, liu_fig3, liu_fig4, liu_appendix, liu_fig5_flops]
SPARSITY = vysogorets_fig3.EMBEDDED_SPARSITIES[1]
SMOKE = ("lenet_300_100", vysogorets_fig3.DIGITS, [SPARSITY])


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Script name -> (the frame main() returned, its output directory); all scripts run once."""
    storage = tmp_path_factory.mktemp("runs")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        # The union of the Vysogorets scripts' grids in one Tune run first (the scripts then find every trial they
        # need done): one Tune start instead of six on this small machine.
        union = [g for s in SCRIPTS if s.__name__.startswith("vysogorets") for g in s.grids(*SMOKE)]
        for spec in vysogorets_fig3.studies("smoke", str(storage), None, lambda *_: union).values():
            sweep.run_study(spec, verbose=0)
        runs = {}
        for script in SCRIPTS:
            frame = script.main(["--preset", "smoke", "--storage", str(storage)])
            runs[script.SCRIPT] = (frame, storage / script.SCRIPT)
        yield runs
    finally:
        ray.shutdown()


def saved(outputs, name, file="results.parquet") -> pd.DataFrame:
    frame, directory = outputs[name]
    for png in [p for p in directory.iterdir() if p.suffix == ".png"] or [directory / f"{name}.png"]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    return pd.read_parquet(directory / file)


def test_fig3_effective_against_direct_compression(outputs):
    df = saved(outputs, "vysogorets_fig3")
    pruned = df[df["method"] != "dense"]
    assert set(pruned["line"]) == {"random (uniform)", "SNIP", "SNIP-iterative", "GraSP", "SynFlow",
                                   "magnitude (after training)", "LAMP"}
    assert (pruned["status"] == "completed").all() and (pruned["sparsity"] == SPARSITY).all()
    # direct sparsity is the target; removing inactive weights can only add to it
    n = 64 * 300 + 300 * 100 + 100 * 10
    assert np.allclose(pruned["sparsity_direct"], SPARSITY, atol=1 / n)
    assert (pruned["sparsity_effective"] >= pruned["sparsity_direct"] - 1e-12).all()
    assert np.allclose(pruned["compression_direct"], 1 / (1 - pruned["sparsity_direct"]))
    # SynFlow's iterative pruning leaves (almost) nothing inactive (Vysogorets section 3)
    synflow = pruned[pruned["line"] == "SynFlow"].iloc[0]
    assert synflow["sparsity_effective"] - synflow["sparsity_direct"] < 0.002


def test_fig4_plots_each_run_against_both_compressions(outputs):
    frame, _ = outputs["vysogorets_fig4"]
    saved(outputs, "vysogorets_fig4")
    direct = frame[frame["line"].str.endswith("(direct)")].set_index("trial_id")
    effective = frame[frame["line"].str.endswith("(effective)")].set_index("trial_id")
    assert set(direct.index) == set(effective.index) and len(direct) == 7
    assert np.allclose(direct["compression"], direct["compression_direct"])
    assert np.allclose(effective.loc[direct.index, "compression"], direct["compression_effective"])
    assert (frame.loc[frame["line"] == "dense", "compression"] == 1).all()


def test_fig5_random_pruning_keeps_each_methods_layer_quotas(outputs):
    df = saved(outputs, "vysogorets_fig5")
    rows = {r["line"]: r for _, r in df.iterrows()}
    for method, name in (("snip", "SNIP"), ("grasp", "GraSP"), ("synflow", "SynFlow")):
        original, random = rows[name], rows[vysogorets_fig5.NAMES[f"random [ratio:{method}]"]]
        layers_o, layers_r = pd.Series(json.loads(original["layer_sparsities"])), \
            pd.Series(json.loads(random["layer_sparsities"]))
        assert np.allclose(layers_o, layers_r[layers_o.index], atol=1e-9), method


def test_fig7_layer_quotas_add_up_to_the_network_sparsity(outputs):
    layers = saved(outputs, "vysogorets_fig7", "layer_quotas.parquet")
    shares = vysogorets_fig7.layer_shares("lenet_300_100", "digits")
    assert set(layers["panel"]) == {f"lenet_300_100: {s}" for s in ("SynFlow", "IGQ", "LAMP")}
    for _, part in layers.groupby(["panel", "seed", "sparsity"]):
        total = sum(shares[r["layer"]] * r["layer_sparsity"] for _, r in part.iterrows())
        assert total == pytest.approx(SPARSITY, abs=1e-4)
    igq = layers[layers["panel"].str.endswith("IGQ")].set_index("layer")["layer_sparsity"]
    # IGQ prunes larger layers harder
    assert list(igq.sort_values().index) == sorted(shares, key=shares.get)


def test_fig8_random_pruning_under_quotas(outputs):
    df = saved(outputs, "vysogorets_fig8")
    assert set(df["line"]) == {"dense", "Uniform", "ERK", "IGQ", "SynFlow quotas", "SynFlow (original)"}
    # Uniform+ keeps the first layer dense and cannot reach 99% on LeNet-300-100: left out, not run
    assert not (df["quota"] == "uniform_plus").any()
    uniform = pd.Series(json.loads(df.loc[df["line"] == "Uniform", "layer_sparsities"].iloc[0]))
    assert np.allclose(uniform, SPARSITY, atol=1e-3)


def test_fig9_magnitude_after_training_rewound_under_quotas(outputs):
    df = saved(outputs, "vysogorets_fig9")
    pruned = df[df["method"] != "dense"]
    assert (pruned["method"] == "ltr").all() and (pruned["prune_at"] == "init").all()
    assert set(pruned["quota"]) == {"uniform", "erk", "igq", "global", "ratio:lamp"}
    assert set(pruned["line"]) == {"Uniform", "ERK", "IGQ", "global magnitude", "LAMP"}


def test_fig10_effective_pruning_reaches_the_target(outputs):
    frame, _ = outputs["vysogorets_fig10"]
    saved(outputs, "vysogorets_fig10")
    assert len(frame) == 10 and set(frame["target"]) == {"direct", "effective"}
    regular, effective = frame[frame["target"] == "direct"], frame[frame["target"] == "effective"]
    assert np.allclose(regular["sparsity_direct"], SPARSITY, atol=1e-4)
    assert np.allclose(effective["sparsity_effective"], SPARSITY, atol=2e-3)
    assert np.allclose(frame["target_compression"], 1 / (1 - SPARSITY))
    assert all(line.endswith(("regular pruning", "effective pruning")) for line in frame["line"])


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


def test_liu_fig5_accuracy_against_flops(outputs):
    frame, _ = outputs["liu_fig5_flops"]
    saved(outputs, "liu_fig5_flops")
    assert set(frame["line"]) == {"Dense cifar_resnet_8_4", "SNIP ratio cifar_resnet_8_4"}
    assert np.allclose(frame["macs"], frame["macs_sparse"] / 1e6)
    sparse = frame[frame["sparsity"] > 0]
    assert (sparse["quota"] == "ratio:snip").all()
    assert sparse["macs"].max() < frame.loc[frame["sparsity"] == 0, "macs"].min()
