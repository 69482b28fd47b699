"""Readers for each data set's genuine on-disk format, returning in-memory splits or torchvision data sets."""

from __future__ import annotations

import gzip
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import torch

from .dataset import DataNotFound, Split

# Files are read here rather than through torchvision's classes because those verify MD5 sums of the full
# official archives and read only uncompressed IDX files; torchvision is used to download them.

# Seconds a download waits to connect or for the next bytes: without network access the fallback (e.g. fig4's
# digits) must come quickly, not after the operating system's minutes-long TCP timeout.
DOWNLOAD_TIMEOUT = 20.0


def search_path(root=None) -> list[Path]:
    """The directories where data sets are looked for, in order.

    root: one directory, several joined by os.pathsep, or a list of them; exactly those are searched. None: every
    entry of $RAYSWEEP_DATA, then ~/.raysweep/data, then <dir>/datasets for each <dir> of $XDG_DATA_DIRS (default
    /usr/local/share:/usr/share), where distributions install data-set packages (Debian's dataset-fashion-mnist
    puts its files in /usr/share/datasets/fashion-mnist).
    """
    if root is None:
        system = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
        entries = [*os.environ.get("RAYSWEEP_DATA", "").split(os.pathsep), str(Path.home() / ".raysweep" / "data"),
                   *(str(Path(d) / "datasets") for d in system.split(os.pathsep) if d)]
    elif isinstance(root, (str, os.PathLike)):
        entries = str(root).split(os.pathsep)
    else:
        entries = [str(r) for r in root]
    out = []
    for e in entries:
        if e and Path(e).expanduser() not in out:
            out.append(Path(e).expanduser())
    if not out:
        raise ValueError(f"data root {root!r} names no directory")
    return out


def writable(roots: list[Path]) -> Path | None:
    """The first of `roots` that exists and is writable, or could be created (its nearest existing parent is)."""
    for r in roots:
        existing = next(p for p in (r, *r.parents) if p.exists())
        if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
            return r
    return None


def _download(name, path, fetch):
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # torchvision's urlopen calls take the default
    try:
        fetch()
    except Exception as e:  # network errors come in many types; all mean "could not obtain"
        raise DataNotFound(name, path, f"download failed ({type(e).__name__}: {e}); place the files there "
                                       f"by hand or retry with network access") from e
    finally:
        socket.setdefaulttimeout(before)


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


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (LeCun's MNIST format; gzipped when its name ends in .gz): two zero bytes, a type code, the
    number of dimensions, each dimension as a big-endian int32, then the values in C order."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (header {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(shape))
    if len(raw) != 4 + 4 * ndim + count * dtype.itemsize:
        raise ValueError(f"{path}: {len(raw)} bytes do not hold the {shape} values its header announces")
    values = np.frombuffer(raw, dtype, count, 4 + 4 * ndim).reshape(shape)
    return torch.from_numpy(values.astype(dtype.newbyteorder("=")))


_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _idx_file(folder: Path, stem: str) -> Path | None:
    return next((folder / f for f in (stem, stem + ".gz") if (folder / f).exists()), None)


def _idx_set(name: str, root: Path, download: bool, folders: list[str], tv_class: str) -> dict:
    """The four MNIST-style IDX files of `name`, gzipped or not, in the first of root/<folder> holding them all
    (folders[0] is torchvision's layout, where a download puts them)."""
    stems = [s for pair in _IDX_FILES.values() for s in pair]
    found = next((root / f for f in folders if all(_idx_file(root / f, s) for s in stems)), None)
    if found is None:
        raw = root / folders[0]
        if not download:
            raise DataNotFound(name, os.pathsep.join(str(root / f) for f in folders),
                               f"expected the idx files {stems} (each may be gzipped, .gz) in one of those "
                               f"folders; use download=True (torchvision.datasets.{tv_class}) or copy them there")
        import torchvision.datasets as tvd
        _download(name, raw, lambda: getattr(tvd, tv_class)(str(root), train=True, download=True))
        found = raw
    out = {}
    for split, (images, labels) in _IDX_FILES.items():
        x, y = read_idx(_idx_file(found, images)), read_idx(_idx_file(found, labels))
        if x.dim() != 3 or y.shape != x.shape[:1]:
            raise ValueError(f"{name} {split}: images {tuple(x.shape)} and labels {tuple(y.shape)} in {found} "
                             f"do not pair up as (N, H, W) and (N,)")
        out[split] = Split(x.unsqueeze(1), y.long())
    return out


def mnist(root: Path, download: bool) -> dict:
    return _idx_set("mnist", root, download, ["MNIST/raw"], "MNIST")


def fashion_mnist(root: Path, download: bool) -> dict:
    # torchvision's layout, then Debian's dataset-fashion-mnist (<system data dir>/fashion-mnist/*.gz)
    return _idx_set("fashion_mnist", root, download, ["FashionMNIST/raw", "fashion-mnist"], "FashionMNIST")


def kmnist(root: Path, download: bool) -> dict:
    return _idx_set("kmnist", root, download, ["KMNIST/raw"], "KMNIST")


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

