"""DataLoader path for image-folder data sets that do not fit in device memory."""

from __future__ import annotations

import os

import torch

from .sharding import ShardedEpochs
from .tensor_pipeline import Augmentation


def image_transform(aug: Augmentation, crop: int, resize: int, mean, std):
    """The torchvision transform of one image file under `aug`, in the order of the in-memory pipeline: crop to
    crop x crop ('center': resize the shorter side to `resize` and take the centre, the test view; 'random': a random
    crop of that resized image; 'resized': Frankle's random-resized crop), rotate, shift (zero fill), flip, then
    normalise per channel."""
    from torchvision import transforms as T
    if aug.crop == "resized":
        steps = [T.RandomResizedCrop(crop, scale=(0.1, 1.0), ratio=(0.8, 1.25))]
    else:
        steps = [T.Resize(resize), (T.RandomCrop if aug.crop == "random" else T.CenterCrop)(crop)]
    if aug.rotate:
        steps.append(T.RandomRotation(aug.rotate))
    if aug.shift:
        steps.append(T.RandomCrop(crop, padding=aug.shift))   # shifting by up to `shift`, as random_shift does
    if aug.flip:
        steps.append(T.RandomHorizontalFlip())
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])


class _EpochSampler(torch.utils.data.Sampler):
    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        ld = self.loader
        return iter(ld.epoch_indices()[ld.start_batch * ld.batch_size:].tolist())

    def __len__(self):
        return max(0, self.loader.num_examples - self.loader.start_batch * self.loader.batch_size)


def _seed_worker(worker_id: int) -> None:
    # Augmentations draw from torch's RNG; seed it per (epoch seed, worker) so each epoch's crops are reproducible.
    info = torch.utils.data.get_worker_info()
    torch.manual_seed(info.seed % 2**31)


class FolderLoader(ShardedEpochs):
    """Iterates (x, y) batches of a torchvision data set with workers; same epoch/shard semantics as TensorLoader."""

    def __init__(self, dataset, batch_size, *, shuffle, seed, device, rank=0, world_size=1, drop_last=False,
                 pad_shards=True, num_workers=None):
        super().__init__(len(dataset), batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size,
                         drop_last=drop_last, pad_shards=pad_shards)
        self.dataset = dataset
        self.device = torch.device(device)
        self.num_workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch * 7919 + self.rank)
        dl = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=_EpochSampler(self), drop_last=self.drop_last,
            num_workers=self.num_workers, worker_init_fn=_seed_worker if self.num_workers else None, generator=g,
            pin_memory=self.device.type == "cuda", persistent_workers=False)
        non_blocking = self.device.type == "cuda"
        for b, (x, y) in enumerate(dl, start=self.start_batch):
            if b >= len(self):
                break
            yield x.to(self.device, non_blocking=non_blocking), y.to(self.device, non_blocking=non_blocking)
