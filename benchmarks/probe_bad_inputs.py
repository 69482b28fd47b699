"""Bad input, tried as a user would: each case runs the real CLI (`raysweep run`, `search`, `status`, `plot`,
`report`) in a fresh directory, and is sorted by what happened.

    python benchmarks/probe_bad_inputs.py                    # this checkout
    python benchmarks/probe_bad_inputs.py --code /tmp/base   # another checkout (e.g. `git worktree add /tmp/base HEAD~1`)

Outcome of a case that must be refused: `clear` (exit 2, every stderr line 'error: ...', no traceback), `traceback`,
`hang` (no answer within --timeout s), `accepted` (exit 0) or `other` (any other exit without a traceback). A case on a
damaged study must instead be `recovered`: exit 0, a warning naming the file, and the tool's output showing what
the intact files hold (a damaged or forged file is not counted as a result); exit 0 otherwise counts as `accepted`,
and a file written through a link to DIR/outside as `escaped`. Two flags are counted apart, as the audit did: `wrote`
(a file under the case's directory appeared or changed) and `ray` (a Ray session was started: the case's own
RAY_TMPDIR is not empty). Prints one line per case and the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BASE = {"name": "s", "seeds": [0], "sparsities": [0.5], "hparams": {"training_steps": "1it"}}
SEARCH = {"name": "q", "trials": 1, "seeds": [0], "sparsities": [0.9], "final": False,
          "hparams": {"training_steps": "1it"}}
BOMB = ("a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n"
        + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                  for p, c in zip("abcdefgh", "bcdefghi")))


def spec(base: dict = BASE, drop=(), **fields) -> str:
    return yaml.safe_dump({**{k: v for k, v in base.items() if k not in drop}, **fields})


def study_with_rows(d: Path) -> None:
    """A genuine finished study of two 1-step trials, written by the code under test (no Ray: rows, manifest and
    spec.yaml as a run leaves them)."""
    code = ("import sys, time; from raysweep import sweep, results; from raysweep.storage import Storage\n"
            "spec = sweep.StudySpec.from_dict({'name': 's', 'storage': sys.argv[1], 'seeds': [0], "
            "'sparsities': [0.5], 'dense': False, 'grids': [{'methods': ['random', 'magnitude']}], "
            "'hparams': {'training_steps': '1it'}})\n"
            "trials = sweep.expand(spec)\n"
            "results.write_manifest(Storage(spec.storage), 's', [t.trial_id for t in trials])\n"
            "[results.write_row(Storage(spec.storage), 's', {'study': 's', **t.columns(), 'status': 'completed', "
            "'accuracy': 0.5, 'finished_at': time.time()}) for t in trials]\n"
            "import yaml; Storage(spec.storage).write_bytes(yaml.safe_dump(spec.to_dict()).encode(), 's', "
            "'spec.yaml')\n")
    subprocess.run([sys.executable, "-c", code, str(d / "runs")], check=True, env=ENV)


def damaged(how):
    def setup(d: Path) -> None:
        study_with_rows(d)
        how(d / "runs" / "s")
    return setup


def dir_as_row(s: Path) -> None:
    (s / "trials" / "x.parquet").mkdir()


def manifest(text: str):
    return lambda s: (s / "manifest.json").write_text(text)


def two_rows_in_one(s: Path) -> None:
    """A file sealed by the code under test that holds its trial's row twice."""
    code = ("import sys, pyarrow.parquet as pq; from raysweep import results\n"
            "rows = pq.read_table(sys.argv[1]).to_pylist()\n"
            "open(sys.argv[1], 'wb').write(results.to_parquet(rows + rows))\n")
    subprocess.run([sys.executable, "-c", code, str(sorted((s / "trials").glob("*.parquet"))[0])], check=True,
                   env=ENV)


def stripped(s: Path) -> None:
    """A row rewritten without its metadata (checksum, schema) and with a forged accuracy of 0.9."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    f = sorted((s / "trials").glob("*.parquet"))[0]
    t = pq.read_table(f)
    t = t.set_column(t.column_names.index("accuracy"), "accuracy", pa.array([0.9] * len(t)))
    pq.write_table(t.replace_schema_metadata(None), f)


def quarantine_link(s: Path) -> None:
    outside = s.parent.parent / "outside"
    outside.mkdir()
    (s / "quarantine").symlink_to(outside)
    (s / "trials" / "junk.parquet").write_bytes(b"not parquet")


def spec_yaml_list(s: Path) -> None:
    (s / "spec.yaml").write_text("- 1\n- 2\n")


# (name, argv with SPEC for the spec file, the spec file's content (str or bytes, None: none), setup, expected)
RUN = ["run", "SPEC"]
CASES = [
    # --- paths
    ("name ..", RUN, spec(name=".."), None, "error"),
    ("name .", RUN, spec(name="."), None, "error"),
    ("name a/b", RUN, spec(name="a/b"), None, "error"),
    ("name NUL", RUN, spec(name="a\x00b"), None, "error"),
    ("name 300 chars", RUN, spec(name="n" * 300), None, "error"),
    ("name newline", RUN, spec(name="a\nb"), None, "error"),
    ("search name ..", ["search", "SPEC"], spec(SEARCH, name=".."), None, "error"),
    # --- validation blow-ups
    ("alias bomb in name", RUN, BOMB + "name: *i\nseeds: [0]\n", None, "error"),
    ("alias bomb in seeds", RUN, BOMB + "seeds: *i\n", None, "error"),
    ("1e7-trial grid", RUN, spec(seeds=list(range(10000)), sparsities=[i / 1000 for i in range(1000)]), None,
     "error"),
    ("model cifar_resnet_200000", RUN, spec(model="cifar_resnet_200000", data="cifar10"), None, "error"),
    ("model wide_resnet_32_20000", RUN, spec(model="wide_resnet_32_20000", data="cifar10"), None, "error"),
    # --- tracebacks seen by the audit
    ("binary spec", RUN, bytes(range(256)) * 4, None, "error"),
    ("seed 2^64+1", RUN, spec(seeds=[18446744073709551617]), None, "error"),
    ("storage is a file", RUN, spec(storage="afile"), lambda d: (d / "afile").write_text("x"), "error"),
    ("storage /proc/x", RUN, spec(storage="/proc/x"), None, "error"),
    ("storage http://", RUN, spec(storage="http://example.invalid/x"), None, "error"),
    ("storage s3:// no bucket", RUN, spec(storage="s3://"), None, "error"),
    ("storage s3 unreachable", RUN,
     spec(storage="s3://bucket/x?endpoint_override=127.0.0.1:9&scheme=http&region=us-east-1"), None, "error"),
    ("plot empty dir", ["plot", "DIR/empty"], None, lambda d: (d / "empty").mkdir(), "error"),
    ("plot missing dir", ["plot", "DIR/missing"], None, None, "error"),
    ("report empty dir", ["report", "DIR/empty"], None, lambda d: (d / "empty").mkdir(), "error"),
    ("report missing dir", ["report", "DIR/missing"], None, None, "error"),
    ("status missing dir", ["status", "DIR/missing"], None, None, "error"),
    # --- accepted but wrong
    ("lr nan", RUN, spec(hparams={"training_steps": "1it", "lr": float("nan")}), None, "error"),
    ("lr inf", RUN, spec(hparams={"training_steps": "1it", "lr": float("inf")}), None, "error"),
    ("weight_decay nan", RUN, spec(hparams={"training_steps": "1it", "weight_decay": float("nan")}), None, "error"),
    ("gamma -inf", RUN, spec(hparams={"training_steps": "1it", "gamma": float("-inf")}), None, "error"),
    ("prune_at after training", RUN, spec(hparams={"training_steps": "2ep"}, grids=[{"methods": ["magnitude"],
                                                                                        "prune_at": ["50ep"]}]),
     None, "error"),
    ("duplicate key", RUN, spec() + "seeds: [1]\n", None, "error"),
    ("--storage ''", ["run", "SPEC", "--storage", ""], spec(), None, "error"),
    ("pack_size big", RUN, spec(pack_size="big"), None, "error"),
    ("pack_size 0", RUN, spec(pack_size=0), None, "error"),
    # --- the cluster a run attaches to
    ("--address 127.0.0.1:9", ["run", "SPEC", "--address", "127.0.0.1:9"], spec(), None, "error"),
    ("--address not-an-address", ["run", "SPEC", "--address", "not-an-address"], spec(), None, "error"),
    # --- the cases of issue 10, kept
    ("list YAML", RUN, "- name: x\n", None, "error"),
    ("empty file", RUN, "", None, "error"),
    ("unclosed YAML", RUN, "name: [unclosed\n", None, "error"),
    ("missing spec file", ["run", "DIR/absent.yaml"], None, None, "error"),
    ("spec is a directory", ["run", "DIR/adir"], None, lambda d: (d / "adir").mkdir(), "error"),
    ("gpus_per_worker one", RUN, spec(gpus_per_worker="one"), None, "error"),
    ("cpus_per_worker '2'", RUN, spec(cpus_per_worker="2"), None, "error"),
    ("hparams lr fast", RUN, spec(hparams={"lr": "fast"}), None, "error"),
    ("hparams unknown", RUN, spec(hparams={"nope": 1}), None, "error"),
    ("sparsities ['0.5']", RUN, spec(sparsities=["0.5"]), None, "error"),
    ("sparsities [1.0]", RUN, spec(sparsities=[1.0]), None, "error"),
    ("sparsities [-0.1]", RUN, spec(sparsities=[-0.1]), None, "error"),
    ("sparsities []", RUN, spec(sparsities=[]), None, "error"),
    ("seeds [true]", RUN, spec(seeds=[True]), None, "error"),
    ("seeds []", RUN, spec(seeds=[]), None, "error"),
    ("seeds [-1]", RUN, spec(seeds=[-1]), None, "error"),
    ("dense 'no'", RUN, spec(dense="no"), None, "error"),
    ("rescale 'yes'", RUN, spec(rescale="yes"), None, "error"),
    ("training_steps 0ep", RUN, spec(hparams={"training_steps": "0ep"}), None, "error"),
    ("storage null", RUN, spec(storage=None), None, "error"),
    ("name 5", RUN, spec(name=5), None, "error"),
    ("grids [snip, random]", RUN, spec(grids=["snip", "random"]), None, "error"),
    ("unknown field", RUN, spec(sparsity=[0.5]), None, "error"),
    ("unknown method", RUN, spec(grids=[{"methods": ["magic"]}]), None, "error"),
    ("unknown quota", RUN, spec(grids=[{"quotas": ["nope"]}]), None, "error"),
    ("infeasible quota", RUN, spec(sparsities=[0.95], grids=[{"methods": ["random"], "quotas": ["uniform_plus"]}]),
     None, "error"),
    ("unknown model", RUN, spec(model="nope"), None, "error"),
    ("unknown data", RUN, spec(data="nope"), None, "error"),
    ("unknown training", RUN, spec(training="nope"), None, "error"),
    ("missing data", RUN, spec(model="cifar_resnet_20", data="cifar10", data_root="DIR/no"), None, "error"),
    ("prune_at -5", RUN, spec(grids=[{"prune_at": [-5]}]), None, "error"),
    ("prune_at soon", RUN, spec(grids=[{"prune_at": ["soon"]}]), None, "error"),
    ("iterations 0", RUN, spec(iterations={"synflow": 0}), None, "error"),
    ("unknown metric", RUN, spec(metrics=["nope"]), None, "error"),
    ("ood without metric", RUN, spec(ood=["digits"]), None, "error"),
    ("missing plugin", RUN, spec(plugins=["DIR/missing.py"]), None, "error"),
    ("logger wandb absent", RUN, spec(loggers=["wandb"]), None, "error"),
    ("gpus_per_worker 1", RUN, spec(gpus_per_worker=1), None, "error"),
    ("cpus_per_worker 64", RUN, spec(cpus_per_worker=64), None, "error"),
    ("gpus 1.5", RUN, spec(gpus_per_worker=1.5), None, "error"),
    ("workers 0", RUN, spec(workers=0), None, "error"),
    ("max_failures -1", RUN, spec(max_failures=-1), None, "error"),
    ("upload_every -1", RUN, spec(upload_every=-1), None, "error"),
    ("backend tpu", RUN, spec(backend="tpu"), None, "error"),
    ("per_class 0", RUN, spec(per_class=0), None, "error"),
    ("bn_init zeros", RUN, spec(bn_init="zeros"), None, "error"),
    ("init nope", RUN, spec(init="nope"), None, "error"),
    ("rounding synflow + quota", RUN, spec(rounding="synflow", grids=[{"quotas": ["erk"]}]), None, "error"),
    ("effective + ltr", RUN, spec(grids=[{"methods": ["ltr"], "targets": ["effective"]}]), None, "error"),
    ("loggers nope", RUN, spec(loggers=["nope"]), None, "error"),
    ("--max-trials 0 dry-run", ["run", "SPEC", "--dry-run", "--max-trials", "0"], spec(), None, "error"),
    # --- quota search specs
    ("search trials 0", ["search", "SPEC"], spec(SEARCH, trials=0), None, "error"),
    ("search list", ["search", "SPEC"], "- 1\n", None, "error"),
    ("search empty", ["search", "SPEC"], "", None, "error"),
    ("search unknown field", ["search", "SPEC"], spec(SEARCH, nope=1), None, "error"),
    ("search missing file", ["search", "DIR/absent.yaml"], None, None, "error"),
    ("search family unknown", ["search", "SPEC"], spec(SEARCH, families=[{"name": "nope"}]), None, "error"),
    ("search space empty", ["search", "SPEC"], spec(SEARCH, families=[{"name": "igq_power", "space": {}}]), None,
     "error"),
    ("search sparsities [1]", ["search", "SPEC"], spec(SEARCH, sparsities=[1.0]), None, "error"),
    ("search validation 2.0", ["search", "SPEC"], spec(SEARCH, validation=2.0), None, "error"),
    ("search seeds []", ["search", "SPEC"], spec(SEARCH, seeds=[]), None, "error"),
    ("search sampler nope", ["search", "SPEC"], spec(SEARCH, sampler="nope"), None, "error"),
    ("search storage file", ["search", "SPEC"], spec(SEARCH, storage="afile"),
     lambda d: (d / "afile").write_text("x"), "error"),
    ("search binary", ["search", "SPEC"], bytes(range(256)) * 4, None, "error"),
    ("search duplicate key", ["search", "SPEC"], spec(SEARCH) + "trials: 2\n", None, "error"),
    ("search truncated optuna.db", ["search", "SPEC"], spec(SEARCH, storage="runs"),
     lambda d: (d / "runs" / "q").mkdir(parents=True) or (d / "runs" / "q" / "optuna.db").write_bytes(
         b"SQLite format 3\x00" + b"\x00" * 40), "recover-or-error"),
    # --- damaged study files: a warning naming the file, and recovery
    ("status: dir named trials/x.parquet", ["status", "DIR/runs/s"], None, damaged(dir_as_row), "recover:completed 2"),
    ("plot: dir named trials/x.parquet", ["plot", "DIR/runs/s"], None, damaged(dir_as_row), "recover:wrote"),
    ("status: truncated manifest", ["status", "DIR/runs/s"], None, damaged(manifest('{"trial_id')),
     "recover:completed 2"),
    ("status: manifest [1,2,3]", ["status", "DIR/runs/s"], None, damaged(manifest("[1,2,3]")), "recover:completed 2"),
    ("plot: manifest [1,2,3]", ["plot", "DIR/runs/s"], None, damaged(manifest("[1,2,3]")), "recover:wrote"),
    ("report: truncated manifest", ["report", "DIR/runs"], None, damaged(manifest('{"trial_id')), "recover"),
    ("status: two rows in one file", ["status", "DIR/runs/s"], None, damaged(two_rows_in_one), "recover:missing 1"),
    ("run: quarantine is a link", ["run", "DIR/runs/s/spec.yaml"], None, damaged(quarantine_link),
     "recover:already done"),
    ("status: checksum stripped", ["status", "DIR/runs/s"], None, damaged(stripped), "recover:missing 1"),
]


def files(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*")
            if p.is_file() and not p.is_symlink()}


def run_case(name, argv, text, setup, expected, code: str, timeout: float) -> dict:
    d = Path(tempfile.mkdtemp(prefix="probe-"))
    ray_tmp = Path(tempfile.mkdtemp(prefix="pr", dir="/tmp"))   # short: Ray's socket paths must fit 107 bytes
    try:
        if text is not None:
            (d / "spec.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
        if setup is not None:
            setup(d)
        before = files(d)
        args = [a.replace("SPEC", str(d / "spec.yaml")).replace("DIR", str(d)) for a in argv]
        env = {**ENV, "RAY_TMPDIR": str(ray_tmp), "PYTHONPATH": code}
        env.pop("RAY_ADDRESS", None)
        started = time.monotonic()
        try:
            p = subprocess.run([sys.executable, "-m", "raysweep.cli", *args], cwd=d, env=env, capture_output=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
            rc, out, err = p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            rc, out, err = None, (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace")
        seconds = time.monotonic() - started
        after = files(d)
        wrote = sorted(k for k, v in after.items() if before.get(k) != v)
        ray = any(ray_tmp.iterdir())
        lines = [line for line in err.splitlines() if line.strip()]
        if any((d / "outside").glob("*")):
            outcome = "escaped"
        elif rc is None:
            outcome = "hang"
        elif "Traceback (most recent call last)" in err + out:
            outcome = "traceback"
        elif expected.startswith("recover") and rc == 0:
            # exit 0 is not enough: the damaged file must be named, and what it claims never shown as a result
            shown = expected.partition(":")[2]
            named = any(word in err for word in NAMED)
            outcome = "recovered" if named and shown in " ".join(out.split()) else "accepted"
        elif rc == 2 and lines and all(line.startswith("error: ") or line.startswith("usage: ")
                                       or line.startswith("WARNING: ") for line in lines):
            outcome = "clear"
        elif rc == 0:
            outcome = "accepted"
        else:
            outcome = "other"
        first = next((line for line in lines if line.startswith("error")), lines[-1] if lines else "")
        return {"case": name, "outcome": outcome, "rc": rc, "wrote": wrote[:5], "ray": ray,
                "seconds": round(seconds, 1), "said": first[:160]}
    finally:
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)


ENV = dict(os.environ)
NAMED = ("x.parquet", "manifest.json", ".parquet", "optuna.db")   # a warning names the damaged file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", default=str(Path(__file__).resolve().parents[1]),
                        help="checkout whose raysweep is probed (put first on PYTHONPATH)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds after which a case counts as a hang")
    parser.add_argument("-k", default=None, help="only cases whose name contains this")
    parser.add_argument("--json", default=None, help="also write the per-case records here")
    args = parser.parse_args()
    ENV["PYTHONPATH"] = args.code
    records = []
    for case in CASES:
        if args.k and args.k not in case[0]:
            continue
        r = run_case(*case, code=args.code, timeout=args.timeout)
        records.append(r)
        flags = ("wrote " + ",".join(r["wrote"]) if r["wrote"] else "") + (" RAY" if r["ray"] else "")
        print(f"{r['outcome']:<10} {r['seconds']:>5.1f}s  {r['case']:<36} {flags:<30} {r['said']}", flush=True)
    counts = {k: sum(r["outcome"] == k for r in records)
              for k in ("clear", "recovered", "traceback", "hang", "accepted", "escaped", "other")}
    counts["wrote something"] = sum(bool(r["wrote"]) for r in records)
    counts["Ray started"] = sum(r["ray"] for r in records)
    print(f"\n{len(records)} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
