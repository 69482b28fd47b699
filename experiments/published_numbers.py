"""The published numbers the Frankle et al. and Hayou et al. scripts reproduce, parsed from the papers' plain text
into raysweep/published/{frankle_appendix_h,frankle_replication,hayou_tables}.csv for the report to set beside
reproduced ones.

    python experiments/published_numbers.py [--papers /work/shared/papers]

Columns: figure ("Figure 2", "Figure 5"; "Table 1"...), network, dataset, method, ablation, prune_at, line,
sparsity (a fraction), mean and std (test accuracy in percent, as published; std empty where none is printed), and
doubt: empty, or why the number is doubtful (the report shows it so).
- Frankle: network and dataset are raysweep model and data names (a result row's `model` and `data`); method,
  ablation and prune_at those of the trial; line is plots.label() of such a row. Figure 2's benchmark "LTR After
  Training" is lottery ticket rewinding to the network's rewinding step (Appendix B); "Magnitude After Training"
  is magnitude pruning after training. The replication tables of Appendices D-F (frankle_replication.csv) have
  both the original paper's "Reported" numbers and Frankle's "Ours", told apart by `figure`; line "dense" is the
  unpruned network (sparsity 0).
- Hayou: network is the paper's name (ResNet32, VGG16, "V-CNN L=10", "ResNet32 (tanh)"; hayou_tables' `network`
  column), line its table row label (random, magnitude, snip, grasp, synflow, SBP-SR, GraSP-SR, EOC + rescaling,
  "no pruning" at sparsity 0, Table 4's "Ordered phase init" and "EOC init").

The text extraction garbled parts of both papers; what cannot be attributed with certainty is left out rather than
guessed: Frankle tables whose header is not a prefix of the paper's 19 sparsities, tables that repeat a network
within one section (their own section heading is missing from the text), rows with more numbers than the header
has sparsities, labels appearing twice in one table; Hayou's OBD row and Table 10 (a copy of Table 9's numbers under
another caption). What is kept but doubtful carries its reason in `doubt`:
- a row with fewer numbers than its table has sparsities (placed in the first columns, unless GAPS knows where the
  missing one belongs);
- a row sharing a run of RUN or more consecutive numbers (mean and std) with another row of its table (a copy);
- a row with an arithmetic run: RUN or more consecutive means with one common nonzero step and one std;
- Hayou's Table 8, which has no stds ("TODO: These results will be updated to include confidence intervals"), and
  Table 9 numbers whose std is garbled in the text.
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

import pandas as pd

import common

PACKAGE = Path(__file__).resolve().parents[1] / "raysweep" / "published"
# as printed (one decimal, percent); a row stores the exact 1 - 0.8^k that the scripts run
FRANKLE_SPARSITIES = [round(100 * (1 - 0.8 ** k), 1) for k in range(19)]
COLUMNS = ["figure", "network", "dataset", "method", "ablation", "prune_at", "line", "sparsity", "mean", "std",
           "doubt"]
NETWORKS = {"ResNet-20 (CIFAR-10)": ("cifar_resnet_20", "cifar10"), "VGG-16 (CIFAR-10)": ("cifar_vgg_16", "cifar10"),
            "ResNet-18 (TinyImageNet)": ("imagenet_resnet_18", "tinyimagenet"),
            "ResNet-50 (ImageNet)": ("imagenet_resnet_50", "imagenet")}
# Read by eye, not detectable by rule: this table's numbers repeat VGG-16's (93%), not TinyImageNet accuracies (~51%).
FRANKLE_CORRUPT = {("2", "ResNet-18 (TinyImageNet)")}
# (figure, network, row label) -> the column a row one number short lacks. Figure 2's ResNet-20 "Magnitude" row has
# 18 numbers; set beside Figure 5's "Unmodified" magnitude row of the same network (19 numbers, the same runs:
# 92.0 91.5 .. 89.8 89.3 88.6 .. 74.5) its 8th number, 88.6, is the 83.2% one: the 79.0% number is the one lost.
GAPS = {("2", "ResNet-20 (CIFAR-10)", "magnitude"): FRANKLE_SPARSITIES.index(79.0)}
RUN = 4
FIGURE2 = {"ltr after training": ("ltr", "none", None), "magnitude after training": ("magnitude", "none", "end"),
           "random": ("random", "none", "init"), "magnitude": ("magnitude", "none", "init"),
           "snip": ("snip", "none", "init"), "grasp": ("grasp", "none", "init"),
           "grasp magnitude": ("grasp_magnitude", "none", "init"), "synflow": ("synflow", "none", "init"),
           "synflow (shuffled layerwise)": ("synflow", "shuffle", "init")}
ABLATIONS = {"unmodified": "none", "shuffled layerwise": "shuffle", "reinitialized": "reinit", "inverted": "invert"}
CELL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:±|\\pm)\s*(\d+(?:\.\d+)?)\s*$")


def rewind_step(model: str) -> str:
    """The rewinding step of LTR for one of Frankle's networks: its training preset's (Appendix A/B)."""
    from raysweep import training
    from raysweep.sweep.spec import parse_when

    preset = next(p for m, _, p, *_ in common.FRANKLE_PAPER if m == model)
    return parse_when(training.preset(preset).rewind_step)


def _line(method: str, ablation: str, prune_at: str) -> str:
    from raysweep import plots
    return plots.label({"method": method, "ablation": ablation, "prune_at": prune_at, "quota": "global"})


def _ablation(label: str) -> str | None:
    label = label.strip().lower()
    if label in ABLATIONS:
        return ABLATIONS[label]
    if re.match(r"^in(i)?t\b|^int\.|^init\.", label):   # "Init N(0, 1)" in its garbled spellings
        return "init_normal"
    return None


def _runs(values: list, other: list) -> int:
    """The longest run of consecutive columns where both rows have the same (mean, std)."""
    best = run = 0
    for a, b in zip(values, other):
        run = run + 1 if a is not None and a == b else 0
        best = max(best, run)
    return best


def _arithmetic(values: list) -> list | None:
    """The first run of RUN or more consecutive means with one nonzero step and one std, if any."""
    for start in range(len(values) - RUN + 1):
        window = values[start:start + RUN]
        if any(v is None for v in window):
            continue
        steps = {round(b[0] - a[0], 6) for a, b in zip(window, window[1:])}
        if len(steps) == 1 and 0 not in steps and len({v[1] for v in window}) == 1:
            end = start + RUN
            while end < len(values) and values[end] is not None and values[end][1] == window[0][1] \
                    and round(values[end][0] - values[end - 1][0], 6) in steps:
                end += 1
            return [v[0] for v in values[start:end]]
    return None


def _name(label: str) -> str:
    return re.sub(r"\$\\mathcal\{N\}(.*?)\$", r"N\1", label)


def doubts(rows: dict[str, list], placed=()) -> dict[str, list[str]]:
    """Label -> reasons to doubt that row of one table (values: one (mean, std) or None per column); rows in
    `placed` had their missing numbers put where they belong (GAPS)."""
    out = {label: [] for label in rows}
    for label, values in rows.items():
        present = sum(v is not None for v in values)
        if present < len(values) and label not in placed:
            out[label].append(f"{present} of {len(values)} numbers in the text, placed in the first columns")
        for other, other_values in rows.items():
            shared = _runs(values, other_values)
            if other != label and shared >= RUN:
                out[label].append(f"{shared} consecutive numbers identical to the {_name(other)!r} row")
        run = _arithmetic(values)
        if run:
            out[label].append("arithmetic run " + ", ".join(f"{v:g}" for v in run))
    return out


def frankle(text: str) -> pd.DataFrame:
    body = text[text.index("H TABLES OF NUMBERS"):text.index("I MODIFIED RESNET")]
    figure, method, network, header, seen = None, None, None, None, set()
    tables: list[tuple] = []
    for raw in body.splitlines():
        line = raw.strip()
        section = re.match(r"^H\.\d+ FIGURE (\d+)(?: - (\w+))?", line)
        if section:
            figure, method, seen = section.group(1), (section.group(2) or "").lower() or None, set()
            network = None
            continue
        if line in NETWORKS:
            network = line if line not in seen and (figure, line) not in FRANKLE_CORRUPT else None
            seen.add(line)
            header = None
            continue
        if network is None or "\t" not in raw:
            continue
        cells = raw.split("\t")
        if header is None:
            numbers = [c.strip() for c in cells[1:] if c.strip()]
            try:
                header = [round(float(c), 1) for c in numbers]
            except ValueError:
                header = []
            if header != FRANKLE_SPARSITIES[:len(header)]:
                network = None   # a garbled header: which number is which sparsity is unknown
            else:
                tables.append((figure, method, network, header, []))
            continue
        tables[-1][4].append((cells[0].strip(), cells[1:]))
    rows = []
    for figure, method, network, header, table_rows in tables:
        counts = pd.Series([label.lower() for label, _ in table_rows]).value_counts()
        kept, placed = {}, set()
        for label, cells in table_rows:
            if counts[label.lower()] > 1 or len([c for c in cells if c.strip()]) > len(header) \
                    or len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
                continue
            matches = [CELL.match(c) for c in cells[:len(header)]]
            values = [(float(m.group(1)), float(m.group(2))) if m else None for m in matches]
            values += [None] * (len(header) - len(values))
            gap = GAPS.get((figure, network, label.lower()))
            if gap is not None and sum(v is not None for v in values) == len(header) - 1 and values[-1] is None:
                values.insert(gap, values.pop())
                placed.add(label)
            kept[label] = values
        reasons = doubts(kept, placed)
        model, data = NETWORKS[network]
        for label, values in kept.items():
            if figure == "2":
                setting = FIGURE2.get(label.lower())
                if setting and setting[0] == "ltr":
                    setting = ("ltr", "none", rewind_step(model))
            else:
                ablation = _ablation(label)
                setting = (method, ablation, "init") if ablation else None
            if setting is None:
                continue
            for k, value in enumerate(values):
                if value is not None:
                    rows.append({"figure": f"Figure {figure}", "network": model, "dataset": data,
                                 "method": setting[0], "ablation": setting[1], "prune_at": setting[2],
                                 "line": _line(*setting), "sparsity": round(1 - 0.8 ** k, 4), "mean": value[0],
                                 "std": value[1], "doubt": "; ".join(reasons[label])})
    return pd.DataFrame(rows, columns=COLUMNS)


# Appendices D-F: Frankle's replications of the SNIP, GraSP and SynFlow papers. Table -> (method, the paper whose
# numbers are "Reported"), and the papers' network names -> (model, data set).
REPLICATIONS = {"2": ("snip", "Lee et al."), "3": ("snip", "Wang et al."), "5": ("grasp", "Wang et al."),
                "7": ("dense", "Tanaka et al.")}
REPLICATED = {"VGG-16": "cifar_vgg_16", "VGG2-16": "cifar_vgg2_16", "WRN-14-8": "wide_resnet_14_8",
              "WRN-14-10": "wide_resnet_14_10", "WRN-20-8": "wide_resnet_20_8", "VGG-19": "cifar_vgg_19",
              "WRN-32-2": "wide_resnet_32_2", "ResNet-50": "imagenet_resnet_50", "VGG-11": "cifar_vgg_11",
              "ResNet-18 (Modified)": "tiny_resnet_18"}
DATASETS = {"CIFAR-10": "cifar10", "TinyImageNet": "tinyimagenet", "ImageNet": "imagenet"}
TANAKA = "lr=0.01"   # Table 7's rows trained with Tanaka et al.'s hyperparameters
PERCENT = re.compile(r"^(~)?(\d+(?:\.\d+)?)%")


def replication_network(model: str, tanaka: bool = False) -> str:
    """The `network` of a replication row: the model, or for Table 7's rows trained with Tanaka et al.'s
    hyperparameters the model with that said (frankle_replication's `network` column)."""
    return f"{model} (Tanaka et al.'s hyperparameters)" if tanaka else model


def frankle_replication(text: str) -> pd.DataFrame:
    """Tables 2, 3, 5 (unpruned and pruned accuracy, "Reported" by the original paper and "Ours") and 7 (unpruned
    accuracy of the SynFlow networks) of Appendices D-F. A number "Reported" as "~92%" (read off Tanaka et al.'s
    plots: "reported numbers are approximate") is doubtful; "diverged" and "—" are not numbers."""
    rows, pending, name = [], [], None
    for raw in text[text.index("D REPLICATING SNIP"):text.index("G LAYERWISE")].splitlines():
        caption = re.match(r"^Table (\d+):", raw)
        if caption:
            if caption.group(1) in REPLICATIONS:
                rows += _replication_rows(caption.group(1), pending)
            pending = []
            continue
        cells = raw.split("\t")
        if len(cells) < 4:
            continue
        if cells[0].strip():
            name = cells[0].strip()
        pending.append((name, [c.strip() for c in cells]))
    return pd.DataFrame(rows, columns=COLUMNS)


def _replication_rows(table: str, lines: list) -> list[dict]:
    method, source = REPLICATIONS[table]
    out = []

    def add(figure, model, data, line, sparsity, cell, note=""):
        m = PERCENT.match(cell)
        if m:
            out.append({"figure": figure, "network": replication_network(model, TANAKA in note), "dataset": data,
                        "method": line, "ablation": "none", "prune_at": "init", "line": line, "sparsity": sparsity,
                        "mean": float(m.group(2)), "std": float("nan"),
                        "doubt": "approximate: read off the original paper's plots" if m.group(1) else ""})

    for name, cells in lines:
        if name not in REPLICATED:
            continue
        model = REPLICATED[name]
        if table == "7":   # Network, Dataset, Reported, Replicated, Notes
            data = DATASETS[cells[1]]
            add(f"Table {table} ({source})", model, data, "dense", 0.0, cells[2], cells[4])
            add(f"Table {table} (Frankle et al.)", model, data, "dense", 0.0, cells[3], cells[4])
            continue
        data = "imagenet" if model == "imagenet_resnet_50" else "cifar10"
        sparsity = round(float(PERCENT.match(cells[3]).group(2)) / 100, 4)
        if cells[1]:   # the first row of a network carries its unpruned accuracies
            add(f"Table {table} ({source})", model, data, "dense", 0.0, cells[1])
            add(f"Table {table} (Frankle et al.)", model, data, "dense", 0.0, cells[2])
        add(f"Table {table} ({source})", model, data, method, sparsity, cells[4])
        add(f"Table {table} (Frankle et al.)", model, data, method, sparsity, cells[5])
    return out


# table -> its columns as (network, or None for the row's own; dataset; sparsity %). Table 9 is read from its first
# copy; Table 10 repeats its numbers under a caption about a vanilla CNN and is not read.
HAYOU_TABLES = {
    "Table 1": [(None, "cifar10", s) for s in (90, 95, 98, 99.5, 99.9)],
    "Table 2": [(None, d, s) for d in ("cifar10", "cifar100") for s in (90, 95, 98)],
    "Table 3": [(None, "tinyimagenet", s) for s in (85, 90, 95)],
    "Table 4": [(f"V-CNN L={depth}", "mnist", 50) for depth in (10, 50, 100)],
    "Table 5": [(None, "cifar10", s) for s in (85, 90, 95)],
    "Table 8": [(None, "imagenet", s) for s in (85, 90, 95)],
    "Table 9": [(None, "cifar10", s) for s in (90, 98, 99.5, 99.9)],
}
HAYOU_DOUBT = {"Table 8": "no stds; the caption says 'TODO: These results will be updated to include confidence "
                          "intervals'"}
HAYOU_METHODS = [(r"SBP-SR", "SBP-SR"), (r"GRASP-SR", "GraSP-SR"), (r"GRASP", "grasp"), (r"S ?ynFlow", "synflow"),
                 (r"SNIP", "snip"), (r"Random Pruning", "random"), (r"MBP", "magnitude"), (r"OBD", None),
                 (r"EOC \+ RESCALING", "EOC + rescaling"), (r"Ordered phase Init", "Ordered phase init"),
                 (r"EOC INIT", "EOC init"), (r"\(NO PRUNING\)", "no pruning")]
TOKEN = re.compile(r"(?P<net>3XVGG16|VGG16|ResNet ?\d+)|(?P<act>(?:Rel[uU]|Tanh)(?=\s))"
                   r"|(?P<pm>\d+(?:\.\d+)?\s*±\s*\d+(?:\.\d+)?)|(?P<paren>\d+(?:\.\d+)?\([^)]*\))"
                   r"|(?P<bare>\d+\.\d\d?)|(?P<method>" + "|".join(f"(?:{p})" for p, _ in HAYOU_METHODS) + ")",
                   re.IGNORECASE)


def _hayou_value(m: re.Match) -> tuple[float, float, str]:
    """(mean, std, doubt) of a number token: 'm ± s', 'm(s)' or a bare 'm' (no std; the bare pattern wants a
    decimal point, so "(1990)" and page numbers glued to a number, "62.6635", are not read as numbers)."""
    if m.group("pm"):
        mean, std = (float(v) for v in re.split(r"\s*±\s*", m.group("pm")))
        return mean, std, ""
    if m.group("paren"):
        mean, std = re.fullmatch(r"(.*)\((.*)\)", m.group("paren")).groups()
        if re.fullmatch(r"0|[1-9]\d*(?:\.\d+)?|0\.\d+", std):   # not "(008)" or "(0.0.55)"
            return float(mean), float(std), ""
        return float(mean), float("nan"), f"std garbled in the text: '({std})'"
    return float(m.group("bare")), float("nan"), ""


def hayou(text: str) -> pd.DataFrame:
    # undo the extraction's spaces inside numbers ("63. 13", "0. 1 1") without joining tab-separated cells
    text = re.sub(r"(?<=\d\.) +(?=\d)", "", text)
    text = re.sub(r"(?<=\d) (?=\d)", "", text)
    text = re.sub(r"3XVGG16", "\t3XVGG16", text)   # glued to the number before it: "92.70±0.063XVGG16"
    rows = []
    for table, columns in HAYOU_TABLES.items():
        start = text.index(f"{table}:")
        end = re.compile(r"Table \d+:").search(text, start + len(table) + 1)
        network, activation, method, values = None, "", None, []

        def flush():
            if method == "no pruning" and len(values) == 2:   # Table 2: the unpruned network, once per data set
                cells = [((None, data, 0), v) for data, v in zip(("cifar10", "cifar100"), values)]
            elif method and len(values) == len(columns):
                cells = list(zip(columns, values))
            else:
                return
            for (column_network, data, s), (mean, std, doubt) in cells:
                rows.append({"figure": table, "network": column_network or network + activation, "dataset": data,
                             "method": method, "ablation": "none", "prune_at": "init", "line": method,
                             "sparsity": round(s / 100, 4), "mean": mean, "std": std,
                             "doubt": "; ".join(d for d in (HAYOU_DOUBT.get(table, ""), doubt) if d)})

        for m in TOKEN.finditer(text, start, end.start() if end else len(text)):
            if m.group("net"):
                flush()
                network = re.sub(r"\s", "", m.group("net")).replace("XVGG", "xVGG").replace("Resnet", "ResNet")
                activation, method, values = "", None, []
            elif m.group("act"):
                flush()
                activation = " (tanh)" if m.group("act").lower() == "tanh" else ""
                method, values = None, []
            elif m.group("method"):
                flush()
                method = next(name for pattern, name in HAYOU_METHODS
                              if re.fullmatch(pattern, m.group("method"), re.IGNORECASE))
                values = []
            else:
                values.append(_hayou_value(m))
        flush()
    return pd.DataFrame(rows, columns=COLUMNS)


def paper(papers: Path, prefix: str) -> str:
    (path,) = sorted(Path(papers).glob(f"{prefix}_*.txt"))
    return path.read_text()


def tables(papers: Path) -> dict[str, pd.DataFrame]:
    frankle_text = paper(papers, "000")
    return {"frankle_appendix_h.csv": frankle(frankle_text),
            "frankle_replication.csv": frankle_replication(frankle_text),
            "hayou_tables.csv": hayou(paper(papers, "001"))}


def csv_text(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", default="/work/shared/papers", help="directory of the papers' text files")
    args = parser.parse_args(argv)
    from raysweep.storage import Storage
    storage = Storage(str(PACKAGE))
    for name, frame in tables(Path(args.papers)).items():
        storage.write_bytes(csv_text(frame).encode(), name)
        print(f"{PACKAGE / name}: {len(frame)} numbers\n{frame.groupby(['figure', 'network', 'line']).size()}")


if __name__ == "__main__":
    main()
