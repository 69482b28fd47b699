"""Benchmarks of the training loop's two speed claims, each measured side by side in one run.

1. Masked vs unmasked SGD step (ResNet-20, VGG-16) on the same batch: throughput ratio, target >= 0.95.
2. Device-resident tensor pipeline vs a torchvision DataLoader with workers, on digits- and CIFAR-shaped data:
   epoch-time ratio.

Usage: python benchmarks/bench_training.py [--device cuda] [--batch 64] [--steps 6] [--cifar-size 10000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from raysweep import data, models, training
from raysweep.data.dataset import Split, TensorDataSet
from raysweep.data.tensor_pipeline import Augmentation
from raysweep.training.loop import default_device
from raysweep.training.masking import MaskedSGD, float_masks


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def masked_step_ratio(name, device, batch, steps, density=0.1, repeats=7):
    model = models.create(name, num_classes=10, input_shape=(3, 32, 32), seed=0).to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    masks = {n: torch.rand(p.shape, generator=g) < density for n, p in model.named_parameters() if p.dim() > 1}
    named = list(model.named_parameters())
    hp = training.TrainHparams(momentum=0.9, weight_decay=1e-4)
    sgd = {"unmasked": MaskedSGD([p for _, p in named], float_masks(named, None), hp),
           "masked": MaskedSGD([p for _, p in named], float_masks(named, masks), hp)}
    lr, ok = torch.tensor(0.01, device=device), torch.tensor(True, device=device)
    times = {k: [] for k in sgd}

    def run(kind):
        _sync(device)
        t = time.perf_counter()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        sgd[kind].step([p.grad for _, p in named], lr, ok)
        model.zero_grad(set_to_none=True)
        _sync(device)
        return time.perf_counter() - t

    for kind in ("unmasked", "masked", "unmasked", "masked"):  # warm-up: allocator, kernels, momentum buffers
        run(kind)
    # Alternate single steps, swapping the order each round, so that load from other processes on a shared
    # machine hits both variants alike; compare medians.
    for i in range(repeats * steps):
        for kind in (("unmasked", "masked") if i % 2 == 0 else ("masked", "unmasked")):
            times[kind].append(run(kind))
    u, m = statistics.median(times["unmasked"]), statistics.median(times["masked"])
    print(f"{name:16s} batch {batch:4d}: unmasked {u * 1e3:8.1f} ms/step  masked {m * 1e3:8.1f} ms/step  "
          f"throughput ratio masked/unmasked = {u / m:.3f}  (target >= 0.95)")
    return u / m


class _ArrayImages(torch.utils.data.Dataset):
    """A torchvision-style data set: one PIL image per item through per-example transforms."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        img = self.images[i]
        img = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
        return self.transform(img), int(self.labels[i])


def pipeline_ratio(label, ds: TensorDataSet, batch, augment, device, workers):
    from torchvision import transforms as T
    split = ds._splits["train"]
    c, h, w = ds.input_shape
    aug = ds.augmentation
    steps = ([T.RandomCrop((h, w), padding=aug.shift)] if augment and aug.shift else []) + \
            ([T.RandomHorizontalFlip()] if augment and aug.flip else [])
    tf = T.Compose(steps + [T.ToTensor(), T.Normalize(ds.mean, ds.std)])
    baseline = _ArrayImages(split.images.numpy(), split.labels.numpy(), tf)

    def tensor_epoch():
        ld = ds.loader("train", batch, shuffle=True, augment=augment, seed=0, device=device)
        _sync(device)
        t = time.perf_counter()
        for x, y in ld:
            pass
        _sync(device)
        return time.perf_counter() - t

    def dataloader_epoch():
        dl = torch.utils.data.DataLoader(baseline, batch_size=batch, shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda")
        t = time.perf_counter()
        for x, y in dl:
            x, y = x.to(device), y.to(device)
        _sync(device)
        return time.perf_counter() - t

    tensor_epoch(), dataloader_epoch()
    tt = min(tensor_epoch() for _ in range(3))
    dt = min(dataloader_epoch() for _ in range(2))
    print(f"{label:34s}: tensor pipeline {tt * 1e3:8.1f} ms/epoch  DataLoader({workers} workers) "
          f"{dt * 1e3:8.1f} ms/epoch  epoch-time ratio DataLoader/tensor = {dt / tt:.1f}x")
    return dt / tt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--batch", type=int, default=None, help="batch of the masked-step benchmark "
                                                            "(default 128 on GPU, 32 on CPU)")
    ap.add_argument("--steps", type=int, default=None, help="steps per timing repeat (default 20 GPU, 2 CPU)")
    ap.add_argument("--cifar-size", type=int, default=10000, help="examples in the CIFAR-shaped pipeline test")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op CPU threads (default 1: on a shared machine more threads mostly measure contention)")
    args = ap.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    gpu = device.type == "cuda"
    torch.set_num_threads(args.threads)
    batch = args.batch or (128 if gpu else 32)
    steps = args.steps or (20 if gpu else 2)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    print("\n== masked vs unmasked training step (90% of conv/linear weights pruned, SGD momentum + wd) ==")
    for name in ("cifar_resnet_20", "cifar_vgg_16"):
        masked_step_ratio(name, device, batch, steps)

    print("\n== device-resident tensor pipeline vs torchvision DataLoader (one training epoch, no model) ==")
    digits = data.get("digits")
    pipeline_ratio("digits (1437 x 1x8x8, batch 64)", digits, 64, False, device, args.workers)
    rng = np.random.default_rng(0)
    n = args.cifar_size
    cifar_like = TensorDataSet("cifar-shaped", {"train": Split(
        torch.from_numpy(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)),
        torch.from_numpy(rng.integers(0, 10, n)))}, num_classes=10, scale=255.0,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
        augmentation=Augmentation(shift=4, flip=True))
    pipeline_ratio(f"CIFAR-shaped ({n} x 3x32x32, b128, aug)", cifar_like, 128, True, device, args.workers)


if __name__ == "__main__":
    main()
