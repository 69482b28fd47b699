"""Packed training (issue 11), measured side by side in one run.

[1] Trials per hour, packs of K members (train_packed) against one trial per process, on the CPU (or --device):
    - LeNet-300-100 on digits: whole trials of the embedded `digits` preset (20 epochs, an evaluation per epoch);
    - ResNet-20 on CIFAR-shaped random tensors (batch 128, shifts and flips): the time of a training step and of an
      evaluation, measured, projected to a trial of Frankle's 160 epochs (391 steps and one 10,000-example
      evaluation per epoch).
    Baselines: "sequential": train() trials one after another in this process; "process": a fresh Python process
    per trial (interpreter, imports and data loading included; for ResNet-20 the measured start-up cost is added to
    the sequential trial).
[2] Memory per member (peak RSS of fresh processes, or CUDA peak allocation) and the largest K that fits.
[3] CUDA (when present): the same table on the GPU, and the projected H100-hours for Frankle's ResNet-20 and VGG-16
    Figure 4 panels (6 lines x 19 sparsities x 5 seeds = 570 trials of 160 epochs) at the best K measured.
[4] End to end: fig4's embedded grid with packs against `--pack-size 1`, on digits (and with --real-data on the
    data set fig4 finds, Fashion-MNIST when installed).

    python benchmarks/bench_packing.py [--quick] [--device cuda] [--compile] [--threads 1] [--real-data]
                                        [--only-end-to-end]

Targets (issue 11): K=16 LeNet-300-100 at least 4x the trials per hour of one trial per process; on an H100,
Frankle's ResNet-20 Figure 4 panel in under 4 GPU-hours.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from raysweep import data, models, training
from raysweep.data.dataset import Split, TensorDataSet
from raysweep.data.tensor_pipeline import Augmentation
from raysweep.training import Member, train_packed

ROOT = Path(__file__).resolve().parents[1]
# Frankle et al. Figure 4: "magnitude pruning (green), SNIP (red), GraSP (purple), and SynFlow (brown) at
# initialization ... pruning after training (blue), random pruning at initialization (orange)": 6 lines; 19
# sparsities; "We repeat all experiments five times (CIFAR-10)".
FIG4_TRIALS = 6 * 19 * 5
EPOCHS, CIFAR_TRAIN, CIFAR_TEST, CIFAR_BATCH = 160, 50_000, 10_000, 128
STEPS_PER_EPOCH = -(-CIFAR_TRAIN // CIFAR_BATCH)  # 391


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device):
    _sync(device)
    started = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - started, out


def cifar_shaped(n_train: int, n_test: int) -> TensorDataSet:
    rng = np.random.default_rng(0)
    split = lambda n: Split(torch.from_numpy(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)),  # noqa: E731
                            torch.from_numpy(rng.integers(0, 10, n)))
    return TensorDataSet("cifar-shaped", {"train": split(n_train), "test": split(n_test)}, num_classes=10,
                         scale=255.0, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
                         augmentation=Augmentation(shift=4, flip=True))


def trial(name: str, ds, seed: int):
    """A pruned trial's model and masks: random masks of a density that varies with the seed, as in a sweep."""
    model = models.create(name, num_classes=10, input_shape=ds.input_shape, seed=seed)
    g = torch.Generator().manual_seed(seed)
    density = 0.1 + 0.8 * (seed % 8) / 7
    masks = {n: torch.rand(p.shape, generator=g) < density for n, p in model.named_parameters() if p.dim() > 1}
    return model, masks


def members(name, ds, k):
    return [Member(*trial(name, ds, s), seed=s) for s in range(k)]


def single(name, ds, hp, seed, device):
    model, masks = trial(name, ds, seed)
    return training.train(model, ds, hp, masks, seed=seed, device=device)


# ---------- [1] LeNet-300-100 on digits: whole trials ----------

def lenet_pack(k, hp, device, compile=False) -> float:
    ds = data.get("digits")
    seconds, _ = _timed(lambda: train_packed(members("lenet_300_100", ds, k), ds, hp, device=device,
                                             compile=compile), device)
    return seconds


def lenet_sequential(n, hp, device) -> float:
    ds = data.get("digits")
    times = [_timed(lambda: single("lenet_300_100", ds, hp, s, device), device)[0] for s in range(n)]
    return statistics.mean(times)


def fresh_process(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, *args], check=True, cwd=ROOT)
    return time.perf_counter() - started


def lenet_table(ks, hp, device, threads, n_seq, n_proc, compile):
    print(f"\n[1a] LeNet-300-100 on digits, whole trials of {hp.training_steps} at batch {hp.batch_size} "
          f"({device}, {threads} thread(s))")
    seq = lenet_sequential(n_seq, hp, device)
    proc = statistics.mean(fresh_process(["--child", "lenet", "--seed", str(s), "--device", str(device),
                                          "--threads", str(threads), "--trial-steps", hp.training_steps])
                           for s in range(n_proc))
    print(f"    one trial: sequential in this process {seq:6.2f} s ({3600 / seq:8.0f} trials/h); "
          f"fresh process {proc:6.2f} s ({3600 / proc:8.0f} trials/h)")
    print(f"    {'K':>4} {'pack s':>8} {'trials/h':>9} {'x sequential':>13} {'x process':>10}")
    rows = {}
    for k in ks:
        t = lenet_pack(k, hp, device, compile)
        rows[k] = 3600 * k / t
        print(f"    {k:4d} {t:8.2f} {rows[k]:9.0f} {rows[k] * seq / 3600:13.2f} {rows[k] * proc / 3600:10.2f}")
    return rows, seq, proc


# ---------- [1b] ResNet-20 (or VGG-16) on CIFAR-shaped tensors: steps, projected to 160 epochs ----------

def workload(name, steps, n_test=256):
    """The data set and hyperparameters a model is benchmarked with: digits and its preset for LeNet-300-100,
    CIFAR-shaped tensors and Frankle's ResNet-20 preset otherwise."""
    if name == "lenet_300_100":
        return data.get("digits"), training.preset("digits")
    return cifar_shaped(CIFAR_BATCH * (steps + 2), n_test), training.preset("frankle_cifar_resnet20")


def step_and_eval_times(name, k, device, steps, compile=False, n_test=256):
    """(seconds per packed training step, seconds per packed evaluation of n_test examples) for K members: a pack
    of 1 step sets up, trains once and evaluates; one of 1 + `steps` steps trains `steps` more."""
    ds, hp = workload(name, steps, n_test)
    run = lambda n: _timed(lambda: train_packed(  # noqa: E731
        members(name, ds, k), ds, hp.replace(training_steps=f"{n}it"), device=device, compile=compile), device)[0]
    if compile:
        run(steps)  # compile outside the timing
    once = run(1)
    per_step = (run(1 + steps) - once) / steps
    return per_step, once - per_step


def single_step_time(name, device, steps, n_test=256):
    """The same for one trial trained by train()."""
    ds, hp = workload(name, steps, n_test)
    run = lambda n: _timed(lambda: single(name, ds, hp.replace(training_steps=f"{n}it"), 0, device),  # noqa: E731
                           device)[0]
    once = run(1)
    per_step = (run(1 + steps) - once) / steps
    return per_step, once - per_step


def trial_seconds(per_step, per_eval, k, n_test=256):
    """One member's share of a 160-epoch CIFAR trial: 391 steps and one full test-set evaluation per epoch."""
    return EPOCHS * (STEPS_PER_EPOCH * per_step + per_eval * CIFAR_TEST / n_test) / k


def cifar_table(name, ks, device, steps, startup, compile):
    print(f"\n[1b] {name} on CIFAR-shaped tensors, batch {CIFAR_BATCH}, shifts and flips ({device}): "
          f"{steps} timed steps per K, projected to {EPOCHS}-epoch trials")
    step1, eval1 = single_step_time(name, device, steps)
    seq = trial_seconds(step1, eval1, 1)
    proc = seq + startup
    print(f"    one trial: sequential {step1 * 1e3:8.1f} ms/step -> {seq / 3600:7.2f} h/trial; fresh process adds "
          f"{startup:.1f} s")
    print(f"    {'K':>4} {'ms/step':>9} {'ms/member-step':>15} {'trials/h':>9} {'x sequential':>13} {'x process':>10}")
    rows = {}
    for k in ks:
        per_step, per_eval = step_and_eval_times(name, k, device, steps, compile)
        rows[k] = 3600 / trial_seconds(per_step, per_eval, k)
        print(f"    {k:4d} {per_step * 1e3:9.1f} {per_step * 1e3 / k:15.1f} {rows[k]:9.3f} "
              f"{rows[k] * seq / 3600:13.2f} {rows[k] * proc / 3600:10.2f}")
    return rows


# ---------- [2] memory ----------

def _available_bytes(device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    with open("/proc/meminfo") as f:
        info = dict(line.split(":") for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def training_peak(name, k, device) -> int:
    """Peak memory above the baseline while K members, already built, train one step and evaluate: CUDA's peak
    allocation, or on the CPU the largest resident size sampled every millisecond (peak RSS since start-up would
    be the imports')."""
    ds, hp = workload(name, 1)
    pack = members(name, ds, k)
    hp = hp.replace(training_steps="1it")
    if device.type == "cuda":
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        train_packed(pack, ds, hp, device=device)
        return torch.cuda.max_memory_allocated(device) - base
    base, peak, done = _rss(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        train_packed(pack, ds, hp, device=device)
    finally:
        done.set()
        sampler.join()
    return max(peak[0], _rss()) - base


def peak_bytes(name, k, device, threads) -> int:
    """training_peak in this process on CUDA, in a fresh process on the CPU (freed memory stays resident)."""
    if device.type == "cuda":
        return training_peak(name, k, device)
    out = subprocess.run([sys.executable, __file__, "--child", "memory", "--model", name, "--k", str(k),
                          "--threads", str(threads)], check=True, cwd=ROOT, capture_output=True, text=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak"])


def memory_table(name, k_small, k_large, device, threads):
    small, large = peak_bytes(name, k_small, device, threads), peak_bytes(name, k_large, device, threads)
    per_member = max((large - small) / (k_large - k_small), 1.0)
    fits = int((_available_bytes(device) - (small - k_small * per_member)) // per_member)
    print(f"    {name:16s} training peak K={k_small}: {small / 2**20:7.1f} MiB, K={k_large}: {large / 2**20:7.1f} MiB"
          f" -> {per_member / 2**20:6.1f} MiB per member; largest K that fits the {device.type} memory available "
          f"now: ~{fits}")
    return per_member, fits


# ---------- [3] CUDA projections ----------

def cuda_section(args, device):
    print("\n[3] CUDA")
    if device.type != "cuda":
        print("    no CUDA device: with one, this section prints the [1] tables on the GPU (K = 1, 4, 16, 64, 128),\n"
              "    peak memory per member of cifar_resnet_20 and cifar_vgg_16 at batch 128, and the projected\n"
              f"    GPU-hours of Frankle's ResNet-20 and VGG-16 Figure 4 panels ({FIG4_TRIALS} trials x {EPOCHS} "
              "epochs) at the best K measured (target: ResNet-20 under 4 H100-hours).")
        return
    print(f"    {torch.cuda.get_device_name(device)}")
    for name in ("cifar_resnet_20", "cifar_vgg_16"):
        _, fits = memory_table(name, 1, 8, device, args.threads)
        ks = [k for k in (1, 4, 16, 64, 128) if k <= fits]
        rows = cifar_table(name, ks, device, args.steps, args.startup, args.compile)
        best = max(rows, key=rows.get)
        print(f"    {name}: Figure 4 panel ({FIG4_TRIALS} trials) at K={best}: "
              f"{FIG4_TRIALS / rows[best]:.2f} GPU-hours (one trial per process: "
              f"{FIG4_TRIALS / rows[min(rows)]:.2f})")


# ---------- child processes ----------

def child(args):
    torch.set_num_threads(args.threads)
    if args.child == "lenet":
        ds = data.get("digits")
        hp = training.preset("digits").replace(training_steps=args.trial_steps)
        single("lenet_300_100", ds, hp, args.seed, args.device)
    elif args.child == "startup":
        cifar_shaped(CIFAR_BATCH, 16)
        trial("cifar_resnet_20", data.get("digits"), 0)
    elif args.child == "memory":
        print(json.dumps({"peak": training_peak(args.model, args.k, torch.device("cpu"))}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a seconds-long check of every section")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op CPU threads of every run and child process (default 1: one trial per core)")
    ap.add_argument("--compile", action="store_true", help="also torch.compile the packed step")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per K in the CIFAR tables")
    ap.add_argument("--real-data", action="store_true", help="[4] also on the data set fig4 finds here (Fashion-MNIST "
                                                              "when installed; 15 minutes on 2 cores)")
    ap.add_argument("--only-end-to-end", action="store_true", help="run section [4] alone")
    ap.add_argument("--child", choices=["lenet", "startup", "memory"], help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--model", default="cifar_resnet_20", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--trial-steps", default="20ep", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    device = torch.device(args.device) if args.device else training.loop.default_device()
    torch.set_num_threads(args.threads)
    gpu = device.type == "cuda"
    args.steps = args.steps or (1 if args.quick else (20 if gpu else 2))
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"device {device}, torch {torch.__version__}, threads {args.threads}, load average {' '.join(load)}")

    if args.only_end_to_end:
        return end_to_end("smoke" if args.quick else "embedded", real_data=args.real_data)
    hp = training.preset("digits").replace(training_steps="2ep" if args.quick else "20ep")
    lenet_ks = (1, 4) if args.quick else (1, 4, 16, 64)
    lenet_table(lenet_ks, hp, device, args.threads, n_seq=1 if args.quick else 4, n_proc=1 if args.quick else 2,
                compile=args.compile)
    args.startup = fresh_process(["--child", "startup", "--threads", str(args.threads)])
    cifar_ks = (1, 2) if args.quick else ((1, 4, 16, 64) if gpu else (1, 4, 16))
    cifar_table("cifar_resnet_20", cifar_ks, device, args.steps, args.startup, args.compile and gpu)

    print("\n[2] memory per member (a training step and an evaluation)")
    memory_table("lenet_300_100", 1, 16 if args.quick else 64, device, args.threads)
    if not args.quick:
        memory_table("cifar_resnet_20", 1, 4, device, args.threads)
    cuda_section(args, device)

    end_to_end("smoke" if args.quick else "embedded", real_data=args.real_data)


# ---------- [4] end to end ----------

def end_to_end(preset: str, real_data: bool):
    """fig4.py's grid as a user runs it (fresh process, local Ray started in-process, fresh storage), with
    --pack-size 1 against packs: on scikit-learn digits (fig4's fallback, which every machine has; the data search
    path is emptied so fig4 picks it) and, with real_data, on the data set fig4 finds here, where 'auto' trains
    alone on a CPU (packing.packable), so its pack of every trial of a slot is forced."""
    import tempfile
    runs = [("digits", {"XDG_DATA_DIRS": "/nonexistent", "RAYSWEEP_DATA": ""}, "auto")]
    if real_data:
        runs.append(("fig4's default data", {}, "31"))
    print(f"\n[4] end to end: experiments/fig4.py --preset {preset}, fresh storage each, same machine, one run each")
    for label, env, packed in runs:
        seconds = {}
        with tempfile.TemporaryDirectory(prefix="bench-fig4-") as scratch:
            for size in ("1", packed):
                started = time.perf_counter()
                subprocess.run([sys.executable, "experiments/fig4.py", "--preset", preset, "--quiet", "--storage",
                                f"{scratch}/{size}", "--pack-size", size], check=True, cwd=ROOT,
                               env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds[size] = time.perf_counter() - started
                print(f"    {label}: --pack-size {size:5s} {seconds[size]:7.1f} s", flush=True)
        print(f"    {label}: packed is {seconds['1'] / seconds[packed]:.2f}x faster end to end (target: 3x)")


if __name__ == "__main__":
    main()
