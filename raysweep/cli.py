"""Command line: raysweep run SPEC.yaml | status DIR | plot DIR | search SPEC.yaml | report DIR | migrate DIR | schema.

Modules are imported inside the commands that use them, so `--help`, `--version` and spec errors answer without
loading torch or Ray. Exit codes: 0 done, 1 some trials failed (or the study is busy, or the driver lost its lease to
another), 2 a bad spec or a study the cluster cannot run, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import sys

EXIT_FAILED, EXIT_BAD_SPEC, EXIT_INTERRUPTED = 1, 2, 130
MAX_TRIALS = 100_000   # a larger grid is more often a typo than a plan: --max-trials says it is meant


def _problems(lines: list[str]) -> int:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_BAD_SPEC


def _load_spec(args):
    """The spec file with the command line's overrides, checked; SpecError naming every problem."""
    from .sweep.spec import SpecError, StudySpec
    if args.max_trials < 1:
        raise SpecError([f"--max-trials: must be a whole number >= 1 (got {args.max_trials})"])
    spec = StudySpec.from_yaml(args.spec)
    if args.storage is not None:   # given, even '': it replaces the file's field and is checked as that is
        spec = spec.replace(storage=args.storage)
    from .sweep.grid import count   # (imports torch: after the file's own errors, which answer without it)
    trials = count(spec)
    if trials > args.max_trials:   # counted from the lists' lengths: a grid of millions is never expanded
        raise SpecError([f"grids: {trials:,} trials exceed --max-trials {args.max_trials} (raise it if they are "
                         f"meant)"])
    return spec


def _verbosity(args) -> int:
    return 0 if args.quiet else 2 if args.verbose else 1


def run(args) -> int:
    from . import sweep
    try:
        spec = _load_spec(args)
        if args.dry_run:
            return dry_run(spec, args)
        outcome = sweep.run_study(spec, address=args.address, verbose=_verbosity(args), wait=args.wait)
    except sweep.SpecError as e:
        return _problems(e.problems)
    except sweep.ResourceError as e:
        return _problems([str(e)])
    except sweep.LeaseHeld as e:
        print(f"error: {e}; run again when it is done, or with --wait to wait for it", file=sys.stderr)
        return EXIT_FAILED
    except sweep.LeaseLost as e:   # paused past its lease, which another driver took: that one runs the study now
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except sweep.StudyInterrupted as e:
        _summary(e.run, args, interrupted=True)
        return EXIT_INTERRUPTED
    _summary(outcome, args)
    return EXIT_FAILED if outcome.failed else 0


def _summary(outcome, args, interrupted: bool = False) -> None:
    from . import plots
    head = "interrupted: " if interrupted else ""
    print(f"\n{head}{outcome.ran} trials finished in this run, {outcome.skipped} already done, {outcome.failed} "
          f"failed, {outcome.missing} missing, {outcome.dense_trainings} dense trainings; results in {outcome.path}")
    table = plots.summary(outcome.frame)
    if len(table) and not args.quiet:   # empty when every trial failed: the failures are listed by `status`
        print(table.to_string())


def dry_run(spec, args) -> int:
    """Validate, expand the grid and count, without Ray, without writing anything."""
    from . import sweep
    trials = sweep.expand(spec)
    problems = sweep.preflight(spec, trials, args.address)
    if problems:   # the storage among them: the plan reads it
        return _problems(problems)
    planned = sweep.plan(spec, trials)
    dense = {t.dense_id for t in planned.todo if t.needs_dense}
    print(f"study {spec.name} in {sweep.study_path(spec)}: {len(planned.trials)} trials, {planned.done} done, "
          f"{len(planned.todo)} would run (needing {len(dense)} dense run(s)), {planned.stale} stale row(s) on disk")
    return 0


def _unusable(path: str, e: Exception) -> SystemExit:
    """Exit 2 with one line: a directory that cannot be read (a URI no file system knows, an unreachable store)."""
    from .sweep.errors import one_line
    return SystemExit(_problems([one_line(str(e)) if path in str(e) else f"{path}: {one_line(str(e))}"]))


def _open(path: str):
    """(storage of the parent, the directory's name) of a local path or URI."""
    from .storage import split
    try:
        return split(path)
    except ValueError as e:   # pyarrow's ArrowInvalid too: a URI no file system knows
        raise _unusable(path, e) from None


def _studies(path: str) -> list[tuple]:
    """The studies a directory stands for: itself (a study directory) or those whose rows a script's output holds."""
    from . import results
    storage, name = _open(path)
    try:
        if storage.exists(name, results.ROWS) or storage.exists(name, "spec.yaml"):
            return [(storage, name)]
        if storage.exists(name, results.CONSOLIDATED):
            frame = results.load(path)
            return [(storage, study) for study in dict.fromkeys(frame["study"].dropna())
                    if storage.exists(study, results.ROWS)]
    except OSError as e:
        raise _unusable(path, e) from None
    raise SystemExit(_problems([f"{path} is neither a study directory (trials/) nor a script's output "
                                f"({results.CONSOLIDATED})"]))


def status(args) -> int:
    import pandas as pd

    from . import results
    from .sweep.errors import one_line
    for storage, name in _studies(args.dir):
        ids = results.current_ids(storage, name)
        rows = results.scan(storage, name).rows
        now, stale = results.split_stale(rows, ids)
        total = len(ids) if ids is not None else len(now)
        counts = now["status"].value_counts().to_dict()
        print(f"study {name} ({storage.path(name)}): {total} trials")
        for state in ("completed", "diverged", "failed"):
            print(f"  {state:<10}{counts.get(state, 0)}")
        print(f"  {'missing':<10}{len(ids - set(now['trial_id'])) if ids is not None else 0}")
        if len(stale):
            print(f"  {'stale':<10}{len(stale)} row(s) of trials the current spec no longer has (kept on disk)")
        failed = now[now["status"] == "failed"]
        for _, row in failed.iterrows():
            what = " ".join(f"{k}={row[k]}" for k in ("method", "sparsity", "seed", "ablation", "quota", "prune_at",
                                                      "target") if k in row and not pd.isna(row[k]))
            print(f"  failed {row['trial_id']} {what}: {one_line(row.get('error'))}")
    return 0


def plot(args) -> int:
    import tempfile
    from pathlib import Path

    from . import plots, results
    storage, name = _open(args.dir)
    try:
        frame = results.load(args.dir, include_stale=args.include_stale)
    except OSError as e:   # FileNotFoundError: neither a study nor a script's output
        raise _unusable(args.dir, e) from None
    if frame.empty:
        return _problems([f"{args.dir} holds no rows yet: nothing to plot"])
    out = args.out or storage.uri_of(name, "accuracy.png")
    panels = ({str(k): v for k, v in frame.groupby("panel", sort=False)} if "panel" in frame
              else {f"{m} ({d})": v for (m, d), v in frame.groupby(["model", "data"], sort=False)})
    target_storage, target = _open(out)
    with tempfile.TemporaryDirectory() as scratch:   # through the storage: atomic, and never through a link
        local = Path(scratch) / target
        plots.accuracy_vs_sparsity(panels, local)
        target_storage.write_bytes(local.read_bytes(), target)
    table = plots.summary(frame)
    if len(table):   # empty when every trial failed
        print(table.to_string())
    print(f"wrote {out}")
    return 0


def migrate(args) -> int:
    from . import results
    migrated = results.migrate(args.dir)
    for where in migrated:
        print(f"re-sealed {where}")
    print(f"{len(migrated)} file(s) without a checksum re-sealed as schema {results.SCHEMA_VERSION}")
    return 0


def schema(args) -> int:
    import json
    if args.kind == "study":
        from .sweep.spec import StudySpec as Spec
    else:
        from .quotasearch.spec import SearchSpec as Spec
    print(json.dumps(Spec.model_json_schema(), indent=2))
    return 0


def main(argv=None) -> int:
    from . import __version__
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s")
    if argv[:1] == ["search"]:   # these have their own parsers, options included
        from .quotasearch.cli import main as quotasearch_main
        return quotasearch_main(argv[1:])
    if argv[:1] == ["report"]:
        from .report import main as report_main
        report_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="raysweep", description="Distributed sweeps for pruning at initialization")
    parser.add_argument("--version", action="version", version=f"raysweep {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("run", help="run (or resume) every missing trial of a study spec")
    p.add_argument("spec", help="study YAML (fields: raysweep schema study, or raysweep.sweep.StudySpec)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or local)")
    p.add_argument("--storage", default=None, help="override the spec's storage")
    p.add_argument("--dry-run", action="store_true", help="check the spec and count the trials that exist, are "
                                                          "done and would run; start nothing")
    p.add_argument("--max-trials", type=int, default=MAX_TRIALS, metavar="N",
                   help=f"refuse a spec of more than N trials (default {MAX_TRIALS:,}), before expanding its grid")
    p.add_argument("--wait", action="store_true", help="if another driver runs this study now, wait for it "
                                                       "(default: refuse)")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("--verbose", action="store_true", help="Ray Tune's progress tables")
    loud.add_argument("--quiet", action="store_true", help="nothing but the final summary line")
    p.set_defaults(fn=run)
    p = commands.add_parser("status", help="finished, failed, missing and stale trials of a study directory, or of "
                                           "the studies behind a script's output directory")
    p.add_argument("dir", help="local path or URI")
    p.set_defaults(fn=status)
    p = commands.add_parser("plot", help="accuracy against sparsity of a study or script output directory")
    p.add_argument("dir", help="local path or URI")
    p.add_argument("--out", default=None, help="PNG path or URI (default DIR/accuracy.png)")
    p.add_argument("--include-stale", action="store_true", help="also rows of trials the current spec lacks")
    p.set_defaults(fn=plot)
    commands.add_parser("search", help="run or resume a quota search (raysweep.quotasearch.SearchSpec YAML)")
    commands.add_parser("report", help="one Markdown page of a storage directory's figures, tables, published "
                                       "numbers and cost")
    p = commands.add_parser("migrate", help="re-seal the row files of a study written before checksums (schema 1); "
                                            "only for files you know raysweep wrote, while no run is going")
    p.add_argument("dir", help="study directory or script output directory (local path or URI)")
    p.set_defaults(fn=migrate)
    p = commands.add_parser("schema", help="the JSON Schema of a spec file, for editors")
    p.add_argument("kind", choices=("study", "search"), nargs="?", default="study")
    p.set_defaults(fn=schema)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
