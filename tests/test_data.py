"""raysweep.data: registry, genuine on-disk formats, device-resident pipeline, sharding, balanced batches."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from raysweep import data
from raysweep.data.sharding import shard_indices
from raysweep.data.tensor_pipeline import random_flip, random_rotate, random_shift


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These workloads are tiny; on a shared 2-core machine intra-op threads only add contention.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------- writers of the genuine on-disk formats ----------

def write_cifar10(root, per_batch=6, test=8, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {"train": ([], []), "test": ([], [])}
    for name, n, split in [(f"data_batch_{i}", per_batch, "train") for i in range(1, 6)] + [("test_batch", test, "test")]:
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": y, "data": x, "filenames": [f"{i}.png" for i in range(n)]}, f)
        written[split][0].append(x)
        written[split][1].extend(y)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": per_batch, "num_vis": 3072}, f)
    return {k: (np.concatenate(v[0]), v[1]) for k, v in written.items()}


def write_cifar100(root, train=120, test=20, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    written = {}
    for name, n in (("train", train), ("test", test)):
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"filenames": [f"{i}.png" for i in range(n)], "batch_label": name, "fine_labels": fine,
                         "coarse_labels": [v // 5 for v in fine], "data": x}, f)
        written[name] = (x, fine)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"f{i}" for i in range(100)],
                     "coarse_label_names": [f"c{i}" for i in range(20)]}, f)
    return written


def write_idx(path, array):
    # IDX: 2 zero bytes, type code 0x08 (ubyte), number of dims, big-endian int32 dims, then the data.
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def write_mnist(root, train=30, test=10, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    out = {}
    for prefix, split, n in (("train", "train", train), ("t10k", "test", test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
        out[split] = (x, y)
    return out


def write_svhn(root, train=20, test=10, seed=0):
    import scipy.io
    rng = np.random.default_rng(seed)
    folder = root / "svhn"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", train), ("test", test)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # SVHN stores H, W, C, N
        y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)           # labels 1..10, 10 meaning digit 0
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = (x, y)
    return out


def write_image_folder(root, folder, size, classes=("n01", "n02", "n03"), per_class=(4, 2), seed=0):
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "val"), per_class):
        for c in classes:
            d = root / folder / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(d / f"{c}_{i}.png")


# ---------- registry and digits ----------

def test_registry_names_and_errors():
    assert set(data.names()) == {"digits", "mnist", "fashion_mnist", "kmnist", "cifar10", "cifar100", "svhn",
                                 "tinyimagenet", "imagenet", "imagenet_o"}
    with pytest.raises(KeyError, match="nope"):
        data.get("nope")
    ds = data.get("digits")
    with pytest.raises(KeyError, match="val"):
        ds.size("val")


def test_digits_fixed_split_and_normalisation():
    a, b = data.get("digits", seed=0), data.get("digits", seed=7)
    assert (a.name, a.num_classes, a.input_shape) == ("digits", 10, (1, 8, 8))
    assert a.size("train") == 1437 and a.size("test") == 360
    xa, ya = a.examples("test", range(360))
    xb, yb = b.examples("test", range(360))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)  # the split does not depend on the run's seed
    x, _ = a.examples("train", range(a.size("train")))
    assert abs(x.mean().item()) < 2e-3 and abs(x.std().item() - 1) < 2e-3
    # Every digit image appears exactly once across train and test.
    from sklearn.datasets import load_digits
    raw = torch.as_tensor(load_digits().images).float().flatten(1) / 16
    both = torch.cat([x, xa]).flatten(1) * a.std[0] + a.mean[0]
    assert both.shape[0] == raw.shape[0]
    key = lambda t: sorted(map(tuple, (t * 16).round().int().tolist()))
    assert key(both) == key(raw)


@pytest.mark.parametrize("validation,expected", [(100, 100), (0.25, 359)])
def test_validation_holdout(validation, expected):
    full = data.get("digits")
    ds = data.get("digits", seed=3, validation=validation)
    assert ds.size("val") == expected and ds.size("train") == 1437 - expected and ds.size("test") == 360
    tr, _ = ds.examples("train", range(ds.size("train")))
    va, _ = ds.examples("val", range(ds.size("val")))
    orig, _ = full.examples("train", range(1437))
    key = lambda t: sorted(map(tuple, t.flatten(1).tolist()))
    assert key(torch.cat([tr, va])) == key(orig)
    again = data.get("digits", seed=3, validation=validation).examples("val", range(expected))[0]
    other = data.get("digits", seed=4, validation=validation).examples("val", range(expected))[0]
    assert torch.equal(again, va) and not torch.equal(other, va)
    with pytest.raises(ValueError, match="validation"):
        data.get("digits", validation=5000)


# ---------- device-resident pipeline ----------

def test_loader_epoch_covers_each_example_once_and_resumes():
    ds = data.get("digits")
    ld = ds.loader("train", 100, shuffle=True, augment=False, seed=5, device="cpu")
    assert len(ld) == 15  # ceil(1437 / 100)
    ld.set_epoch(2)
    batches = list(ld)
    assert [len(y) for _, y in batches] == [100] * 14 + [37]
    x = torch.cat([b[0] for b in batches])
    ref, _ = ds.examples("train", range(1437))
    key = lambda t: sorted(map(tuple, t.flatten(1).tolist()))
    assert key(x) == key(ref)
    ld.set_epoch(2, start_batch=9)
    tail = list(ld)
    assert len(tail) == 6 and all(torch.equal(a[0], b[0]) for a, b in zip(tail, batches[9:]))
    ld.set_epoch(3)
    assert not torch.equal(next(iter(ld))[0], batches[0][0])
    plain = ds.loader("train", 1437, shuffle=False, augment=False, device="cpu")
    xs, ys = next(iter(plain))
    assert torch.equal(xs, ref) and torch.equal(ys, ds.targets("train"))


def test_shard_indices_padding_and_disjointness():
    for n, w in [(10, 2), (11, 3), (7, 4)]:
        shards = [shard_indices(n, shuffle=True, seed=1, epoch=0, rank=r, world_size=w) for r in range(w)]
        assert len({len(s) for s in shards}) == 1 and len(shards[0]) == -(-n // w)
        assert set(torch.cat(shards).tolist()) == set(range(n))
        exact = [shard_indices(n, shuffle=False, seed=1, epoch=0, rank=r, world_size=w, pad=False) for r in range(w)]
        assert sorted(torch.cat(exact).tolist()) == list(range(n))
    with pytest.raises(ValueError, match="rank"):
        shard_indices(5, shuffle=False, seed=0, epoch=0, rank=2, world_size=2)


def test_sharded_loaders_partition_the_global_batches():
    ds = data.get("digits", validation=157)  # 1280 training examples = 20 global batches of 64
    one = ds.loader("train", 64, shuffle=True, seed=2, device="cpu")
    two = [ds.loader("train", 32, shuffle=True, seed=2, device="cpu", rank=r, world_size=2) for r in range(2)]
    assert len(one) == len(two[0]) == len(two[1]) == 20
    key = lambda t: sorted(map(tuple, t.flatten(1).tolist()))
    for (x, _), (x0, _), (x1, _) in zip(one, two[0], two[1]):
        assert key(x) == key(torch.cat([x0, x1]))


def test_random_shift_hand_case_and_torchvision_crop():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4) + 1
    out = random_shift(x, torch.tensor([1, 0]), torch.tensor([-2, 0]), pad=2)
    # Image 0 moves so that output[i, j] = input[i + 1, j - 2] (zero outside); image 1 is unchanged.
    expect = torch.zeros(4, 4)
    expect[:3, 2:] = x[0, 0, 1:, :2]
    assert torch.equal(out[0, 0], expect) and torch.equal(out[1], x[1])
    from torchvision.transforms import functional as TF
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(5, 3, 8, 8, generator=g)
    dy, dx = torch.randint(-4, 5, (5,), generator=g), torch.randint(-4, 5, (5,), generator=g)
    got = random_shift(imgs, dy, dx, pad=4)
    for i in range(5):
        ref = TF.crop(TF.pad(imgs[i], [4]), int(dy[i]) + 4, int(dx[i]) + 4, 8, 8)
        assert torch.equal(got[i], ref)
    flipped = random_flip(imgs, torch.tensor([True, False, True, False, False]))
    assert torch.equal(flipped[0], imgs[0].flip(2)) and torch.equal(flipped[1], imgs[1])


def test_random_rotate_matches_torchvision_and_rot90():
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    angles = torch.tensor([3.5, -4.0, 0.0])
    out = random_rotate(x, angles)
    for i in range(3):  # counter-clockwise for positive angles, like torchvision
        ref = TF.rotate(x[i], float(angles[i]), interpolation=InterpolationMode.BILINEAR)
        assert torch.allclose(out[i], ref, atol=1e-5)
    assert torch.allclose(out[2], x[2], atol=1e-5)
    assert torch.allclose(random_rotate(x[:1], torch.tensor([90.0]))[0, 0], torch.rot90(x[0, 0]), atol=1e-5)


# ---------- genuine on-disk formats ----------

def test_cifar10_pickle_batches(tmp_path):
    written = write_cifar10(tmp_path)
    ds = data.get("cifar10", root=tmp_path, download=False)
    assert (ds.num_classes, ds.input_shape, ds.size("train"), ds.size("test")) == (10, (3, 32, 32), 30, 8)
    x, y = ds.examples("test", range(8))
    raw, labels = written["test"]
    assert y.tolist() == labels
    # Rows hold 1024 red, then 1024 green, then 1024 blue values, each plane row-major.
    i, c, r, col = 3, 2, 5, 7
    value = raw[i, c * 1024 + r * 32 + col] / 255
    assert x[i, c, r, col].item() == pytest.approx((value - ds.mean[c]) / ds.std[c], abs=1e-5)
    assert torch.equal(ds.targets("train"), torch.tensor(written["train"][1]))


def test_cifar_augmentation_yields_shifted_flipped_originals(tmp_path):
    write_cifar10(tmp_path)
    ds = data.get("cifar10", root=tmp_path, download=False)
    aug = ds.loader("train", 30, shuffle=False, augment=True, seed=1, device="cpu")
    plain = ds.loader("train", 30, shuffle=False, augment=False, device="cpu")
    (xa, _), (xp, _) = next(iter(aug)), next(iter(plain))
    mean, std = torch.tensor(ds.mean).view(3, 1, 1), torch.tensor(ds.std).view(3, 1, 1)
    dy, dx = torch.meshgrid(torch.arange(-4, 5), torch.arange(-4, 5), indexing="ij")
    dy, dx = dy.flatten().repeat(2), dx.flatten().repeat(2)
    flips = torch.arange(162) >= 81
    seen_flip, seen_shift = False, False
    for a, p in zip(xa, xp):
        raw = (p * std + mean).expand(162, 3, 32, 32)
        candidates = (random_shift(random_flip(raw, flips), dy, dx, 4) - mean) / std
        hits = ((candidates - a).abs().flatten(1).amax(1) < 1e-5).nonzero().flatten()
        assert len(hits), "augmented image is not a shift/flip of its original"
        seen_flip |= bool(flips[hits].any())
        seen_shift |= bool(((dy[hits] != 0) | (dx[hits] != 0)).any())
    assert seen_flip and seen_shift


def test_cifar100_pickle_files(tmp_path):
    written = write_cifar100(tmp_path)
    ds = data.get("cifar100", root=tmp_path, download=False)
    assert (ds.num_classes, ds.size("train"), ds.size("test")) == (100, 120, 20)
    assert ds.targets("test").tolist() == written["test"][1]
    x, _ = ds.examples("train", [0])
    assert x[0, 1, 0, 0].item() == pytest.approx((written["train"][0][0, 1024] / 255 - ds.mean[1]) / ds.std[1], abs=1e-5)


def test_mnist_idx_files_match_torchvision(tmp_path):
    written = write_mnist(tmp_path)
    ds = data.get("mnist", root=tmp_path, download=False)
    assert (ds.input_shape, ds.size("train"), ds.size("test")) == ((1, 28, 28), 30, 10)
    assert ds.augmentation.rotate == 4.0 and not ds.augmentation.flip
    rotated = next(iter(ds.loader("train", 30, augment=True, seed=0, device="cpu")))[0]
    plain = next(iter(ds.loader("train", 30, device="cpu")))[0]
    assert not torch.equal(rotated, plain) and (rotated - plain).abs().mean() < 0.5
    from torchvision.datasets import MNIST
    tv = MNIST(str(tmp_path), train=False)
    assert torch.equal(ds.targets("test"), tv.targets)
    x, _ = ds.examples("test", range(10))
    assert torch.allclose(x[:, 0] * ds.std[0] + ds.mean[0], tv.data.float() / 255, atol=1e-6)
    assert np.array_equal(tv.data.numpy(), written["test"][0])


def write_idx_set(folder, gz, train=12, test=5, seed=0):
    """The four MNIST-style IDX files (as torchvision and the data sets' own sites ship them)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    out = {}
    for prefix, split, n in (("train", "train", train), ("t10k", "test", test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{'.gz' if gz else ''}", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{'.gz' if gz else ''}", y)
        out[split] = (x, y)
    return out


@pytest.mark.parametrize("name,folder,gz,mean", [("fashion_mnist", "FashionMNIST/raw", True, 0.2860),
                                                 ("kmnist", "KMNIST/raw", False, 0.1918)])
def test_fashion_mnist_and_kmnist_idx_files_gzipped_or_not(tmp_path, name, folder, gz, mean):
    written = write_idx_set(tmp_path / folder, gz)
    ds = data.get(name, root=tmp_path, download=False)
    assert (ds.num_classes, ds.input_shape, ds.size("train"), ds.size("test")) == (10, (1, 28, 28), 12, 5)
    assert ds.mean == (mean,) and not ds.augmentation.flip        # mirrored garments and characters are others
    for split in ("train", "test"):
        x, y = ds.examples(split, range(ds.size(split)))
        assert y.tolist() == written[split][1].tolist()
        raw = torch.from_numpy(written[split][0]).float() / 255
        assert torch.allclose(x[:, 0] * ds.std[0] + ds.mean[0], raw, atol=1e-6)


def test_idx_reader_checks_the_header_and_size(tmp_path):
    from raysweep.data.sources import read_idx
    write_idx(tmp_path / "ok.gz", np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert read_idx(tmp_path / "ok.gz").tolist() == [[0, 1, 2], [3, 4, 5]]
    (tmp_path / "short").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 5) + b"abc")
    with pytest.raises(ValueError, match="5,"):
        read_idx(tmp_path / "short")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "png")


@pytest.fixture
def search_env(tmp_path, monkeypatch):
    """A home, a $RAYSWEEP_DATA and two system data directories, all under tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAYSWEEP_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_DATA_DIRS", f"{tmp_path / 'local'}{os.pathsep}{tmp_path / 'usr'}")
    return tmp_path


def test_search_path_order_and_debian_layout(search_env):
    t = search_env
    assert data.sources.search_path() == [t / "env", t / "home" / ".raysweep" / "data", t / "local" / "datasets",
                                          t / "usr" / "datasets"]
    assert data.sources.search_path(f"{t / 'a'}{os.pathsep}{t / 'b'}") == [t / "a", t / "b"]
    # Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist/*.gz
    debian = write_idx_set(t / "usr" / "datasets" / "fashion-mnist", gz=True, seed=1)
    assert data.get("fashion_mnist", download=False).targets("test").tolist() == debian["test"][1].tolist()
    # an earlier directory of the path wins
    mine = write_idx_set(t / "home" / ".raysweep" / "data" / "FashionMNIST" / "raw", gz=False, seed=2)
    assert data.get("fashion_mnist", download=False).targets("test").tolist() == mine["test"][1].tolist()


def test_missing_everywhere_lists_every_place_looked_and_creates_nothing(search_env):
    t = search_env
    before = sorted(p for p in t.rglob("*"))
    with pytest.raises(data.DataNotFound) as err:
        data.get("fashion_mnist", download=False)
    looked = err.value.path.split(os.pathsep)
    assert looked == [str(r / f) for r in data.sources.search_path() for f in ("FashionMNIST/raw", "fashion-mnist")]
    assert all(p in str(err.value) for p in looked)
    assert sorted(p for p in t.rglob("*")) == before              # download=False created nothing


def test_download_goes_to_the_first_writable_directory(tmp_path):
    from raysweep.data.registry import _first_found
    (tmp_path / "file").write_text("")
    roots = [tmp_path / "file" / "sub", tmp_path / "new" / "data", tmp_path / "other"]  # no directory under a file
    assert data.sources.writable(roots) == tmp_path / "new" / "data"
    calls = []

    def read(root, download):
        calls.append((root, download))
        if not download:
            raise data.DataNotFound("fake", root / "fake", "fetch it")
        return {"root": root}

    assert _first_found("fake", roots, read, download=True) == {"root": tmp_path / "new" / "data"}
    assert calls == [(r, False) for r in roots] + [(tmp_path / "new" / "data", True)]
    with pytest.raises(data.DataNotFound, match="no writable directory"):
        _first_found("fake", roots[:1], read, download=True)


def test_svhn_mat_files(tmp_path):
    written = write_svhn(tmp_path)
    ds = data.get("svhn", root=tmp_path, download=False)
    assert (ds.input_shape, ds.size("train"), ds.size("test")) == ((3, 32, 32), 20, 10)
    y = written["train"][1][:, 0].astype(int)
    assert ds.targets("train").tolist() == [0 if v == 10 else v for v in y]
    x, _ = ds.examples("train", [4])
    h, w, c = 3, 9, 1
    raw = written["train"][0][h, w, c, 4] / 255
    assert x[0, c, h, w].item() == pytest.approx((raw - ds.mean[c]) / ds.std[c], abs=1e-5)


@pytest.mark.parametrize("name,folder,size,crop", [("tinyimagenet", "tiny-imagenet-200", 64, 64),
                                                   ("imagenet", "imagenet", 40, 224)])
def test_image_folder_sets(tmp_path, name, folder, size, crop):
    write_image_folder(tmp_path, folder, size)
    ds = data.get(name, root=tmp_path, validation=3)
    assert (ds.num_classes, ds.input_shape) == (3, (3, crop, crop))
    assert (ds.size("train"), ds.size("val"), ds.size("test")) == (9, 3, 6)
    ld = ds.loader("train", 4, shuffle=True, augment=True, seed=0, device="cpu", num_workers=0)
    batches = list(ld)
    assert len(ld) == len(batches) == 3 and batches[0][0].shape == (4, 3, crop, crop)
    test = list(ds.loader("test", 4, device="cpu", num_workers=0))
    assert [len(y) for _, y in test] == [4, 2] and torch.cat([y for _, y in test]).tolist() == [0, 0, 1, 1, 2, 2]
    if name == "tinyimagenet":  # 64x64 images pass the test transform unchanged apart from normalisation
        img = np.asarray(Image.open(tmp_path / folder / "val" / "n01" / "n01_0.png"), dtype=np.float32) / 255
        ref = (torch.from_numpy(img).permute(2, 0, 1) - torch.tensor(ds.mean).view(3, 1, 1)) / torch.tensor(ds.std).view(3, 1, 1)
        assert torch.allclose(test[0][0][0], ref, atol=1e-5)
    if name == "tinyimagenet":  # worker processes draw reproducible crops for a given (seed, epoch)
        workers = ds.loader("train", 4, shuffle=True, augment=True, seed=0, device="cpu", num_workers=2)
        workers.set_epoch(1)
        first, second = list(workers), list(workers)
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second))
        workers.set_epoch(2)
        assert not torch.equal(next(iter(workers))[0], first[0][0])
    shards = [ds.loader("train", 2, shuffle=True, seed=1, device="cpu", rank=r, world_size=2, num_workers=0)
              for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 3  # 9 examples padded to 10, 5 per rank


def test_tinyimagenet_official_layout(tmp_path):
    # tiny-imagenet-200.zip: train/<wnid>/images/<wnid>_<i>.JPEG; val/images/val_<i>.JPEG + val_annotations.txt
    rng = np.random.default_rng(0)
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n02", "n01"]
    for w in wnids:
        (base / "train" / w / "images").mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
                base / "train" / w / "images" / f"{w}_{i}.JPEG")
        (base / "train" / w / f"{w}_boxes.txt").write_text("")
    (base / "val" / "images").mkdir(parents=True)
    labels = ["n02", "n01", "n01"]
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(base / "val" / "images" / f"val_{i}.JPEG")
    (base / "val" / "val_annotations.txt").write_text(
        "".join(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63\n" for i, w in enumerate(labels)))
    ds = data.get("tinyimagenet", root=tmp_path)
    assert (ds.num_classes, ds.size("train"), ds.size("test")) == (2, 4, 3)
    assert ds.targets("test").tolist() == [1, 0, 0]  # classes sorted: n01 -> 0, n02 -> 1
    x, y = next(iter(ds.loader("test", 3, device="cpu", num_workers=0)))
    assert x.shape == (3, 3, 64, 64) and y.tolist() == [1, 0, 0]


def test_missing_data_sets_say_where_and_how(tmp_path):
    cases = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "mnist": "MNIST/raw",
             "kmnist": "KMNIST/raw",
             "svhn": "svhn/train_32x32.mat", "tinyimagenet": "tiny-imagenet-200/train", "imagenet": "imagenet/train"}
    for name, rel in cases.items():
        with pytest.raises(data.DataNotFound) as err:
            data.get(name, root=tmp_path, download=False)
        assert isinstance(err.value, FileNotFoundError)
        assert err.value.path == str(tmp_path / rel) and str(tmp_path / rel) in str(err.value)
        assert "download=True" in str(err.value) or "ImageFolder" in str(err.value)


def test_default_root_from_environment(tmp_path, monkeypatch):
    write_svhn(tmp_path)
    monkeypatch.setenv("RAYSWEEP_DATA", str(tmp_path))
    assert data.get("svhn", download=False).size("test") == 10


def test_balanced_batch():
    ds = data.get("digits")
    x, y = data.balanced_batch(ds, per_class=7, seed=1)
    assert x.shape == (70, 1, 8, 8) and torch.bincount(y, minlength=10).tolist() == [7] * 10
    x2, y2 = data.balanced_batch(ds, per_class=7, seed=1)
    x3, _ = data.balanced_batch(ds, per_class=7, seed=2)
    assert torch.equal(x, x2) and torch.equal(y, y2) and not torch.equal(x, x3)
    train, labels = ds.examples("train", range(ds.size("train")))
    rows = {tuple(r): int(l) for r, l in zip(train.flatten(1).tolist(), labels)}
    assert all(rows[tuple(r)] == int(l) for r, l in zip(x.flatten(1).tolist(), y))
    with pytest.raises(ValueError, match="per_class"):
        data.balanced_batch(ds, per_class=1000)


# ---------- the augmentation as a choice of the training preset; ImageNet-O ----------

def window_distance(full, patch):
    """Least mean squared difference between `patch` (C,h,w) and any h x w window of `full` (C,H,W), mirrored or not:
    about 1e-9 for a window (PIL's resampling and the float32 normalisation round trip), 0.1 for unrelated images.
    The window is located by its 8x8 corner (a cheap convolution), then compared in full."""
    import torch.nn.functional as F
    _, h, w = patch.shape
    best = float("inf")
    for p in (patch, patch.flip(2)):
        probe = p[:, :8, :8].double()
        ssd = (F.conv2d((full ** 2)[None].double(), torch.ones_like(probe)[None])
               - 2 * F.conv2d(full[None].double(), probe[None]))[0, 0][: full.shape[1] - h + 1, : full.shape[2] - w + 1]
        top, left = divmod(int(ssd.argmin()), ssd.shape[1])
        best = min(best, (full[:, top:top + h, left:left + w] - p).pow(2).mean().item())
    return best


def pixels(ds, x):
    """Normalised images back to [0, 1] pixels."""
    return x * torch.tensor(ds.std).view(1, 3, 1, 1) + torch.tensor(ds.mean).view(1, 3, 1, 1)


def test_folder_augmentation_is_chosen_by_name(tmp_path):
    """Vysogorets & Kempe A: "shifts by at most 4 pixels in any direction and horizontal flips (CIFAR-10, CIFAR-100,
    and TinyImageNet)"; Frankle A.2 crops TinyImageNet at random scales instead (the data set's default)."""
    write_image_folder(tmp_path, "tiny-imagenet-200", 64, per_class=(4, 1))
    ds = data.get("tinyimagenet", root=tmp_path)
    plain = pixels(ds, next(iter(ds.loader("train", 12, augment=False, device="cpu", num_workers=0)))[0])
    padded = torch.nn.functional.pad(plain, (4, 4, 4, 4))           # zero (black) fill, as random_shift
    torch.manual_seed(0)
    shifted = pixels(ds, next(iter(ds.loader("train", 12, augment="shift4_flip", device="cpu", num_workers=0)))[0])
    assert all(window_distance(padded[i], shifted[i]) < 1e-6 for i in range(12))
    assert not torch.allclose(shifted, plain)                        # something moved
    torch.manual_seed(0)
    default = pixels(ds, next(iter(ds.loader("train", 12, augment=True, device="cpu", num_workers=0)))[0])
    assert max(window_distance(padded[i], default[i]) for i in range(12)) > 1e-3   # resized crops: not shifts


def test_random_crop_is_a_window_of_the_resized_test_view(tmp_path):
    """Vysogorets & Kempe A: "random 224 x 224 crops and horizontal flips (ImageNet)"."""
    from torchvision import transforms as T
    write_image_folder(tmp_path, "imagenet", 48, classes=("n01",), per_class=(3, 1))
    ds = data.get("imagenet", root=tmp_path)
    crops = pixels(ds, next(iter(ds.loader("train", 3, augment="random_crop_flip", device="cpu", num_workers=0)))[0])
    assert crops.shape == (3, 3, 224, 224)
    for i, path in enumerate(sorted((tmp_path / "imagenet" / "train" / "n01").iterdir())):
        resized = T.ToTensor()(T.Resize(256)(Image.open(path).convert("RGB")))
        assert resized.shape == (3, 256, 256) and window_distance(resized, crops[i]) < 1e-6


def test_in_memory_sets_refuse_crops_and_unknown_names():
    ds = data.get("digits")
    with pytest.raises(ValueError, match="digits"):
        ds.loader("train", 8, augment="random_crop_flip")
    with pytest.raises(ValueError, match="shift4_flip"):
        ds.loader("train", 8, augment="shift4")
    assert "shift4_flip" in data.augmentations()


def test_augment_choice_is_part_of_the_trial_identity():
    from raysweep import sweep
    base = sweep.StudySpec(seeds=[0], sparsities=[0.5], grids=[sweep.Grid(methods=["random"])])
    chosen = base.replace(hparams={"augment": "shift4_flip"})
    a, b = sweep.expand(base), sweep.expand(chosen)
    assert {t.trial_id for t in a}.isdisjoint(t.trial_id for t in b)
    assert {t.dense_id for t in a}.isdisjoint(t.dense_id for t in b)
    with pytest.raises(sweep.SpecError, match="augment"):
        sweep.expand(base.replace(hparams={"augment": "mirror"}))


def test_imagenet_o_labels_its_images_by_imagenets_classes(tmp_path):
    """Liu et al. App. A: "ImageNet-O as the OoD dataset for models trained on ImageNet"; its class folders are
    ImageNet wnids, labelled as ImageNet labels them."""
    write_image_folder(tmp_path, "imagenet", 40, classes=("n01", "n02", "n03", "n04"), per_class=(1, 1))
    rng = np.random.default_rng(1)
    for wnid in ("n04", "n02"):
        (tmp_path / "imagenet-o" / wnid).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(
                tmp_path / "imagenet-o" / wnid / f"{i}.JPEG")
    (tmp_path / "imagenet-o" / "README.txt").write_text("ImageNet-O")
    ds = data.get("imagenet_o", root=tmp_path)
    imagenet = data.get("imagenet", root=tmp_path)
    assert ds.splits() == ["test"] and ds.num_classes == imagenet.num_classes == 4
    assert ds.targets("test").tolist() == [1, 1, 3, 3]
    assert (ds.input_shape, ds.mean, ds.std) == (imagenet.input_shape, imagenet.mean, imagenet.std)
    x, y = next(iter(ds.loader("test", 4, device="cpu", num_workers=0)))
    assert x.shape == (4, 3, 224, 224) and y.tolist() == [1, 1, 3, 3]
    from raysweep import metrics
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 8, stride=8), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    assert 0.0 <= metrics.ood_auroc(net, imagenet, ds, "cpu") <= 1.0


def test_imagenet_o_says_where_it_looked(tmp_path):
    with pytest.raises(data.DataNotFound) as err:
        data.get("imagenet_o", root=tmp_path)
    assert err.value.path == str(tmp_path / "imagenet" / "train")
    write_image_folder(tmp_path, "imagenet", 8, classes=("n01",), per_class=(1, 1))
    with pytest.raises(data.DataNotFound) as err:
        data.get("imagenet_o", root=tmp_path)
    assert err.value.path == str(tmp_path / "imagenet-o") and "imagenet-o.tar" in str(err.value)
    (tmp_path / "imagenet-o" / "n09").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "imagenet-o" / "n09" / "a.png")
    with pytest.raises(ValueError, match="n09"):
        data.get("imagenet_o", root=tmp_path)
