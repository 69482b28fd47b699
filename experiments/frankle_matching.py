"""Frankle et al.'s highest matching sparsity, and the studies of the figures measured there (Figures 6, 7, 11)."""

from __future__ import annotations

import argparse
import dataclasses

import pandas as pd

import common
from raysweep import plots, sweep

# The methods at initialisation that Figures 6 and 11 compare at the highest matching sparsity.
AT_MATCHING = [sweep.Grid(methods=["random", "magnitude", "snip", "grasp", "synflow"]),
               sweep.Grid(methods=["synflow"], ablations=["shuffle"])]


def colour(line: str) -> str | None:
    """plots.COLOURS, plus one for shuffled SynFlow (Frankle draws it orange, which is random's colour here)."""
    return "tab:pink" if line == "synflow (shuffle)" else plots.COLOURS.get(line)


def at_matching(args: argparse.Namespace) -> dict[str, tuple[sweep.StudyRun, float]]:
    """Panel title -> (run, highest matching sparsity s) of one study per network: first magnitude pruning after
    training and the dense network at every sparsity (to find s), then AT_MATCHING's methods at s, added to the
    same study. Figures 6 and 11 share it, so running both on one storage trains everything once."""
    out = {}
    for title, spec in common.frankle_panels(args.preset, args.storage, args.data_root, "frankle-matching",
                                             grids=[common.AFTER_TRAINING]).items():
        sparsity = highest_matching(spec, args, title)
        grids = [common.AFTER_TRAINING] + [g.replace(sparsities=[sparsity]) for g in AT_MATCHING]
        out[title] = (common.run(spec.replace(grids=grids), args, title), sparsity)
    return out


def highest_matching(spec: sweep.StudySpec, args: argparse.Namespace, title: str,
                     dense_trainings: list | None = None) -> float:
    """Run `spec` (which has magnitude pruning after training and the dense network) and return its highest
    matching sparsity; with a single sparsity that is the answer whatever the accuracies, so nothing runs yet.
    Appends the run's count of dense trainings to `dense_trainings`."""
    if len(spec.sparsities) == 1:
        return spec.sparsities[0]
    first = common.run(spec, args, title)
    if dense_trainings is not None:
        dense_trainings.append(first.dense_trainings)
    sparsity = common.matching_sparsity(first.frame)
    print(f"highest matching sparsity of {title}: {100 * sparsity:.1f}%")
    return sparsity


def record(out: common.Outputs, runs: dict[str, sweep.StudyRun]) -> str:
    """studies.csv: what each study cost this time (trials run, skipped, failed, dense trainings)."""
    rows = [{"panel": title, "study": r.path, "ran": r.ran, "skipped": r.skipped, "failed": r.failed,
             "dense_trainings": r.dense_trainings} for title, r in runs.items()]
    return out.text(pd.DataFrame(rows).to_csv(index=False), "studies.csv")
