"""Data set registry: names -> how to read them, their statistics and their augmentation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import sources
from .dataset import DataNotFound, DataSet, FolderDataSet, Split, TensorDataSet
from .tensor_pipeline import AUGMENTATIONS, Augmentation

_CIFAR_AUG = Augmentation(shift=4, flip=True)  # Frankle A.2


@dataclass(frozen=True)
class Spec:
    read: Callable
    num_classes: int
    scale: float
    mean: tuple
    std: tuple
    augmentation: Augmentation = Augmentation()  # no flips for digit sets: mirrored digits are other symbols


# Per-channel statistics of each training set (pixel values scaled to [0, 1]).
_IN_MEMORY = {
    "digits": Spec(sources.digits, 10, 16.0, (0.3056,), (0.3761,)),
    "mnist": Spec(sources.mnist, 10, 255.0, (0.1307,), (0.3081,), Augmentation(rotate=4.0)),  # Vysogorets A
    # computed here from the 60,000 training images of Debian's dataset-fashion-mnist
    "fashion_mnist": Spec(sources.fashion_mnist, 10, 255.0, (0.2860,), (0.3530,)),
    # the values quoted with torchvision's KMNIST (its files could not be fetched here to recompute them)
    "kmnist": Spec(sources.kmnist, 10, 255.0, (0.1918,), (0.3483,)),
    "cifar10": Spec(sources.cifar10, 10, 255.0, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), _CIFAR_AUG),
    "cifar100": Spec(sources.cifar100, 100, 255.0, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), _CIFAR_AUG),
    "svhn": Spec(sources.svhn, 10, 255.0, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), Augmentation(shift=4)),
}

_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_FOLDERS = {
    # name: (folder under root, crop size, resize before the test centre crop, mean, std)
    "tinyimagenet": ("tiny-imagenet-200", 64, 64, (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)),
    "imagenet": ("imagenet", 224, 256, _IMAGENET_MEAN, _IMAGENET_STD),
}


# Test-only image-folder sets for out-of-distribution detection: name -> (folder under root, the data set whose
# classes label its images). ImageNet-O (Hendrycks et al. 2021) holds 2,000 images in 200 folders named by ImageNet
# wnids; Liu et al. App. A use "ImageNet-O as the OoD dataset for models trained on ImageNet".
_OOD_FOLDERS = {"imagenet_o": ("imagenet-o", "imagenet")}

_BUILTIN = frozenset([*_IN_MEMORY, *_FOLDERS, *_OOD_FOLDERS])


def names() -> list[str]:
    return list(_IN_MEMORY) + list(_FOLDERS) + list(_OOD_FOLDERS)


def register(name: str, spec: Spec) -> None:
    """Add an in-memory data set: spec.read(root, download) -> {split: Split}. A registered name may be registered
    again (a plugin can be imported more than once); the built-in data sets cannot be replaced."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in data set")
    _IN_MEMORY[name] = spec


def spec(name: str) -> Spec:
    """The registry entry of an in-memory data set (to derive another from it)."""
    if name not in _IN_MEMORY:
        raise KeyError(f"{name!r} is not an in-memory data set; those are {list(_IN_MEMORY)}")
    return _IN_MEMORY[name]


def _holdout(n: int, validation, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    count = int(round(validation * n)) if isinstance(validation, float) else int(validation)
    if not 0 <= count < n:
        raise ValueError(f"validation={validation!r} must hold out between 0 and {n - 1} of {n} training examples")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return order[count:], order[:count]


def _first_found(name: str, roots: list, read, download: bool):
    """read(root, download=False) in each root in turn; if none holds the files and `download`, read(root, True) in
    the first writable root. DataNotFound lists every path looked in."""
    missing = []
    for r in roots:
        try:
            return read(r, False)
        except DataNotFound as e:
            missing.append(e)
    target = sources.writable(roots) if download else None
    if target is not None:
        return read(target, True)
    if len(missing) == 1 and not download:
        raise missing[0]
    why = "no writable directory to download into; " if download else ""
    raise DataNotFound(name, os.pathsep.join(e.path for e in missing), why + missing[0].how)


def get(name: str, root=None, seed: int = 0, validation=0, *, download: bool = True) -> DataSet:
    """Load data set `name`, found in the first directory of the search path that holds it.

    root: a directory, several joined by os.pathsep, or a list; None searches $RAYSWEEP_DATA, ~/.raysweep/data and
    the system data directories (sources.search_path).
    validation: number (int) or fraction (float) of the training set held out, seeded by `seed`, as split "val".
    download: when no directory holds the files, fetch them through torchvision (where the source allows it) into
    the first writable directory of the search path. With download=False nothing is created and no network is used.
    """
    if name not in names():
        raise KeyError(f"unknown data set {name!r}; known: {names()}")
    roots = sources.search_path(root)
    if name in _IN_MEMORY:
        spec = _IN_MEMORY[name]
        splits = _first_found(name, roots, spec.read, download)
        if validation:
            tr = splits["train"]
            keep, held = _holdout(len(tr.labels), validation, seed)
            splits = {"train": Split(tr.images[keep], tr.labels[keep]), "val": Split(tr.images[held], tr.labels[held]),
                      "test": splits["test"]}
        return TensorDataSet(name, splits, num_classes=spec.num_classes, scale=spec.scale, mean=spec.mean,
                             std=spec.std, augmentation=spec.augmentation)
    if name in _OOD_FOLDERS:
        return _first_found(name, roots, lambda r, _download: _ood_folder(name, r), download=False)
    folder, crop, resize, mean, std = _FOLDERS[name]

    def read(r, _download):
        how = (f"arrange the images as ImageFolder trees {r / folder}/train/<class>/<image> and "
               f"{r / folder}/val/<class>/<image> (TinyImageNet's official val/images + val/val_annotations.txt "
               f"also works: unzip tiny-imagenet-200.zip into {r}); no automatic download exists for {name}")
        return sources.image_folder(name, r, folder, how)

    splits = _first_found(name, roots, read, download=False)
    if validation:
        keep, held = _holdout(len(splits["train"]), validation, seed)
        splits = {"train": torch.utils.data.Subset(splits["train"], keep.tolist()),
                  "val": torch.utils.data.Subset(splits["train"], held.tolist()), "test": splits["test"]}
    return FolderDataSet(name, splits, num_classes=len(splits["test"].classes), crop=crop, resize=resize, mean=mean,
                         std=std, augmentation=AUGMENTATIONS["resized_crop_flip"])   # Frankle A.2


def _ood_folder(name: str, root: Path) -> DataSet:
    """A test split of images labelled by the classes of the data set they are out of, viewed as its test images."""
    folder, trained_on = _OOD_FOLDERS[name]
    base, crop, resize, mean, std = _FOLDERS[trained_on]
    classes = sources.class_folders(
        name, root / base / "train", f"{name} labels its images by {trained_on}'s classes, the folder names of "
                                     f"{root / base}/train/<class>/ (see data.get({trained_on!r}))")
    test = sources.relabelled_folder(
        name, root / folder, classes, f"extract imagenet-o.tar (Hendrycks et al., github.com/hendrycks/"
                                      f"natural-adv-examples) into {root}, giving {root / folder}/<wnid>/<image>")
    return FolderDataSet(name, {"test": test}, num_classes=len(classes), crop=crop, resize=resize, mean=mean, std=std)


def balanced_batch(ds: DataSet, per_class: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` examples of every class from the training split, seeded; normalised, unaugmented, on the CPU."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    targets = ds.targets("train")
    g = torch.Generator().manual_seed(int(seed))
    chosen = []
    for c in range(ds.num_classes):
        idx = torch.nonzero(targets == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"{ds.name}: class {c} has {len(idx)} training examples, fewer than per_class={per_class}")
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return ds.examples("train", torch.cat(chosen))
