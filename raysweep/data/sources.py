"""Readers for each data set's genuine on-disk format, returning in-memory splits or torchvision data sets."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from .dataset import DataNotFound, Split

# Files are read here rather than through torchvision's classes because those verify MD5 sums of the full
# official archives; torchvision is used to download them.


def _download(name, path, fetch):
    try:
        fetch()
    except Exception as e:  # network errors come in many types; all mean "could not obtain"
        raise DataNotFound(name, path, f"download failed ({type(e).__name__}: {e}); place the files there "
                                       f"by hand or retry with network access") from e


def digits(root: Path, download: bool) -> dict:
    from sklearn.datasets import load_digits
    d = load_digits()
    images = torch.as_tensor(d.images, dtype=torch.uint8).unsqueeze(1)  # values 0..16
    labels = torch.as_tensor(d.target, dtype=torch.long)
    # Fixed split, independent of the run's seed, so every run of a sweep tests on the same 360 images.
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(labels), generator=g)
    test, train = order[:360], order[360:]
    return {"train": Split(images[train], labels[train]), "test": Split(images[test], labels[test])}


def mnist(root: Path, download: bool) -> dict:
    from torchvision.datasets import MNIST
    from torchvision.datasets.mnist import read_image_file, read_label_file
    raw = root / "MNIST" / "raw"
    files = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"]
    if not all((raw / f).exists() for f in files):
        if not download:
            raise DataNotFound("mnist", raw, f"expected the idx files {files}; use download=True "
                                             f"(torchvision.datasets.MNIST) or copy them there")
        _download("mnist", raw, lambda: MNIST(str(root), train=True, download=True))
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_image_file(str(raw / f"{prefix}-images-idx3-ubyte")).unsqueeze(1)
        labels = read_label_file(str(raw / f"{prefix}-labels-idx1-ubyte"))
        out[split] = Split(images, labels)
    return out


def _read_cifar(folder: Path, files: list[str], label_key: str) -> Split:
    xs, ys = [], []
    for f in files:
        with open(folder / f, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.extend(entry[label_key])
    return Split(torch.from_numpy(np.concatenate(xs)), torch.as_tensor(ys, dtype=torch.long))


def _cifar(name, root, download, folder, train_files, test_files, meta, label_key, tv_class):
    path = root / folder
    needed = train_files + test_files + [meta]
    if not all((path / f).exists() for f in needed):
        if not download:
            raise DataNotFound(name, path, f"expected the python-pickle batches {needed}; use download=True "
                                           f"(torchvision.datasets.{tv_class}) or extract the official "
                                           f"python archive into {root}")
        import torchvision.datasets as tvd
        _download(name, path, lambda: getattr(tvd, tv_class)(str(root), train=True, download=True))
    return {"train": _read_cifar(path, train_files, label_key), "test": _read_cifar(path, test_files, label_key)}


def cifar10(root: Path, download: bool) -> dict:
    return _cifar("cifar10", root, download, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                  ["test_batch"], "batches.meta", "labels", "CIFAR10")


def cifar100(root: Path, download: bool) -> dict:
    return _cifar("cifar100", root, download, "cifar-100-python", ["train"], ["test"], "meta", "fine_labels",
                  "CIFAR100")


def svhn(root: Path, download: bool) -> dict:
    import scipy.io
    path = root / "svhn"
    out = {}
    for split in ("train", "test"):
        f = path / f"{split}_32x32.mat"
        if not f.exists():
            if not download:
                raise DataNotFound("svhn", f, "use download=True (torchvision.datasets.SVHN) or download "
                                              f"{split}_32x32.mat from http://ufldl.stanford.edu/housenumbers/")
            from torchvision.datasets import SVHN
            _download("svhn", f, lambda: SVHN(str(path), split=split, download=True))
        mat = scipy.io.loadmat(str(f))
        images = torch.from_numpy(np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1))))
        labels = torch.as_tensor(mat["y"].astype(np.int64).reshape(-1))
        labels[labels == 10] = 0  # SVHN stores the digit 0 as class 10
        out[split] = Split(images, labels)
    return out


class AnnotatedImages(torch.utils.data.Dataset):
    """TinyImageNet's official validation layout: val/images/<file> labelled by val/val_annotations.txt."""

    def __init__(self, folder: Path, class_to_idx: dict):
        from torchvision.datasets.folder import default_loader
        self.loader, self.transform, self.classes = default_loader, None, sorted(class_to_idx)
        self.samples = []
        for line in (folder / "val_annotations.txt").read_text().splitlines():
            if line.strip():
                fname, wnid = line.split("\t")[:2]
                if wnid not in class_to_idx:
                    raise ValueError(f"{folder / 'val_annotations.txt'}: class {wnid!r} has no training folder")
                self.samples.append((str(folder / "images" / fname), class_to_idx[wnid]))
        self.targets = [t for _, t in self.samples]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, target = self.samples[i]
        img = self.loader(path)
        return (self.transform(img) if self.transform is not None else img), target


def image_folder(name: str, root: Path, folder: str, how: str) -> dict:
    from torchvision.datasets import ImageFolder
    train_path, val_path = root / folder / "train", root / folder / "val"
    for path in (train_path, val_path):
        if not path.is_dir():
            raise DataNotFound(name, path, how)
    train = ImageFolder(str(train_path))
    if (val_path / "val_annotations.txt").exists():
        return {"train": train, "test": AnnotatedImages(val_path, train.class_to_idx)}
    test = ImageFolder(str(val_path))
    if train.classes != test.classes:
        raise ValueError(f"{name}: class folders of {train_path} and {val_path} differ")
    return {"train": train, "test": test}


def relabelled_folder(name: str, path: Path, classes: list[str], how: str):
    """An ImageFolder at `path` (<class>/<image>) whose class folders are some of `classes`, each image labelled by
    its folder's index in `classes`: ImageNet-O's 200 class folders are ImageNet wnids, labelled as ImageNet's."""
    from torchvision.datasets import ImageFolder
    if not path.is_dir():
        raise DataNotFound(name, path, how)
    folder = ImageFolder(str(path))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(folder.classes) - set(index))
    if unknown:
        raise ValueError(f"{name}: class folders {unknown[:5]} of {path} are not among the {len(classes)} classes "
                         f"they are labelled by")
    folder.samples = [(file, index[folder.classes[t]]) for file, t in folder.samples]
    folder.imgs, folder.targets = folder.samples, [t for _, t in folder.samples]
    folder.classes, folder.class_to_idx = list(classes), index
    return folder


def class_folders(name: str, path: Path, how: str) -> list[str]:
    """The sorted class folder names under `path`: the labels ImageFolder gives them."""
    if not path.is_dir():
        raise DataNotFound(name, path, how)
    return sorted(entry.name for entry in os.scandir(path) if entry.is_dir())


def default_root() -> Path:
    return Path(os.environ.get("RAYSWEEP_DATA") or Path.home() / ".raysweep" / "data")
