"""Frankle et al. (2021), Appendices D-F: their replications of the SNIP, GraSP and SynFlow papers, set beside the
numbers the original papers report and Frankle et al.'s own (raysweep/published/frankle_replication.csv).

- Table 2 (SNIP on Lee et al.'s networks): VGG-16 at 97%, VGG2-16 (VGG-16 with two fully connected layers) and
  WRN-14-8, WRN-14-10, WRN-20-8 (ResNet-14/20 at 8 and 10 times the standard width) at 95%.
- Tables 3 and 5 (SNIP and GraSP on Wang et al.'s networks): VGG-19 and WRN-32-2 on CIFAR-10 at 90/95/98%,
  ResNet-50 on ImageNet at 60/80/90%.
- Table 7 (the unpruned SynFlow networks): VGG-11 and VGG-16 on CIFAR-10, the modified ResNet-18 on CIFAR-10 and
  TinyImageNet, each ResNet-18 under Tanaka et al.'s hyperparameters and under Frankle's.
Tables 1, 4 and 6 list the papers' networks; Figure 10 (the SynFlow replication's pruned networks) is
frankle_fig10.py.

Hyperparameters: "we made every effort to replicate the architecture and hyperparameters of the GraSP
implementation" (Appendix E.4) - Wang et al.'s published settings for VGG-19 and WRN-32-2 (training presets
wang_cifar_vgg, wang_cifar_resnet); ResNet-50 on ImageNet trains with Frankle's own ("we use a larger batch size (1024
vs. 128), a higher learning rate (0.4 vs. 0.1)"). For Table 2 the text gives none; Frankle's CIFAR-10 ResNet and VGG
settings of Appendix A (their WRN accuracies "are identical to those reported by Zagoruyko & Komodakis"). Table 7's
are its own (presets tanaka_* and frankle_*modified_resnet18). "Each of our numbers is the average across five
replicates with different random seeds": five seeds. Initialisation as in the main body (BatchNorm gamma uniform).

    python experiments/frankle_replication.py                  # embedded: digits, LeNet-5 and LeNet-300-100
    python experiments/frankle_replication.py --preset paper   # the tables above
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

import common
import published_numbers
from raysweep import report, sweep

SCRIPT = "frankle_replication"


@dataclass(frozen=True)
class Setting:
    """One network on one data set under one training preset, and the (method, sparsities) each table prunes it
    with; method "dense" is the unpruned network alone."""

    model: str
    data: str
    training: str
    tables: tuple        # (table, method, sparsities)
    gpus: float = 1.0
    workers: int = 1

    @property
    def network(self) -> str:
        return published_numbers.replication_network(self.model, self.training.startswith("tanaka"))



def paper_settings() -> list[Setting]:
    cifar = (0.9, 0.95, 0.98)
    imagenet = (0.6, 0.8, 0.9)
    return [
        Setting("cifar_vgg_16", "cifar10", "frankle_cifar_vgg16",
                (("Table 2", "snip", (0.97,)), ("Table 7", "dense", ()))),
        Setting("cifar_vgg2_16", "cifar10", "frankle_cifar_vgg16", (("Table 2", "snip", (0.95,)),)),
        *[Setting(f"wide_resnet_{d}_{k}", "cifar10", "frankle_cifar_resnet20", (("Table 2", "snip", (0.95,)),))
          for d, k in ((14, 8), (14, 10), (20, 8))],
        Setting("cifar_vgg_19", "cifar10", "wang_cifar_vgg",
                (("Table 3", "snip", cifar), ("Table 5", "grasp", cifar))),
        Setting("wide_resnet_32_2", "cifar10", "wang_cifar_resnet",
                (("Table 3", "snip", cifar), ("Table 5", "grasp", cifar))),
        Setting("imagenet_resnet_50", "imagenet", "frankle_imagenet_resnet50",
                (("Table 3", "snip", imagenet), ("Table 5", "grasp", imagenet)), workers=8),
        Setting("cifar_vgg_11", "cifar10", "frankle_cifar_vgg16", (("Table 7", "dense", ()),)),
        *[Setting("tiny_resnet_18", data, training, (("Table 7", "dense", ()),), workers=workers)
          for data, training, workers in (("cifar10", "tanaka_cifar_modified_resnet18", 1),
                                          ("cifar10", "frankle_cifar_modified_resnet18", 1),
                                          ("tinyimagenet", "tanaka_tinyimagenet_modified_resnet18", 2),
                                          ("tinyimagenet", "frankle_tinyimagenet_resnet18", 2))]]


def small_settings(preset: str) -> list[Setting]:
    if preset == "smoke":
        return [Setting("lenet_300_100", "digits", "digits",
                        (("Table 3", "snip", (0.9,)), ("Table 5", "grasp", (0.9,))), gpus=0.0)]
    sparsities = (0.9, 0.95, 0.98)
    return [Setting("lenet_5", "digits", "digits",
                    (("Table 3", "snip", sparsities), ("Table 5", "grasp", sparsities)), gpus=0.0),
            Setting("lenet_300_100", "digits", "digits", (("Table 7", "dense", ()),), gpus=0.0)]


def settings(preset: str) -> list[Setting]:
    return paper_settings() if preset == "paper" else small_settings(preset)


def studies(preset: str, storage: str, data_root: str | None) -> dict[Setting, sweep.StudySpec]:
    seeds = list(range(5)) if preset == "paper" else [0, 1] if preset == "embedded" else [0]
    extra = {"hparams": dict(common.SMOKE_HPARAMS)} if preset == "smoke" else {}
    out = {}
    for s in settings(preset):
        pruned = [(method, list(sparsities)) for _, method, sparsities in s.tables if method != "dense"]
        grids = [sweep.Grid(methods=[m], sparsities=ss) for m, ss in pruned] or [sweep.Grid(methods=["dense"])]
        out[s] = sweep.StudySpec(
            name=f"frankle-replication-{s.model}-{s.data}-{s.training}" + ("-smoke" if preset == "smoke" else ""),
            storage=storage, data_root=data_root, model=s.model, data=s.data, training=s.training, seeds=seeds,
            bn_init="uniform", sparsities=sorted({x for _, ss in pruned for x in ss}) or [0.5], grids=grids,
            gpus_per_worker=s.gpus, workers=s.workers, **extra)
    return out


def table(frame: pd.DataFrame, published: pd.DataFrame, name: str, rows: list[tuple]) -> pd.DataFrame:
    """Rows (network, line, sparsity) of table `name`: the original paper's number, Frankle's, and ours (mean ±
    std over seeds, in percent)."""
    out = []
    for network, data, line, sparsity in rows:
        mine = frame[(frame["network"] == network) & (frame["data"] == data) & (frame["line"] == line)
                     & ((frame["sparsity"] - sparsity).abs() < 1e-9)]["accuracy"]
        theirs = published[(published["network"] == network) & (published["dataset"] == data)
                           & (published["line"] == line) & ((published["sparsity"] - sparsity).abs() < 1e-9)
                           & published["figure"].str.startswith(name + " ")]
        cell = {"network": network, "data": data, "line": line, "sparsity": f"{100 * sparsity:g}%"}
        for figure, number in zip(theirs["figure"], theirs["mean"]):
            cell[figure[len(name) + 2:-1]] = f"{number:g}"
        cell["this run"] = report._cell(mine, 100, 4)
        out.append(cell)
    return pd.DataFrame(out).fillna("").set_index(["network", "data", "line", "sparsity"])


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(__doc__, argv)
    frames, tables = [], {}
    for s, spec in studies(args.preset, args.storage, args.data_root).items():
        frame = common.run(spec, args, f"{s.network} ({s.data})").frame.copy()
        frame["network"] = s.network
        frame["line"] = frame["method"]   # "dense" is the unpruned network
        frames.append(frame)
        for name, method, sparsities in s.tables:
            tables.setdefault(name, []).extend(
                [(s.network, s.data, "dense", 0.0)] + [(s.network, s.data, method, x) for x in sparsities
                                                       if method != "dense"])
    combined = pd.concat(frames, ignore_index=True)
    combined = combined[combined["status"].isin(["completed", "diverged"])]
    published = report.load_published(report.PUBLISHED)
    text = "\n\n".join(f"{name}: test accuracy (%)\n{table(combined, published, name, rows).to_string()}"
                       for name, rows in sorted(tables.items()))
    common.write_tables(args.storage, SCRIPT, combined, text)
    return combined


if __name__ == "__main__":
    main()
