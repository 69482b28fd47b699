"""Device-resident pipeline: the whole split lives on the device and is augmented there, batch by batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .sharding import ShardedEpochs, epoch_generator


def random_shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift each image of x (B,C,H,W) by (dy[b], dx[b]) pixels in [-pad, pad], filling with zeros.

    Same result as zero-padding by `pad` and cropping the original size at offset (pad+dy, pad+dx).
    """
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (dy + pad).unsqueeze(1) + torch.arange(h, device=x.device)  # (B, H)
    cols = (dx + pad).unsqueeze(1) + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    # clone, not contiguous(): with one channel the permuted view already counts as contiguous, and its strides
    # (H*W, 1, W, 1) made torch's CPU convolution backward corrupt the heap (torch 2.14, one thread).
    return out.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)


def random_flip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images of x whose flip flag is set."""
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image of x about its centre by degrees[b] (bilinear, zero fill)."""
    rad = degrees.to(x.dtype) * (math.pi / 180)
    cos, sin, zero = rad.cos(), rad.sin(), torch.zeros_like(rad)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation, drawn independently per example: crop (image-folder data sets), rotate, shift, flip."""
    shift: int = 0         # random shifts by up to this many pixels in each direction (Frankle A.2)
    flip: bool = False     # random left-right flips
    rotate: float = 0.0    # random rotations by up to this many degrees (Vysogorets A, MNIST)
    crop: str = "center"   # image files only: "center" (resize, centre crop: the test view), "random" (resize, a
    #                        random crop of the input size) or "resized" (a random-resized crop, Frankle A.2)

    def __post_init__(self):
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")

    def __bool__(self) -> bool:
        return bool(self.shift or self.flip or self.rotate or self.crop != "center")


CROPS = ("center", "random", "resized")

# The papers' augmentations by name, so that a training preset can choose one whatever its data set's default
# (TrainHparams.augment); the name is then part of every trial id.
AUGMENTATIONS = {
    "none": Augmentation(),
    # Frankle A.2 (CIFAR-10); Vysogorets & Kempe A: "shifts by at most 4 pixels in any direction and horizontal flips
    # (CIFAR-10, CIFAR-100, and TinyImageNet)"
    "shift4_flip": Augmentation(shift=4, flip=True),
    # Vysogorets & Kempe A: "rotations by up to 4 degrees (MNIST)"
    "rotate4": Augmentation(rotate=4.0),
    # Vysogorets & Kempe A: "random 224 x 224 crops and horizontal flips (ImageNet)", read as crops of the input size
    # from the image resized as for testing
    "random_crop_flip": Augmentation(crop="random", flip=True),
    # Frankle A.2 (TinyImageNet, ImageNet): "a patch with a random aspect ratio between 0.8 and 1.25 and a random
    # scale between 0.1 and 1", cropped to the input size, and random horizontal flips
    "resized_crop_flip": Augmentation(crop="resized", flip=True),
}


def augmentations() -> list[str]:
    return sorted(AUGMENTATIONS)


def augmentation(augment, default: Augmentation) -> Augmentation:
    """The augmentation a loader applies: True the data set's `default`, False none, a name of AUGMENTATIONS that one."""
    if augment is True:
        return default
    if augment is False or augment is None:
        return AUGMENTATIONS["none"]
    if isinstance(augment, str) and augment in AUGMENTATIONS:
        return AUGMENTATIONS[augment]
    raise ValueError(f"augment must be True, False or one of {sorted(AUGMENTATIONS)}, got {augment!r}")


def normaliser(mean, std, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, 1/std) shaped for broadcasting over (B,C,H,W)."""
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    inv = 1.0 / torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return m, inv


def to_float(images: torch.Tensor, scale: float, dtype=torch.float32) -> torch.Tensor:
    return images.to(dtype).mul_(1.0 / scale)


class TensorLoader(ShardedEpochs):
    """Iterates (x, y) batches of an in-memory split; one epoch per iteration, chosen by set_epoch.

    images: uint8 or float tensor (N,C,H,W) with raw values in [0, scale]; normalisation and `augmentation`
    (None for none) are applied per batch on `device`, in `dtype`. The order and the augmentation draws of an epoch
    depend only on (seed, epoch), so training can resume mid-epoch with set_epoch(epoch, start_batch).
    """

    def __init__(self, images, labels, batch_size, *, scale, mean, std, shuffle, augmentation, seed,
                 device, rank=0, world_size=1, drop_last=False, pad_shards=True, dtype=torch.float32):
        super().__init__(len(labels), batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size,
                         drop_last=drop_last, pad_shards=pad_shards)
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.scale = float(scale)
        self.mean, self.inv_std = normaliser(mean, std, self.device)
        self.aug = augmentation or Augmentation()
        self.dtype = dtype

    def __iter__(self):
        idx = self.epoch_indices()
        n = len(idx)
        aug = self.aug
        if aug:
            g = epoch_generator(self.seed, self.epoch, stream=self.rank + 1)
            shifts = torch.randint(-aug.shift, aug.shift + 1, (2, n), generator=g).to(self.device)
            flips = (torch.rand(n, generator=g) < 0.5).to(self.device)
            angles = ((torch.rand(n, generator=g) * 2 - 1) * aug.rotate).to(self.device)
        idx = idx.to(self.device)
        for b in range(self.start_batch, len(self)):
            sl = slice(b * self.batch_size, min((b + 1) * self.batch_size, n))
            sel = idx[sl]
            x = to_float(self.images[sel], self.scale, self.dtype)
            if aug.rotate:
                x = random_rotate(x, angles[sl])
            if aug.shift:
                x = random_shift(x, shifts[0, sl], shifts[1, sl], aug.shift)
            if aug.flip:
                x = random_flip(x, flips[sl])
            yield x.sub_(self.mean).mul_(self.inv_std), self.labels[sel]
