"""DataSet objects: what a training run needs to know about a data set, and its loaders."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from .folder_pipeline import FolderLoader, image_transform
from .tensor_pipeline import Augmentation, TensorLoader, augmentation, normaliser, to_float


class DataNotFound(FileNotFoundError):
    """A data set's files are not where they were looked for; the message says where and how to get them."""

    def __init__(self, name: str, path, how: str):
        self.name, self.path, self.how = name, str(path), how
        super().__init__(f"data set {name!r} not found at {self.path}: {how}")


@dataclass
class Split:
    """One split of an in-memory data set: raw images (N,C,H,W) with values in [0, scale] and integer labels."""
    images: torch.Tensor
    labels: torch.Tensor


class DataSet:
    """Common interface; see TensorDataSet and FolderDataSet."""

    name: str
    num_classes: int
    input_shape: tuple
    mean: tuple
    std: tuple

    def splits(self) -> list[str]:
        raise NotImplementedError

    def _check_split(self, split: str) -> None:
        if split not in self.splits():
            raise KeyError(f"data set {self.name!r} has no split {split!r}; it has {self.splits()}")

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={self.size(s)}" for s in self.splits())
        return f"<DataSet {self.name} {self.input_shape} classes={self.num_classes} {sizes}>"


class TensorDataSet(DataSet):
    """A data set small enough to live on the device; batches come from TensorLoader."""

    def __init__(self, name, splits: dict, *, num_classes, scale, mean, std, augmentation=Augmentation(),
                 dtype=torch.float32):
        self.name, self._splits, self.num_classes = name, splits, int(num_classes)
        self.dtype = dtype  # of the batches: float64 ones train a float64 model in float64 throughout
        self.scale, self.mean, self.std, self.augmentation = scale, tuple(mean), tuple(std), augmentation
        self.input_shape = tuple(next(iter(splits.values())).images.shape[1:])
        self._resident = {}  # (split, device) -> Split copied there once: every loader, evaluation and packed member
        # on that device reads this one copy

    def _on(self, split: str, device) -> Split:
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:  # "cuda" and "cuda:0" must share one copy
            device = torch.device("cuda", torch.cuda.current_device())
        key = (split, str(device))
        if key not in self._resident:
            s = self._splits[split]
            self._resident[key] = Split(s.images.to(device), s.labels.to(device))
        return self._resident[key]

    def splits(self):
        return list(self._splits)

    def size(self, split: str) -> int:
        self._check_split(split)
        return len(self._splits[split].labels)

    def targets(self, split: str) -> torch.Tensor:
        self._check_split(split)
        return self._splits[split].labels

    def examples(self, split: str, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised, unaugmented examples at `indices` of `split`, on the CPU."""
        self._check_split(split)
        s = self._splits[split]
        idx = torch.as_tensor(indices, dtype=torch.long)
        mean, inv_std = normaliser(self.mean, self.std)
        return to_float(s.images[idx], self.scale, self.dtype).sub_(mean).mul_(inv_std), s.labels[idx]

    def loader(self, split, batch_size, *, shuffle=False, augment=False, seed=0, device="cpu", rank=0,
               world_size=1, drop_last=False):
        """augment: True (the data set's augmentation), False, or a name of tensor_pipeline.AUGMENTATIONS."""
        self._check_split(split)
        aug = augmentation(augment, self.augmentation)
        if aug.crop != "center":
            raise ValueError(f"augmentation {augment!r} crops image files; {self.name!r} holds its images in memory "
                             f"at the input size {self.input_shape}")
        s = self._on(split, device)
        return TensorLoader(s.images, s.labels, batch_size, scale=self.scale, mean=self.mean, std=self.std,
                            shuffle=shuffle, augmentation=aug or None, seed=seed, device=device, rank=rank,
                            world_size=world_size, drop_last=drop_last, pad_shards=shuffle or bool(aug),
                            dtype=self.dtype)


class FolderDataSet(DataSet):
    """A data set read from files by a DataLoader; `datasets[split]` are torchvision-style data sets whose
    `transform` attribute is set per loader: the test view (resize to `resize`, centre crop `crop`) or an
    augmentation (`augmentation` by default)."""

    def __init__(self, name, datasets: dict, *, num_classes, crop, resize, mean, std, augmentation=Augmentation()):
        self.name, self._datasets, self.num_classes = name, datasets, int(num_classes)
        self.input_shape, self.mean, self.std = (3, int(crop), int(crop)), tuple(mean), tuple(std)
        self.crop, self.resize, self.augmentation = int(crop), int(resize), augmentation

    def transform(self, augment):
        """The image transform of a loader with this `augment` (see TensorDataSet.loader)."""
        return image_transform(augmentation(augment, self.augmentation), self.crop, self.resize, self.mean, self.std)

    def splits(self):
        return list(self._datasets)

    def size(self, split: str) -> int:
        self._check_split(split)
        return len(self._datasets[split])

    def targets(self, split: str) -> torch.Tensor:
        self._check_split(split)
        ds = self._datasets[split]
        if isinstance(ds, torch.utils.data.Subset):
            return torch.as_tensor(ds.dataset.targets)[torch.as_tensor(ds.indices)]
        return torch.as_tensor(ds.targets)

    def _view(self, split, augment):
        # A Subset (validation hold-out) shares its parent; give each loader its own shallow copy with its transform.
        ds = copy.copy(self._datasets[split])
        base = ds.dataset if isinstance(ds, torch.utils.data.Subset) else ds
        base = copy.copy(base)
        base.transform = self.transform(augment)
        if isinstance(ds, torch.utils.data.Subset):
            ds.dataset = base
            return ds
        return base

    def examples(self, split: str, indices) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_split(split)
        ds = self._view(split, augment=False)
        items = [ds[int(i)] for i in indices]
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])

    def loader(self, split, batch_size, *, shuffle=False, augment=False, seed=0, device="cpu", rank=0,
               world_size=1, drop_last=False, num_workers=None):
        self._check_split(split)
        return FolderLoader(self._view(split, augment), batch_size, shuffle=shuffle, seed=seed, device=device,
                            rank=rank, world_size=world_size, drop_last=drop_last,
                            pad_shards=shuffle or bool(augmentation(augment, self.augmentation)),
                            num_workers=num_workers)
