"""What every experiment script shares: its command line, running its studies, and writing its outputs to
<storage>/<script>/ (Parquet, figures, tables), plus the Frankle et al. settings several figures reuse."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from raysweep import models, plots, pruning, results, sweep, training
from raysweep.storage import Storage

PRESETS = ("embedded", "paper", "smoke")

# Frankle et al.: 20% of the remaining weights pruned per step, 0% to 98.2%.
FRANKLE_SPARSITIES = [round(1 - 0.8 ** k, 4) for k in range(19)]
# (model, data, training preset, seeds, GPUs per worker, workers): Frankle Appendix A. BatchNorm gammas
# uniform(0, 1) and Kaiming normal fan-in, the PyTorch defaults the paper used (Appendix F).
FRANKLE_PAPER = [("cifar_resnet_20", "cifar10", "frankle_cifar_resnet20", 5, 0.5, 1),
                 ("cifar_vgg_16", "cifar10", "frankle_cifar_vgg16", 5, 1, 1),
                 ("imagenet_resnet_18", "tinyimagenet", "frankle_tinyimagenet_resnet18", 3, 1, 2),
                 ("imagenet_resnet_50", "imagenet", "frankle_imagenet_resnet50", 3, 1, 8)]
# Appendix I: "the experiments from the main body of the paper on the modified version of ResNet-18 on
# TinyImageNet ... This is the same configuration as we use in Appendix F" (3x3 stride-1 stem, no max-pool).
FRANKLE_APPENDIX_I = [("tiny_resnet_18", "tinyimagenet", "frankle_tinyimagenet_resnet18", 3, 1, 2)]
# The smoke preset: the embedded setting cut to one seed and one epoch, so tests can run a script's whole grid.
SMOKE_HPARAMS = {"training_steps": "1ep", "lr_drops": ()}


def parse_args(doc: str, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default="embedded",
                        help="embedded: minutes on a CPU with scikit-learn digits; paper: the paper's models, data, "
                             "sparsities, seeds and hyperparameters; smoke: the embedded grid cut to a minimum")
    parser.add_argument("--storage", default="runs", help="directory or URI (s3://...) for all results")
    parser.add_argument("--data-root", default=None, help="where the data sets live (paper preset)")
    parser.add_argument("--address", default=None, help="Ray cluster to attach to (default: $RAY_ADDRESS or a "
                                                        "local in-process cluster)")
    parser.add_argument("--wait-for-resources", action="store_true",
                        help="autoscaling cluster: start although the GPU nodes are not up yet")
    parser.add_argument("--pack-size", default="auto", type=lambda v: v if v == "auto" else int(v),
                        help="trials trained together per pack (the spec's pack_size; default: auto, 1: each "
                             "trial alone)")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("--verbose", action="store_true", help="Ray Tune's progress tables")
    loud.add_argument("--quiet", action="store_true", help="nothing but each study's summary line")
    return parser.parse_args(argv)


def frankle_panels(preset: str, storage: str, data_root: str | None, prefix: str, appendix_i: bool = False,
                   **fields) -> dict:
    """Panel title -> study of Frankle et al.'s settings for `preset`; `fields` are the study's own (grids...).
    appendix_i adds Appendix I's modified ResNet-18 to the paper preset's four networks."""
    common = dict(storage=storage, data_root=data_root, **fields)
    if preset == "paper":
        return {f"{model} ({data})": sweep.StudySpec(
                    name=f"{prefix}-{model}-{data}", model=model, data=data, training=training,
                    seeds=list(range(seeds)), bn_init="uniform", gpus_per_worker=gpus, workers=workers,
                    **{"sparsities": FRANKLE_SPARSITIES, **common})
                for model, data, training, seeds, gpus, workers in
                FRANKLE_PAPER + (FRANKLE_APPENDIX_I if appendix_i else [])}
    if preset == "smoke":
        return {"lenet_300_100 (digits)": sweep.StudySpec(
            name=f"{prefix}-smoke", model="lenet_300_100", data="digits", training="digits", seeds=[0],
            hparams=dict(SMOKE_HPARAMS), **{"sparsities": [FRANKLE_SPARSITIES[3]], **common})}
    sparsities = [FRANKLE_SPARSITIES[k] for k in (1, 3, 6, 9, 13)]
    return {f"{model} (digits)": sweep.StudySpec(
                name=f"{prefix}-{model}-digits", model=model, data="digits", training="digits", seeds=[0, 1],
                **{"sparsities": sparsities, **common})
            for model in ("lenet_300_100", "lenet_5")}


def run(spec: sweep.StudySpec, args: argparse.Namespace, title: str) -> sweep.StudyRun:
    """Run one study (finished trials are kept) and print its summary."""
    verbose = 0 if args.quiet else 2 if args.verbose else 1
    result = sweep.run_study(spec.replace(wait_for_resources=args.wait_for_resources, pack_size=args.pack_size),
                             address=args.address, verbose=verbose)
    print(f"== {title} [{spec.name}]: {result.ran} trials finished in this run, {result.skipped} already done, "
          f"{result.failed} failed, {result.dense_trainings} dense trainings ==")
    if len(result.frame) and not args.quiet:
        print(plots.summary(result.frame).to_string())
    return result


def accuracy_figure(script: str, doc: str, argv, studies) -> pd.DataFrame:
    """The main of a figure of accuracy against sparsity: run studies(preset, storage, data_root) (panel title ->
    study), then write <storage>/<script>/results.parquet and <script>.png, one panel per study."""
    args = parse_args(doc, argv)
    specs = studies(args.preset, args.storage, args.data_root)
    used = ", ".join(sorted({plots.DATA_NAMES.get(spec.data, spec.data) for spec in specs.values()}))
    print(f"{script}: data {used}")
    panels = {title: run(spec, args, title).frame for title, spec in specs.items()}
    out = Outputs(args.storage, script)
    combined = pd.concat(panels.values(), ignore_index=True)
    written = [out.parquet(combined),
               out.figure(lambda p: plots.accuracy_vs_sparsity(panels, p, title=f"{script} on {used}"), f"{script}.png")]
    print("\nwrote " + ", ".join(written))
    return combined


def write_tables(storage: str, script: str, frame: pd.DataFrame, text: str) -> None:
    """Print a script's tables, then write its rows (results.parquet) and the tables (tables.txt)."""
    print("\n" + text)
    out = Outputs(storage, script)
    written = [out.parquet(frame), out.text(text + "\n", "tables.txt")]
    print("\nwrote " + ", ".join(written))


class Outputs:
    """The files of one script: <storage>/<script>/<name>."""

    def __init__(self, storage: str, script: str):
        self.storage = Storage(storage)
        self.script = script

    def parquet(self, frame: pd.DataFrame, name: str = "results.parquet") -> str:
        results.save(frame, self.storage, self.script, name)
        return self.storage.path(self.script, name)

    def figure(self, draw, name: str) -> str:
        """Call draw(path) to write a figure file, then store it as `name`; return where it is."""
        if self.storage.local:
            self.storage.makedirs(self.script)
            draw(self.storage.local_path(self.script, name))
        else:
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / name
                draw(path)
                self.storage.write_bytes(path.read_bytes(), self.script, name)
        return self.storage.path(self.script, name)

    def text(self, text: str, name: str) -> str:
        self.storage.write_bytes(text.encode(), self.script, name)
        return self.storage.path(self.script, name)


AFTER_TRAINING = sweep.Grid(methods=["magnitude"], prune_at=["end"])


def rewinding(spec: sweep.StudySpec) -> sweep.Grid:
    """Lottery ticket rewinding (the mask of magnitude pruning after training, the weights of the study's
    rewinding step: its training preset's, Frankle Appendix B)."""
    rewind = training.preset(spec.training).replace(**(spec.hparams or {})).rewind_step
    return sweep.Grid(methods=["ltr"], prune_at=[rewind])


def own_rows(result: sweep.StudyRun, spec: sweep.StudySpec) -> pd.DataFrame:
    """The rows of `spec`'s own grid: scripts that share a study (and so its finished trials) each see theirs."""
    wanted = {t.trial_id for t in sweep.expand(spec)}
    return result.frame[result.frame["trial_id"].isin(wanted)].reset_index(drop=True)


def compressions(rates) -> list[float]:
    """The sparsities of the given compression rates (1 / density)."""
    return [round(1 - 1 / c, 6) for c in rates]


def feasible(model: str, input_shape, quota: str, sparsities, num_classes: int = 10) -> list[float]:
    """The sparsities at which `quota` is defined for `model` (ERK and Uniform+ are not defined everywhere)."""
    if quota == "global" or quota.startswith("ratio:"):
        return list(sparsities)
    net = models.create(model, num_classes=num_classes, input_shape=tuple(input_shape))
    shapes = [tuple(p.shape) for p in pruning.prunable(net).values()]
    ok = []
    for s in sparsities:
        try:
            pruning.quota(quota, shapes, s)
            ok.append(s)
        except pruning.InfeasibleQuota:
            print(f"note: quota {quota!r} does not exist for {model} at sparsity {s}; left out")
    return ok


def quota_grids(model: str, input_shape, methods, quotas, sparsities, num_classes: int = 10,
                **grid) -> list[sweep.Grid]:
    """One Grid per quota over the sparsities where that quota exists for `model` (with `num_classes` outputs)."""
    out = []
    for q in quotas:
        ok = feasible(model, input_shape, q, sparsities, num_classes)
        if ok:
            out.append(sweep.Grid(methods=list(methods), quotas=[q], sparsities=ok, **grid))
    return out


def lines(frame: pd.DataFrame, names: dict | None = None) -> pd.DataFrame:
    """Finished rows, each with its line's name (plots.label, renamed through `names`)."""
    frame = plots.with_labels(frame)
    if names:
        frame["line"] = [names.get(v, v) for v in frame["line"]]
    return frame


def plot_panels(panels: dict[str, pd.DataFrame], path, x: str, y: str, *, xlabel: str, ylabel: str,
                logx=False, logy=False, scale: float = 1.0, styles: dict | None = None, reference: str = "dense",
                diagonal=False, ncols: int | None = None, by: str = "sparsity") -> None:
    """One panel per title (rows with a 'line' column): each line is the mean of `y` over seeds against the mean
    of `x`, one point per value of `by` (the target sparsity), with a min-max band over seeds (clipped to the range
    of metric `y`, plots.METRIC_RANGES); the `reference` line (the dense network) is horizontal; `diagonal` draws
    y = x. Each panel's legend sits right of its axes."""
    import matplotlib.pyplot as plt   # plots set the Agg backend on import

    ncols = ncols or min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.4 * ncols, 4.0 * nrows), squeeze=False, layout="constrained")
    for ax, (title, frame) in zip(axes.flat, panels.items()):
        for line, rows in frame.groupby("line", sort=True):
            # a disconnected subnetwork has infinite effective compression: its curve ends there
            rows = rows[rows[x].abs().lt(float("inf")) & rows[y].abs().lt(float("inf"))]
            if line == reference:
                ax.axhline(scale * rows[y].mean(), color="tab:gray", ls="--", label=line)
                continue
            stats = rows.groupby(by).agg(at=(x, "mean"), mean=(y, "mean"), lo=(y, "min"), hi=(y, "max"))
            stats = stats.sort_values("at")
            drawn = ax.plot(stats["at"], scale * stats["mean"], marker="o", ms=3, label=line,
                            **(styles or {}).get(line, {}))
            ax.fill_between(stats["at"], *plots.band(stats["lo"], stats["hi"], y, scale), color=drawn[0].get_color(),
                            alpha=0.15)
        if diagonal:
            lo, hi = ax.get_xlim()
            ax.plot([lo, hi], [lo, hi], color="black", lw=0.6, ls=":", label="y = x")
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if logy else "linear")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))   # beside the data, never over it
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(frame: pd.DataFrame, value: str, index: str = "line", columns: str = "sparsity") -> pd.DataFrame:
    """'mean ± std (n)' of `value` over seeds: lines x sparsities. Infinite values (a disconnected network's
    effective compression) count as missing."""
    frame = frame.assign(**{value: frame[value].where(frame[value].abs() < float("inf"))})
    grouped = frame.groupby([index, columns])[value].agg(["mean", "std", "count"]).reset_index()
    grouped["cell"] = [f"{m:.4g} ± {0.0 if pd.isna(s) else s:.2g} ({n})" if n else "no finite value"
                       for m, s, n in zip(grouped["mean"], grouped["std"], grouped["count"])]
    return grouped.pivot(index=index, columns=columns, values="cell").fillna("")


def paired_styles(lines, key, dashed, ls="--") -> dict:
    """Line styles for plot_panels that give the lines sharing key(line) one colour, dashed where dashed(line)."""
    keys = sorted({key(line) for line in lines})
    return {line: {"color": f"C{keys.index(key(line)) % 10}", **({"ls": ls} if dashed(line) else {})}
            for line in lines}
