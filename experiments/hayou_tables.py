"""Hayou et al. (2021), Tables 1-5, 8 and 9, printed as tables of test accuracy, mean ± std over seeds.

SBP-SR is SNIP on a Stable ResNet (residual branches scaled by 1/sqrt(#blocks)) initialised on the Edge of Chaos
(EOC), its kept weights rescaled back onto the EOC after pruning; GraSP-SR is GraSP in its place. They are compared
with random, magnitude (MBP), SNIP, GraSP and SynFlow pruning of the standard ResNet (Tables 1-3, 8), and with the
unpruned network (Table 2's "NO PRUNING"). Table 4 isolates the initialisation and the rescaling on a vanilla CNN;
Table 5 compares EOC + rescaling with SNIP and SynFlow on VGGs; Table 9 repeats Table 1 with tanh activations.

    python experiments/hayou_tables.py                  # embedded: scikit-learn digits, small networks
    python experiments/hayou_tables.py --preset paper   # the networks and data sets below

What the paper preset runs, and why (the paper's text has its tables only, no architectures or hyperparameters):
- ResNet32/50/104 are ResNets of first-stage width 32 (models cifar_resnet_D_32, stable_resnet_D_32), the width of
  Wang et al.'s GraSP ResNet-32 that Frankle et al. call WRN-32-2 ("Wang et al. use twice the standard width"):
  Table 2's "ResNet32 (NO PRUNING) 94.80" is that network's "Reported 94.8%" (Frankle, Tables 3 and 5), and Table 2's
  SNIP and GraSP rows at 90/95/98% lie within 0.3 points of the numbers Frankle reprints from Wang et al. The
  CIFAR-10/100 and TinyImageNet tables train with Wang et al.'s published settings (training presets wang_*).
- Table 4, "Test accuracy on MNIST with V-CNN for different depths with sparsity 50% using SBP(SNIP)": a plain
  CNN of depth L = 10, 50, 100 (vanilla_cnn_L_128, no BatchNorm, no skips) initialised in the ordered phase
  (init ordered_relu), on the EOC (eoc), and on the EOC with rescaling after pruning.
- Table 5, "EOC + RESCALING" against SNIP and SynFlow on VGG16 and 3xVGG16: the VGGs without BatchNorm
  (cifar_vgg_16_nobn, cifar_vgg_16x3_nobn; 3xVGG16 read as every conv layer three times). The rescaling multiplies
  each output channel's weights by one factor, and a BatchNorm after the convolution divides that factor out again:
  on Frankle's BatchNorm VGG16 a rescaled network computes the unrescaled one's features (only the linear head's
  per-class scale moves), which leaves no room for the paper's 3xVGG16 gap (93.97 vs 93.30 at 85%). Only without
  BatchNorm does the comparison measure what the paper's Table 4 isolates. The SNIP and SynFlow rows run on the
  same networks (He init, which for ReLU is the EOC, so EOC + rescaling differs from SNIP by the rescaling alone).
- Table 8 (ImageNet, ResNet50 and its Stable version stable_imagenet_resnet_50): Frankle et al.'s ResNet-50
  ImageNet settings; one seed, as the paper's table has no confidence intervals ("TODO: These results will be
  updated to include confidence intervals").
- Table 9, "Test accuracy of pruned neural network on CIFAR10 with different activation functions": its ReLU rows
  are Table 1's runs; its tanh rows run cifar_resnet_D_32_tanh (SNIP) and stable_resnet_D_32_tanh initialised on the
  tanh EOC (init eoc_tanh). Table 10's text repeats Table 9's numbers (and its "80.09(0.0.55)") under a caption
  about a vanilla CNN, so it is no separate experiment and is not run.
- Not run: Table 2's OBD row (LeCun et al.'s Optimal Brain Damage prunes a trained network by its Hessian; it is
  not a method of raysweep.pruning), Tables 6 (a summary of the others) and 7 (a bound checked on a toy network).
Whether the SR rows rescale the pruned Stable ResNet the tables do not say; they do here, as the EOC networks of
Tables 4 and 5 do. With a BatchNorm after every convolution, that rescaling leaves the features as they were and
changes the linear head's scale and the weight norms SGD starts from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

import common
from raysweep import sweep

SCRIPT = "hayou_tables"
NO_PRUNING = "no pruning"   # Table 2's "ResNet32 (NO PRUNING)": the dense network


@dataclass(frozen=True)
class Line:
    """One row of a table: `method` applied to `model` initialised by `init`, rescaled after pruning or not."""

    label: str
    method: str
    model: str
    init: str = "kaiming_normal"
    rescale: bool = False


@dataclass
class Block:
    """One network on one data set: its lines, each at its sparsities."""

    network: str
    data: str
    training: str
    lines: list            # (Line, sparsities)
    seeds: list
    dense: bool = True     # whether the unpruned network is a line (NO_PRUNING)
    gpus: float = 0.0
    workers: int = 1


@dataclass
class Table:
    name: str
    blocks: list            # (network, data) of the blocks it shows
    lines: list             # line labels, in the paper's order
    sparsities: list
    by_network: bool = False   # Table 4: one sparsity, the networks (depths) as columns


T1 = [0.9, 0.95, 0.98, 0.995, 0.999]
T2 = [0.9, 0.95, 0.98]
T35 = [0.85, 0.9, 0.95]
T9 = [0.9, 0.98, 0.995, 0.999]
STANDARD = ["random", "magnitude", "snip", "grasp", "synflow"]
TABLE4 = ["Ordered phase init", "EOC init", "EOC + rescaling"]


def resnet_block(network, data, training, model, sr_model, methods, sr, seeds, sr_init="eoc", **kw) -> Block:
    """A standard ResNet under `methods` (method -> sparsities) and its Stable version under `sr` (label ->
    (method, sparsities)), the latter initialised by `sr_init` and rescaled after pruning."""
    lines = [(Line(m, m, model), s) for m, s in methods.items()]
    lines += [(Line(label, m, sr_model, sr_init, True), s) for label, (m, s) in sr.items()]
    return Block(network, data, training, lines, seeds, **kw)


def table4_block(depth: int, width: int, data: str, training: str, sparsity: float, seeds, **kw) -> Block:
    model = f"vanilla_cnn_{depth}_{width}"
    lines = [Line("Ordered phase init", "snip", model, "ordered_relu"), Line("EOC init", "snip", model, "eoc"),
             Line("EOC + rescaling", "snip", model, "eoc", True)]
    return Block(f"V-CNN L={depth}", data, training, [(line, [sparsity]) for line in lines], seeds, dense=False, **kw)


def table5_block(network: str, model: str, data: str, training: str, sparsities, seeds, **kw) -> Block:
    lines = [Line("snip", "snip", model), Line("synflow", "synflow", model),
             Line("EOC + rescaling", "snip", model, "eoc", True)]
    return Block(network, data, training, [(line, list(sparsities)) for line in lines], seeds, dense=False, **kw)


def paper_layout() -> tuple[list[Block], list[Table]]:
    seeds, gpu = [0, 1, 2], dict(gpus=1.0)
    resnets = [f"ResNet{d}" for d in (32, 50, 104)]
    blocks = []
    for data in ("cifar10", "cifar100"):
        for d in (32, 50, 104):
            snip = T1 if data == "cifar10" else T2
            sr = {"SBP-SR": ("snip", snip)} | ({"GraSP-SR": ("grasp", T2)} if d == 32 else {})
            blocks.append(resnet_block(f"ResNet{d}", data, "wang_cifar_resnet", f"cifar_resnet_{d}_32",
                                       f"stable_resnet_{d}_32", {m: snip if m == "snip" else T2 for m in STANDARD},
                                       sr, seeds, **gpu))
    for d in (32, 50):   # Table 9's tanh rows
        blocks.append(resnet_block(f"ResNet{d} (tanh)", "cifar10", "wang_cifar_resnet", f"cifar_resnet_{d}_32_tanh",
                                   f"stable_resnet_{d}_32_tanh", {"snip": T9}, {"SBP-SR": ("snip", T9)}, seeds,
                                   sr_init="eoc_tanh", dense=False, **gpu))
    blocks += [resnet_block(f"ResNet{d}", "tinyimagenet", "wang_tinyimagenet_resnet", f"cifar_resnet_{d}_32",
                            f"stable_resnet_{d}_32", {m: T35 for m in ("snip", "grasp", "synflow")},
                            {"SBP-SR": ("snip", T35)}, seeds, dense=False, **gpu) for d in (32, 50, 104)]
    blocks += [table4_block(depth, 128, "mnist", "hayou_mnist_vcnn", 0.5, seeds, **gpu) for depth in (10, 50, 100)]
    blocks += [table5_block(name, model, "cifar10", "hayou_cifar_vgg_nobn", T35, seeds, **gpu)
               for name, model in (("VGG16", "cifar_vgg_16_nobn"), ("3xVGG16", "cifar_vgg_16x3_nobn"))]
    blocks.append(resnet_block("ResNet50", "imagenet", "frankle_imagenet_resnet50", "imagenet_resnet_50",
                               "stable_imagenet_resnet_50", {m: T35 for m in ("snip", "grasp", "synflow")},
                               {"SBP-SR": ("snip", T35)}, [0], dense=False, gpus=1.0, workers=8))
    tables = [Table("Table 1 (CIFAR-10)", [(n, "cifar10") for n in resnets], ["snip", "SBP-SR"], T1),
              *[Table(f"Table 2 ({name})", [(n, data) for n in resnets],
                      [NO_PRUNING, *STANDARD, "GraSP-SR", "SBP-SR"], T2)
                for data, name in (("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100"))],
              Table("Table 3 (TinyImageNet)", [(n, "tinyimagenet") for n in resnets],
                    ["SBP-SR", "snip", "grasp", "synflow"], T35),
              Table("Table 4 (MNIST, 50% sparsity)", [(f"V-CNN L={d}", "mnist") for d in (10, 50, 100)], TABLE4,
                    [0.5], by_network=True),
              Table("Table 5 (CIFAR-10)", [("VGG16", "cifar10"), ("3xVGG16", "cifar10")],
                    ["snip", "synflow", "EOC + rescaling"], T35),
              Table("Table 8 (ImageNet)", [("ResNet50", "imagenet")], ["snip", "grasp", "synflow", "SBP-SR"], T35),
              Table("Table 9 (CIFAR-10)", [(n, "cifar10") for n in ("ResNet32", "ResNet32 (tanh)", "ResNet50",
                                                                    "ResNet50 (tanh)")], ["SBP-SR", "snip"], T9)]
    return blocks, tables


def small_layout(preset: str) -> tuple[list[Block], list[Table]]:
    """Digits: ResNet8-4 for the ResNets, LeNet-5 (no BatchNorm) for the VGGs, V-CNNs of depth 2 and 12 for
    Table 4. The smoke preset is Table 4 at one depth and seed: a study per initialisation and rescaling, as every
    table has (the other tables differ in their networks only)."""
    if preset == "smoke":
        return [table4_block(2, 8, "digits", "digits", 0.5, [0])], [
            Table("Table 4 (digits, 50% sparsity)", [("V-CNN L=2", "digits")], TABLE4, [0.5], by_network=True)]
    seeds, t1, t2, t5 = [0, 1], [0.9, 0.95, 0.98], [0.9, 0.95], [0.85, 0.9, 0.95]
    blocks = [resnet_block("ResNet8-4", "digits", "digits", "cifar_resnet_8_4", "stable_resnet_8_4",
                           {m: t1 if m == "snip" else t2 for m in STANDARD},
                           {"SBP-SR": ("snip", t1), "GraSP-SR": ("grasp", t2)}, seeds),
              resnet_block("ResNet8-4 (tanh)", "digits", "digits", "cifar_resnet_8_4_tanh", "stable_resnet_8_4_tanh",
                           {"snip": t1}, {"SBP-SR": ("snip", t1)}, seeds, sr_init="eoc_tanh", dense=False),
              *[table4_block(d, 16, "digits", "digits", 0.5, seeds) for d in (2, 12)],
              table5_block("LeNet-5", "lenet_5", "digits", "digits", t5, seeds)]
    tables = [Table("Table 1 (digits)", [("ResNet8-4", "digits")], ["snip", "SBP-SR"], t1),
              Table("Table 2 (digits)", [("ResNet8-4", "digits")], [NO_PRUNING, *STANDARD, "GraSP-SR", "SBP-SR"], t2),
              Table("Table 4 (digits, 50% sparsity)", [(f"V-CNN L={d}", "digits") for d in (2, 12)], TABLE4, [0.5],
                    by_network=True),
              Table("Table 5 (digits; LeNet-5 for the VGGs)", [("LeNet-5", "digits")],
                    ["snip", "synflow", "EOC + rescaling"], t5),
              Table("Table 9 (digits)", [("ResNet8-4", "digits"), ("ResNet8-4 (tanh)", "digits")],
                    ["SBP-SR", "snip"], t1)]
    return blocks, tables


def layout(preset: str) -> tuple[list[Block], list[Table]]:
    return paper_layout() if preset == "paper" else small_layout(preset)


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def studies(preset: str, storage: str, data_root: str | None) -> dict[tuple, list[tuple[sweep.StudySpec, dict]]]:
    """(network, data) -> [(study, {(model, init, rescale, method): line label})]: one study per model,
    initialisation and rescaling of the block, each with the lines it runs."""
    blocks, _ = layout(preset)
    extra = {"hparams": dict(common.SMOKE_HPARAMS)} if preset == "smoke" else {}
    out = {}
    for b in blocks:
        groups: dict[tuple, list] = {}
        for line, sparsities in b.lines:
            groups.setdefault((line.model, line.init, line.rescale), []).append((line, sparsities))
        specs = []
        for (model, init, rescale), lines in groups.items():
            name = f"hayou-{slug(b.network)}-{b.data}-{slug(model)}-{init}" + ("-rescaled" if rescale else "") \
                + ("-smoke" if preset == "smoke" else "")
            standard = init == "kaiming_normal" and not rescale
            spec = sweep.StudySpec(
                name=name, storage=storage, data_root=data_root, model=model, data=b.data, training=b.training,
                init=init, rescale=rescale, seeds=list(b.seeds), dense=b.dense and standard,
                sparsities=sorted({s for _, ss in lines for s in ss}),
                grids=[sweep.Grid(methods=[line.method], sparsities=list(ss)) for line, ss in lines],
                gpus_per_worker=b.gpus, workers=b.workers, **extra)
            specs.append((spec, {(model, init, rescale, line.method): line.label for line, _ in lines}))
        out[(b.network, b.data)] = specs
    return out


def label(row, labels: dict) -> str:
    if row["method"] == "dense":
        return NO_PRUNING
    key = (row["model"], row["init"], bool(row["rescale"]), row["method"])
    return labels.get(key, row["method"])   # a row of the same study from an earlier grid keeps its method


def _cell(acc: pd.Series) -> str:
    if not len(acc) or math.isnan(acc.mean()):
        return ""
    std = acc.std() if len(acc) > 1 else 0.0
    return f"{100 * acc.mean():.2f} ± {100 * std:.2f}"


def table(frame: pd.DataFrame, spec: Table) -> pd.DataFrame:
    """Rows network x line (lines x networks for Table 4), columns the table's sparsities (its networks), cells
    'mean ± std' in percent. The unpruned network stands in the first column."""
    done = frame[frame["status"].isin(["completed", "diverged"])]
    cells = []
    for network, data in spec.blocks:
        rows = done[(done["network"] == network) & (done["data"] == data)]
        for name in spec.lines:
            for k, s in enumerate(spec.sparsities):
                if name == NO_PRUNING:
                    acc = rows.loc[rows["line"] == name, "accuracy"] if k == 0 else pd.Series(dtype=float)
                else:
                    acc = rows.loc[(rows["line"] == name) & (rows["sparsity"] == s), "accuracy"]
                cells.append({"network": network, "line": name, "sparsity": f"{100 * s:g}%",
                              "cell": _cell(acc) or ("-" if name == NO_PRUNING and k else "")})
    out = pd.DataFrame(cells)
    if spec.by_network:
        return out.pivot_table(index="line", columns="network", values="cell", aggfunc="first",
                               sort=False)[[n for n, _ in spec.blocks]]
    out = out.pivot_table(index=["network", "line"], columns="sparsity", values="cell", aggfunc="first", sort=False)
    return out[[f"{100 * s:g}%" for s in spec.sparsities]]


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(__doc__, argv)
    frames = []
    for (network, data), specs in studies(args.preset, args.storage, args.data_root).items():
        for spec, labels in specs:
            frame = common.run(spec, args, f"{network} ({data})").frame.copy()
            frame["network"] = network
            frame["line"] = [label(r, labels) for _, r in frame.iterrows()]
            frames.append(frame)
    combined = pd.concat(frames, ignore_index=True)
    _, tables = layout(args.preset)
    text = "\n\n".join(f"{t.name}: test accuracy (%), mean ± std over seeds\n{table(combined, t).to_string()}"
                       for t in tables)
    common.write_tables(args.storage, SCRIPT, combined, text)
    return combined


if __name__ == "__main__":
    main()
