"""Cost of effective pruning (Vysogorets & Kempe sec. 5) run as direct pruning runs each method.

    python benchmarks/bench_effective_pruning.py [--model lenet_300_100_bn] [--repeats 1]

For each method, the time of one direct prune at the target sparsity and of effective pruning to the same effective
sparsity, and their ratio. Effective pruning prunes once per bisection candidate (about log2 of the number of
weights), so the ratio should be near that count for every method: SynFlow's 100 rounds are paid at every candidate,
as the direct line pays them once.
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from raysweep import models, pruning

SHAPES = {"lenet_300_100_bn": ((1, 28, 28), 10), "lenet_5_bn": ((3, 32, 32), 10), "tiny_resnet_18": ((3, 64, 64), 200)}


def best_of(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet_300_100_bn", choices=sorted(SHAPES))
    parser.add_argument("--sparsity", type=float, default=0.99)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    shape, classes = SHAPES[args.model]
    torch.manual_seed(0)
    net = models.create(args.model, num_classes=classes, input_shape=shape, init="kaiming_normal_fan_avg")
    n = pruning.Masks.ones(net).num_total()
    batch = (torch.randn(classes * 10, *shape), torch.arange(classes).repeat_interleave(10))
    print(f"{args.model}: {n} prunable weights, about {math.ceil(math.log2(n)) + 2} bisection candidates; "
          f"target sparsity {args.sparsity}")
    for method in ("magnitude", "grasp", "synflow"):
        direct, _ = best_of(lambda: pruning.prune(net, args.sparsity, method, data=batch), args.repeats)
        effective, masks = best_of(lambda: pruning.effective_prune(net, args.sparsity, method, shape, data=batch),
                                   args.repeats)
        reached = pruning.effective_sparsity(net, masks, shape)
        print(f"  {method:10s} direct {direct:8.3f} s   effective {effective:9.3f} s   ratio {effective / direct:6.1f}"
              f"   effective sparsity reached {reached:.5f}")


if __name__ == "__main__":
    main()
