"""Engine costs, measured side by side in one run on a local Ray cluster:

[1] per-trial start-up: one-worker trials through Ray Train (TorchTrainer) vs run directly in the Tune trial;
[2] engine overhead: 16 short trials (fig4's embedded ones) through raysweep vs the same trials in a plain loop;
[3] dense reuse on a Figure 5 style grid (4 methods x 4 ablations x 4 sparsities x 2 seeds, plus magnitude after
    training): dense trainings performed (must equal the number of seeds).

    python benchmarks/bench_sweep.py [--cpus 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import ray

from raysweep import sweep
from raysweep.sweep.trial import Context, run_masked

SHORT = {"training_steps": "3ep", "lr_drops": ["2ep"]}


def _spec(root: str, name: str, **changes) -> sweep.StudySpec:
    base = dict(name=name, storage=root, seeds=[0, 1], sparsities=[0.5, 0.7, 0.8, 0.9], hparams=SHORT,
                dense=False, grids=[sweep.Grid(methods=["random", "magnitude"])])
    base.update(changes)
    return sweep.StudySpec(**base)


def _timed(fn):
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def startup(root: str) -> None:
    print("[1] per-trial start-up, 2 one-worker trials each way (random pruning, LeNet-300-100 on digits, 3 epochs)")
    small = dict(seeds=[0], sparsities=[0.5, 0.9], grids=[sweep.Grid(methods=["random"])])
    direct, run = _timed(lambda: sweep.run_study(_spec(root, "direct", **small), verbose=0))
    train, run_t = _timed(lambda: sweep.run_study(_spec(root, "train", ray_train=True, **small), verbose=0))
    n = run.ran
    print(f"    direct in the Tune trial   {direct / n:7.2f} s/trial   ({n} trials, {direct:.1f} s)")
    print(f"    through TorchTrainer       {train / n:7.2f} s/trial   ({run_t.ran} trials, {train:.1f} s)")
    print(f"    ratio TorchTrainer/direct  {train / direct:7.2f}   start-up cost {(train - direct) / n:.1f} s/trial")


def overhead(root: str) -> None:
    # 2 methods x 4 sparsities x 2 seeds = 16 trials of the embedded fig4 default (the digits preset, 20 epochs)
    spec = _spec(root, "engine", hparams={})
    trials = sweep.expand(spec)
    ctx = Context(storage=root, study="loop")
    loop, _ = _timed(lambda: [run_masked(t, ctx, None) for t in trials])
    engine, run = _timed(lambda: sweep.run_study(spec, verbose=0))
    print(f"[2] engine overhead, {len(trials)} short trials (LeNet-300-100 on digits, 20 epochs)")
    print(f"    plain loop, one process    {loop:7.1f} s")
    print(f"    raysweep on Ray            {engine:7.1f} s   ({run.ran} trials, {int(ray.cluster_resources()['CPU'])}"
          f" CPUs)")
    print(f"    ratio raysweep/loop        {engine / loop:7.2f}")


def dense_reuse(root: str) -> None:
    spec = _spec(root, "fig5", hparams={"training_steps": "1ep", "lr_drops": []}, dense=True,
                 grids=[sweep.Grid(methods=["magnitude", "snip", "grasp", "synflow"],
                                   ablations=["none", "shuffle", "reinit", "invert"]),
                        sweep.Grid(methods=["magnitude"], prune_at=["end"])])
    seconds, run = _timed(lambda: sweep.run_study(spec, verbose=0))
    print(f"[3] dense reuse, Figure 5 style grid: {run.ran} trials in {seconds:.0f} s")
    print(f"    dense trainings performed  {run.dense_trainings}   (seeds: {len(spec.seeds)}; trials that read a "
          f"dense run: {sum(t.needs_dense for t in sweep.expand(spec))})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as root:
        startup(root)
        overhead(root)
        dense_reuse(root)
    ray.shutdown()


if __name__ == "__main__":
    main()
