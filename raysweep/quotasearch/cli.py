"""`raysweep search SPEC.yaml`: run or resume a quota search from a YAML SearchSpec."""

from __future__ import annotations

import argparse
import json

from ..cli import _problems
from ..sweep.runner import ResourceError
from ..sweep.spec import SpecError
from .checks import SearchError
from .search import run_search
from .spec import SearchSpec


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="raysweep search", description=__doc__)
    parser.add_argument("spec", help="YAML file of a SearchSpec (raysweep.quotasearch.SearchSpec fields)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default $RAY_ADDRESS or a local one)")
    parser.add_argument("--storage", default=None, help="override the spec's storage")
    parser.add_argument("--trials", type=int, default=None, help="override proposals per (family, sparsity)")
    parser.add_argument("--no-final", action="store_true", help="skip the final test-set evaluation")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("--verbose", action="store_true", help="Ray Tune's progress tables")
    loud.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    changes = {k: v for k, v in (("storage", args.storage), ("trials", args.trials)) if v is not None}
    if args.no_final:
        changes["final"] = False
    try:   # a bad spec or storage: one line per problem, exit 2, before Ray starts or anything is written
        spec = SearchSpec.from_yaml(args.spec).replace(**changes)
        run = run_search(spec, address=args.address, verbose=0 if args.quiet else 2 if args.verbose else 1)
    except (SpecError, SearchError) as e:
        return _problems(e.problems)
    except ResourceError as e:   # e.g. --address where no Ray cluster answers
        return _problems([str(e)])
    print(f"study: {run.path} ({run.ran} proposals run now, {len(run.trials)} rows)")
    print(json.dumps({k: {"quota": v["quota"], "val_accuracy": v["val_accuracy"]} for k, v in run.best["best"].items()},
                     indent=2))
    if run.final is not None:
        print((run.path + "/final_summary.csv"))
    return 0
