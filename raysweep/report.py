"""`raysweep report DIR`: one Markdown page (DIR/report.md) for a storage directory of studies and script outputs,
for one script's output directory (e.g. runs/fig4) or for one study directory. DIR is a local path or a URI
(file://, s3://, gs://: any file system pyarrow knows).

For every script's directory (<script>/results.parquet with its figures): the figures, then per panel a table of
mean ± std (n seeds) of the test accuracy and of every further metric the rows hold, lines x sparsities; the
paper's published numbers beside the reproduced ones wherever raysweep/published/*.csv has the same network, data
set, line and sparsity, numbers the paper's text leaves in doubt marked "(doubtful)" with the reason (the published
files' `doubt` column). Last, the grid's cost per study (<study>/spec.yaml with trials/): trials by status and
the CPU-hours and GPU-hours they held (wall time x workers x CPUs or GPUs per worker).

The page links each figure where it lies when the page is written into DIR; written anywhere else (--output), the
page takes its figures along into <page name>_figures/ beside it, so that its links resolve there too.

    raysweep report runs                 # or: python experiments/report.py runs
    raysweep report runs/fig4 --output /tmp/fig4/report.md
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs

from . import plots, results
from .storage import Storage, name_of, split

PUBLISHED = Path(__file__).resolve().parent / "published"
# Further columns of a row worth a table when present: (column or prefix, heading, scale to print).
METRICS = [("compression_effective", "effective compression", 1),
           ("ece", "ECE", 1), ("nll", "NLL", 1), ("fgsm_accuracy", "FGSM robust accuracy (%)", 100),
           ("ood_auroc_", "OoD ROC-AUC", 1), ("macs_sparse", "multiply-adds (MACs) per example (sparse)", 1),
           # rows written before the column named its unit: torch's count, 2 FLOPs per multiply-add
           ("flops_sparse", "FLOPs per example (sparse; 2 per multiply-add)", 1),
           ("active_grad_norm", "active gradient norm", 1)]
SPARSITY_TOLERANCE = 5e-4   # published sparsities are printed to 0.1%; the grids run the exact values


def _cell(values: pd.Series, scale: float, digits: int) -> str:
    values = values.dropna().astype(float) * scale
    if values.empty:
        return ""
    # a disconnected network has infinite effective compression: count such seeds apart
    finite = values[values.abs() < math.inf]
    infinite = f"; {len(values) - len(finite)} inf" if len(finite) < len(values) else ""
    if finite.empty:
        return f"inf ({len(values)})"
    std = finite.std() if len(finite) > 1 else 0.0
    return f"{finite.mean():.{digits}g} ± {std:.2g} ({len(finite)}{infinite})"


def _markdown(frame: pd.DataFrame) -> str:
    """A frame as a Markdown table, its index as the first column(s)."""
    frame = frame.reset_index()
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def finished(frame: pd.DataFrame) -> pd.DataFrame:
    """Finished rows, each with its line: the script's own 'line' column or plots.label()."""
    frame = frame[frame["status"].isin(results.FINISHED)].copy()
    if "line" not in frame or frame["line"].isna().any():
        labels = [plots.label(r) for _, r in frame.iterrows()]
        frame["line"] = frame["line"].fillna(pd.Series(labels, index=frame.index)) if "line" in frame else labels
    return frame


def panels(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The script's panels (its 'panel' column) or else one per model and data set."""
    if "panel" in frame and frame["panel"].notna().all():
        return {str(k): v for k, v in frame.groupby("panel", sort=False)}
    return {f"{m} ({d})": v for (m, d), v in frame.groupby(["model", "data"], sort=False)}


def value_table(frame: pd.DataFrame, column: str, scale: float = 1.0, digits: int = 4) -> pd.DataFrame:
    """'mean ± std (n)' of `column`: lines x sparsities (in percent)."""
    cells = frame.groupby(["line", "sparsity"])[column].apply(lambda v: _cell(v, scale, digits)).unstack()
    cells.columns = [f"{100 * s:.4g}%" for s in cells.columns]
    return cells.fillna("")


def metric_columns(frame: pd.DataFrame) -> list[tuple[str, str, float]]:
    out = []
    for key, heading, scale in METRICS:
        for column in frame.columns:
            if (column == key or (key.endswith("_") and column.startswith(key))) and frame[column].notna().any():
                name = heading if column == key else f"{heading}: {column[len(key):]}"
                out.append((column, name, scale))
    return out


def load_published(directory) -> pd.DataFrame:
    """Every published number (figure, network, dataset, method, ..., line, sparsity, mean, std) in `directory`."""
    files = sorted(Path(directory).glob("*.csv")) if directory and Path(directory).is_dir() else []
    if not files:
        return pd.DataFrame(columns=["figure", "network", "dataset", "line", "sparsity", "mean", "std"])
    frames = [pd.read_csv(f).assign(source=f.stem) for f in files]
    published = pd.concat(frames, ignore_index=True)
    missing = {"network", "dataset", "line", "sparsity", "mean", "std"} - set(published.columns)
    if missing:
        raise KeyError(f"published numbers in {directory} lack the columns {sorted(missing)}")
    if "figure" not in published:
        published["figure"] = published.get("table", "")
    published["doubt"] = published["doubt"].fillna("") if "doubt" in published else ""
    return published


def beside_published(frame: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Each published number that this frame reproduces, with the reproduced test accuracy (percent) beside it.
    A row reproduces it when its network (its 'network' column, else its model), data set, line and sparsity
    are the published ones. A doubtful published number says so, and why."""
    if published.empty or frame.empty:
        return pd.DataFrame()
    network = frame["network"] if "network" in frame else frame["model"]
    rows = []
    for p in published.itertuples(index=False):
        hit = frame[(network == p.network) & (frame["data"] == p.dataset) & (frame["line"] == p.line)
                    & ((frame["sparsity"] - p.sparsity).abs() < SPARSITY_TOLERANCE)]
        if hit.empty:
            continue
        number = f"{p.mean:g}" + ("" if pd.isna(p.std) else f" ± {p.std:g}") + (" (doubtful)" if p.doubt else "")
        rows.append({"source": f"{p.figure} ({p.source})", "network": p.network, "dataset": p.dataset,
                     "line": p.line, "sparsity": f"{100 * p.sparsity:.4g}%", "published (%)": number,
                     "reproduced (%)": _cell(hit["accuracy"], 100, 4), "doubtful because": p.doubt})
    return pd.DataFrame(rows).set_index(["source", "network", "dataset", "line", "sparsity"]) if rows else \
        pd.DataFrame()


def _uri(storage: Storage, *parts: str) -> str:
    """The path or URI of a location below `storage`, as Storage() and results.load() take it."""
    return storage.uri_of(*parts)


def _is_dir(storage: Storage, *parts: str) -> bool:
    return storage.fs.get_file_info(storage.path(*parts)).type == pafs.FileType.Directory


def _kind(storage: Storage, *parts: str) -> str | None:
    """'study' (spec.yaml with trials/), 'script' (a script's results.parquet) or None."""
    names = set(storage.list(*parts))
    if "spec.yaml" in names and results.ROWS in names:
        return "study"
    return "script" if results.CONSOLIDATED in names and "spec.yaml" not in names else None


def study_cost(storage: Storage, *parts: str, include_stale: bool = False) -> dict:
    """Trials by status and the CPU-/GPU-hours of the study at `parts`: each row's wall time times the resources
    it held."""
    spec = results.recorded_spec(storage, *parts) or {}
    frame = results.load(_uri(storage, *parts), include_stale=include_stale)
    cpus, gpus = float(spec.get("cpus_per_worker", 1.0)), float(spec.get("gpus_per_worker", 0.0))
    held = frame.get("wall_time", pd.Series(0.0, index=frame.index)).fillna(0.0) * \
        frame.get("workers", pd.Series(1, index=frame.index)).fillna(1)
    on_gpu = frame.get("device", pd.Series("", index=frame.index)).fillna("").astype(str).str.startswith("cuda")
    counts = frame["status"].value_counts()
    return {"study": name_of(_uri(storage, *parts)), "trials": len(frame),
            "completed": int(counts.get("completed", 0)), "diverged": int(counts.get("diverged", 0)),
            "failed": int(counts.get("failed", 0)), "CPU-hours": float((held * cpus).sum() / 3600),
            "GPU-hours": float((held[on_gpu] * gpus).sum() / 3600)}


def section(storage: Storage, parts: tuple[str, ...], kind: str, published: pd.DataFrame,
            figure_dir: str, include_stale: bool = False) -> tuple[list[str], list[str]]:
    """The lines of one script's (or study's) section and the figures it shows (paths relative to the root);
    each figure is linked as figure_dir + that path."""
    name = name_of(_uri(storage, *parts))
    out, figures = [f"## {name}", ""], []
    files = storage.list(*parts)
    for text in (f for f in files if f.endswith(".txt")):
        out += [f"`{text}`:", "", "```", storage.read_bytes(*parts, text).decode().rstrip(), "```", ""]
    for figure in (f for f in files if f.endswith(".png")):
        figures.append("/".join([*parts, figure]))
        out += [f"![{figure.removesuffix('.png')}]({figure_dir}{figures[-1]})", ""]
    rows = results.load(_uri(storage, *parts), include_stale=include_stale)
    frame = finished(rows)
    if frame.empty:
        return out + ["No finished trials yet.", ""], figures
    for title, rows in panels(frame).items():
        out += [f"### {title}", "", "Test accuracy (%), mean ± std (seeds) per sparsity:", "",
                _markdown(value_table(rows, "accuracy", 100)), ""]
        for column, heading, scale in metric_columns(rows):
            out += [f"{heading}, mean ± std (seeds):", "", _markdown(value_table(rows, column, scale)), ""]
    matched = beside_published(frame, published)
    if not matched.empty:
        out += ["### Published beside reproduced", "", _markdown(matched), ""]
    return out, figures


def build(root, published_dir=PUBLISHED, figure_dir: str = "", include_stale: bool = False) -> tuple[str, list[str]]:
    """The Markdown page for `root` (a path or URI): a storage directory of script outputs and studies, one
    script's output directory or one study directory. Returns the page and the figures it shows (paths relative
    to root), each linked as figure_dir + that path."""
    storage = Storage(root)
    if not _is_dir(storage):
        raise FileNotFoundError(f"{root} is not a directory of studies or script outputs (nothing is there)")
    published = load_published(published_dir)
    kind = _kind(storage)
    if kind:   # one script's or one study's directory
        entries = [((), kind)]
    else:
        entries = [((name,), _kind(storage, name)) for name in storage.list() if _is_dir(storage, name)]
        entries = [(parts, kind) for parts, kind in entries if kind]
    if not entries:
        raise FileNotFoundError(f"{root} holds neither script outputs (<script>/results.parquet) nor studies "
                                f"(<study>/spec.yaml with trials/), and is neither itself")
    lines, figures = [f"# raysweep report: {name_of(storage.uri)}", ""], []
    for parts, kind in entries:
        if kind == "script" or not parts:   # in a storage directory, studies show in their scripts' sections
            shown, shows = section(storage, parts, kind, published, figure_dir, include_stale)
            lines += shown
            figures += shows
    studies = [parts for parts, kind in entries if kind == "study"]
    if studies:
        cost = pd.DataFrame([study_cost(storage, *parts, include_stale=include_stale)
                             for parts in studies]).set_index("study")
        cost.loc["total"] = cost.sum(numeric_only=True)
        shown = cost.copy()
        for column in ("CPU-hours", "GPU-hours"):
            shown[column] = [f"{v:.3f}" for v in cost[column]]
        for column in ("trials", "completed", "diverged", "failed"):
            shown[column] = cost[column].astype(int)
        lines += ["## Cost of the grid", "",
                  "Per study: trials by status; CPU-hours and GPU-hours are each trial's wall time times the "
                  "workers and the CPUs or GPUs per worker it held (the dense rows carry their dense training).",
                  "", _markdown(shown), ""]
    return "\n".join(lines), figures


def write(root, output=None, published_dir=PUBLISHED, include_stale: bool = False) -> str:
    """Write the page for `root` to `output` (a path or URI of the page or of a directory for report.md; default
    root/report.md), creating its directory; returns where the page is. Figures are linked where they lie when the
    page is in root, and otherwise copied into <page name>_figures/ beside the page, keeping their paths below
    root."""
    source = Storage(root)
    output = str(output) if output is not None else _uri(source, "report.md")
    into_dir = output.endswith("/") or _is_dir(Storage(output))
    target, name = (Storage(output), "report.md") if into_dir else split(output)
    in_place = target.fs.equals(source.fs) and target.root.rstrip("/") == source.root.rstrip("/")
    figure_dir = "" if in_place else f"{Path(name).stem}_figures/"
    page, figures = build(root, published_dir, figure_dir, include_stale)
    if not in_place:
        for figure in figures:
            target.write_bytes(source.read_bytes(figure), figure_dir + figure)
    target.write_bytes(page.encode(), name)
    return _uri(target, name)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(prog="raysweep report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="path or URI: a storage directory of script outputs and studies, one script's "
                                    "output directory (e.g. runs/fig4) or one study directory")
    parser.add_argument("--output", default=None,
                        help="path or URI of the page, or of a directory for report.md (default DIR/report.md); "
                             "created if missing, the figures copied beside it unless it is in DIR")
    parser.add_argument("--published", default=str(PUBLISHED),
                        help="directory of published numbers (*.csv with network, dataset, line, sparsity, mean, std)")
    parser.add_argument("--include-stale", action="store_true",
                        help="also the rows of trials a study's current spec no longer has")
    args = parser.parse_args(argv)
    try:
        target = write(args.dir, args.output, args.published, args.include_stale)
    except (OSError, ValueError) as e:   # nothing there, a URI no file system knows, an unreachable store
        from .cli import _unusable
        raise _unusable(args.dir, e) from None
    print(f"wrote {target}")
    return target
