"""raysweep.training: schedules, presets, masked SGD, checkpoints and resume, divergence, data parallel."""

import dataclasses
import os
import socket

import pytest
import torch
from torch import nn

from raysweep import data, models, training
from raysweep.data.dataset import Split, TensorDataSet
from raysweep.data.sharding import shard_indices
from raysweep.training import checkpoints
from raysweep.training.schedule import learning_rate, parse_steps


@pytest.fixture(scope="module")
def digits():
    return data.get("digits")


def lenet(seed=0):
    return models.create("lenet_300_100", num_classes=10, input_shape=(1, 8, 8), seed=seed)


class SmallConvNet(nn.Module):
    """Conv + BatchNorm (running buffers) + Linear; `crash_at_forward` simulates an interrupted job."""

    def __init__(self, channels=1, size=8):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AvgPool2d(size // 8), nn.Flatten(), nn.Linear(8 * 64, 10))
        self.forwards, self.crash_at_forward = 0, None

    def forward(self, x):
        if self.training:
            self.forwards += 1
            if self.forwards == self.crash_at_forward:
                raise KeyboardInterrupt("simulated interruption")
        return self.body(x)


def fast(**changes):
    return training.preset("digits").replace(**changes)


# Where a test runs one algebra two ways that round differently (data parallel over two processes or one, an
# evaluation in batches or whole), it runs both in float64 (unit roundoff 1.1e-16): they differ only in the order
# their sums round in, ~1e-16 relative per step, which the few dozen steps below amplify at most ~1e4-fold
# (test_packed.py), leaving 1e-12 (data parallel ends 2e-16 apart here). 1e-10 keeps a hundredfold margin on any
# machine, while anything that changes the algebra (another batch, a gradient summed instead of averaged, a learning
# rate, a mask) moves the results by 1e-5 or more: one repeated example in each epoch's last batch moves a study's
# loss by 8e-5 relative. In float32 the same runs end ~1e-6 apart, how far depending on the machine's kernels.
FP64_TOL = 1e-10


def in_float64(ds: TensorDataSet) -> TensorDataSet:
    """`ds` yielding float64 batches, for float64 models."""
    return TensorDataSet(ds.name, ds._splits, num_classes=ds.num_classes, scale=ds.scale, mean=ds.mean, std=ds.std,
                         augmentation=ds.augmentation, dtype=torch.float64)


def assert_same_history(a: list, b: list):
    """The same evaluations of two float64 runs: steps, learning rates and accuracies exactly, losses to FP64_TOL."""
    assert [(h["step"], h["epoch"], h["lr"], h["accuracy"]) for h in a] == \
        [(h["step"], h["epoch"], h["lr"], h["accuracy"]) for h in b]
    for key in ("loss", "train_loss"):
        assert [h[key] for h in a] == pytest.approx([h[key] for h in b], rel=FP64_TOL)


def random_masks(model, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=g) < density for n, p in model.named_parameters() if p.dim() > 1}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These workloads are tiny; on a shared 2-core machine intra-op threads only add contention.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------- schedule and hyperparameters ----------

def test_parse_steps():
    assert parse_steps("160ep", 391) == 62560 and parse_steps("30000it", 391) == 30000
    assert parse_steps(" 2 ep", 10) == 20 and parse_steps(7, 10) == 7
    for bad in ("10", "ep", "1.5ep", "-3it", -1, True, None):
        with pytest.raises(ValueError):
            parse_steps(bad, 10)


def test_learning_rate_drops_and_warmup():
    drops = [80, 120]
    assert [learning_rate(s, 0.1, drops, 0.1, 0) for s in (0, 79, 80, 119, 120, 500)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert [learning_rate(s, 0.4, [], 0.1, 4) for s in (0, 1, 3, 4, 9)] == pytest.approx([0.1, 0.2, 0.4, 0.4, 0.4])


def test_presets_match_paper_tables():
    p = training.preset("frankle_cifar_resnet20")
    assert (p.batch_size, p.lr, p.momentum, p.weight_decay, p.training_steps, p.lr_drops, p.gamma, p.rewind_step) == (
        128, 0.1, 0.9, 1e-4, "160ep", ("80ep", "120ep"), 0.1, "1000it")
    assert training.preset("frankle_cifar_vgg16").rewind_step == "2000it"
    r50 = training.preset("frankle_imagenet_resnet50")
    assert (r50.batch_size, r50.lr, r50.training_steps, r50.lr_drops) == (1024, 0.4, "90ep", ("30ep", "60ep", "80ep"))
    t18 = training.preset("frankle_tinyimagenet_resnet18")
    assert (t18.batch_size, t18.lr, t18.training_steps, t18.lr_drops) == (256, 0.2, "200ep", ("100ep", "150ep"))
    l300 = training.preset("vysogorets_mnist_lenet300")
    assert (l300.batch_size, l300.weight_decay, l300.lr_drops) == (100, 5e-4, ("41ep", "83ep", "125ep"))
    assert training.preset("vysogorets_cifar_lenet5").training_steps == "307ep"
    assert training.preset("liu_cifar").weight_decay == 5e-4
    assert training.preset("liu_imagenet_sparse").lr_drops == ("30ep", "60ep", "90ep")
    for name in training.presets():
        hp = training.preset(name)
        # Tanaka et al.'s "drop factor=0.2" (Frankle et al., Table 7); every other paper drops 10x
        assert hp.momentum == 0.9 and hp.gamma == (0.2 if name == "tanaka_cifar_modified_resnet18" else 0.1)
    assert all(f.metadata.get("help") for f in dataclasses.fields(training.TrainHparams))
    with pytest.raises(KeyError, match="nope"):
        training.preset("nope")
    with pytest.raises(KeyError, match="learning_rate"):
        p.replace(learning_rate=1)
    with pytest.raises(ValueError, match="step count"):
        p.replace(training_steps="lots")
    with pytest.raises(ValueError, match="momentum"):
        p.replace(momentum=1.5)
    with pytest.raises(ValueError, match="precision must be one of"):
        p.replace(precision="fp16")


# ---------- training ----------

def test_lenet_trains_on_digits(digits):
    seen = []
    result = training.train(lenet(), digits, training.preset("digits"), device="cpu",
                            on_eval=lambda step, m: seen.append((step, m["accuracy"])))
    assert result.status == "completed" and result.accuracy > 0.9
    spe = 23  # ceil(1437 / 64)
    assert result.steps == 20 * spe and [s for s, _ in seen] == [spe * (e + 1) for e in range(20)]
    assert [h["accuracy"] for h in result.history] == [a for _, a in seen]
    assert result.history[-1]["lr"] == pytest.approx(0.05 * 0.01)
    untrained = lenet()
    assert training.evaluate(untrained, digits)["accuracy"] < 0.3 and untrained.training  # mode is restored


def test_evaluate_matches_manual_computation(digits):
    # float64: batches of 64 and one batch of all may run other matrix kernels, which round differently
    digits = in_float64(digits)
    model = lenet(3).double()
    x, y = digits.examples("test", range(digits.size("test")))
    with torch.no_grad():
        out = model(x)
    metrics = training.evaluate(model, digits, "test", device="cpu", batch_size=64)
    assert metrics["accuracy"] == (out.argmax(1) == y).double().mean().item()
    assert metrics["loss"] == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=FP64_TOL)


def test_masked_weights_stay_exactly_zero(digits, tmp_path):
    model = lenet(1)
    masks = random_masks(model, 0.3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert all((before[n][~m] != 0).any() for n, m in masks.items())
    hp = fast(training_steps="300it", lr=0.2, momentum=0.9, nesterov=True, weight_decay=1e-2)
    result = training.train(model, digits, hp, masks=masks, checkpoint_dir=tmp_path, device="cpu")
    assert result.status == "completed" and result.steps == 300
    params = dict(model.named_parameters())
    momentum = checkpoints.load(tmp_path / "state.pt")["optimizer"]["state"]
    index = {n: i for i, (n, _) in enumerate(model.named_parameters())}
    for n, m in masks.items():
        assert torch.count_nonzero(params[n][~m]) == 0
        assert torch.count_nonzero(momentum[index[n]]["momentum_buffer"][~m]) == 0
        assert (params[n][m] != before[n][m]).float().mean() > 0.99  # kept weights did train
    assert not torch.equal(params["1.bias"], before["1.bias"])


def test_train_matches_hand_written_masked_sgd(digits):
    # Cross-check of the whole loop against the textbook update: warmup, two drops, Nesterov momentum, weight
    # decay, masks, and the loader's seeded order across an epoch boundary (23 steps per epoch). The update below is
    # MaskedSGD's operations in MaskedSGD's order, each rounded on its own, and its learning rate is computed as
    # learning_rate() computes it; the forward and backward passes are the same kernels on the same batches. So the
    # weights are bit-identical, in float32, on any machine.
    mu, wd, total = 0.9, 1e-3, 30
    hp = fast(training_steps=f"{total}it", lr=0.1, lr_drops=("12it", "20it"), gamma=0.5, warmup_steps="5it",
              momentum=mu, nesterov=True, weight_decay=wd)
    model, ref = lenet(4), lenet(4)
    masks = random_masks(model, 0.4)
    training.train(model, digits, hp, masks=masks, seed=2, device="cpu")

    params = dict(ref.named_parameters())
    with torch.no_grad():
        for n, m in masks.items():
            params[n].mul_(m)
    bufs = {n: torch.zeros_like(p) for n, p in params.items()}
    loader = digits.loader("train", 64, shuffle=True, seed=2, device="cpu")
    step = 0
    for epoch in range(2):
        loader.set_epoch(epoch)
        for x, y in loader:
            if step == total:
                break
            lr = 0.1 * 0.5 ** ((step >= 12) + (step >= 20)) * min(1.0, (step + 1) / 5)
            grads = torch.autograd.grad(nn.functional.cross_entropy(ref(x), y), list(params.values()))
            with torch.no_grad():
                for (n, p), g in zip(params.items(), grads):
                    d = (g * masks[n] if n in masks else g) + wd * p
                    bufs[n] = mu * bufs[n] + d
                    p -= lr * (d + mu * bufs[n])
                    if n in masks:
                        p *= masks[n]
            step += 1
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), n


def test_all_ones_mask_changes_nothing(digits):
    hp = fast(training_steps="40it")
    a, b = lenet(2), lenet(2)
    training.train(a, digits, hp, device="cpu")
    training.train(b, digits, hp, masks={n: torch.ones_like(p, dtype=torch.bool)
                                         for n, p in b.named_parameters()}, device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_bad_masks_are_rejected(digits):
    model = lenet()
    with pytest.raises(KeyError, match="nonexistent"):
        training.train(model, digits, fast(), masks={"nonexistent": torch.ones(3, dtype=torch.bool)}, device="cpu")
    with pytest.raises(ValueError, match="shape"):
        training.train(model, digits, fast(), masks={"1.weight": torch.ones(3, dtype=torch.bool)}, device="cpu")


def test_save_steps_and_load_weights(digits, tmp_path):
    model = lenet()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    hp = fast(training_steps="3ep")
    res = training.train(model, digits, hp, save_steps=(0, 10, "1ep", "3ep"), checkpoint_dir=tmp_path, device="cpu")
    assert sorted(res.checkpoints) == [0, 10, 23, 69]
    assert sorted(os.listdir(tmp_path)) == ["state.pt", "step_0.pt", "step_10.pt", "step_23.pt", "step_69.pt"]
    w0, w69 = training.load_weights(res.checkpoints[0]), training.load_weights(tmp_path / "step_69.pt")
    assert all(torch.equal(w0[k], initial[k]) for k in initial)
    assert all(torch.equal(w69[k], v) for k, v in model.state_dict().items())
    # Rerunning a finished run resumes its final state and trains no further.
    again = training.train(lenet(), digits, hp, save_steps=(0, 10, "1ep", "3ep"), checkpoint_dir=tmp_path,
                           device="cpu")
    assert again.steps == 69 and again.history == res.history
    # A state of another run (here another learning rate) is set aside as damaged, and the run starts over.
    other = training.train(lenet(), digits, hp.replace(lr=0.3), checkpoint_dir=tmp_path, device="cpu")
    assert other.history == training.train(lenet(), digits, hp.replace(lr=0.3), device="cpu").history
    assert len(list(tmp_path.glob("state.pt.corrupt-*"))) == 1
    with pytest.raises(ValueError, match="outside"):
        training.train(lenet(), digits, hp, save_steps=("4ep",), checkpoint_dir=tmp_path / "x", device="cpu")
    with pytest.raises(FileNotFoundError):
        training.load_weights(tmp_path / "step_5.pt")


@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
def test_resume_after_interruption_is_bit_identical(dataset, digits, tmp_path):
    if dataset == "cifar10":  # exercises resuming the seeded on-device shifts and flips mid-epoch
        from test_data import write_cifar10
        write_cifar10(tmp_path / "data", per_batch=40)
        ds, shape, hp = data.get("cifar10", root=tmp_path / "data", download=False), (3, 32), fast(augment=True)
        hp = hp.replace(batch_size=16, training_steps="3ep", lr=0.02)  # 13 steps per epoch
        save, crash, total = 20, 24, 39
    else:
        ds, shape, hp = digits, (1, 8), fast(training_steps="4ep", lr=0.05)
        save, crash, total = 30, 40, 92
    hp = hp.replace(weight_decay=1e-3, nesterov=True)
    masks = random_masks(SmallConvNet(*shape), 0.5, seed=3)
    reference = SmallConvNet(*shape)
    ref = training.train(reference, ds, hp, masks=masks, seed=4, device="cpu")

    model = SmallConvNet(*shape)
    model.crash_at_forward = crash  # after the mid-epoch state at step `save` was written
    with pytest.raises(KeyboardInterrupt):
        training.train(model, ds, hp, masks=masks, seed=4, save_steps=(save,), checkpoint_dir=tmp_path / "ck",
                       device="cpu")
    assert checkpoints.load(tmp_path / "ck" / "state.pt")["step"] == save
    fresh = SmallConvNet(*shape)  # a new process would start from a new model object
    res = training.train(fresh, ds, hp, masks=masks, seed=4, save_steps=(save,), checkpoint_dir=tmp_path / "ck",
                         device="cpu")
    assert res.steps == ref.steps == total
    for (k, a), b in zip(reference.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    assert [h["accuracy"] for h in res.history] == [h["accuracy"] for h in ref.history]
    assert [h["train_loss"] for h in res.history] == [h["train_loss"] for h in ref.history]


def test_start_step_offsets_schedule_and_data_order(digits, tmp_path):
    # Without momentum the optimizer has no state, so continuing from step_30 weights with start_step=30 and a
    # fresh optimizer must reproduce the uninterrupted run exactly: same learning rates, same batches.
    hp = fast(training_steps="3ep", momentum=0.0, lr_drops=("1ep", "2ep"), gamma=0.5)
    full = lenet()
    training.train(full, digits, hp, save_steps=(30,), checkpoint_dir=tmp_path, device="cpu")
    rewound = lenet(9)
    rewound.load_state_dict(training.load_weights(tmp_path / "step_30.pt"))
    res = training.train(rewound, digits, hp, start_step=30, device="cpu")
    assert res.steps == 69 and [h["step"] for h in res.history] == [46, 69]
    assert res.history[0]["lr"] == pytest.approx(0.05 * 0.5)
    assert all(torch.equal(p, q) for p, q in zip(full.parameters(), rewound.parameters()))
    with pytest.raises(ValueError, match="start_step"):
        training.train(lenet(), digits, hp, start_step=70, device="cpu")


def test_trains_through_the_dataloader_path(tmp_path):
    from test_data import write_image_folder
    write_image_folder(tmp_path, "tiny-imagenet-200", 64, per_class=(4, 2))
    ds = data.get("tinyimagenet", root=tmp_path)
    model = SmallConvNet(3, 64)
    masks = random_masks(model, 0.5)
    res = training.train(model, ds, fast(batch_size=4, training_steps="2ep", augment=True), masks=masks,
                         device="cpu")
    assert res.status == "completed" and res.steps == 6 and [h["step"] for h in res.history] == [3, 6]
    assert torch.count_nonzero(model.body[0].weight[~masks["body.0.weight"]]) == 0
    assert res.accuracy == training.evaluate(model, ds)["accuracy"]


def with_poison(ds, index, augmentation=None):
    """A copy of in-memory `ds` (with another training augmentation if given) whose training example `index`
    (unless None) is infinite: a batch that holds it has a loss that is not finite."""
    splits = {k: Split(v.images.float(), v.labels) for k, v in ds._splits.items()}
    if index is not None:
        splits["train"].images[index] = float("inf")
    return TensorDataSet(f"{ds.name}-poisoned", splits, num_classes=ds.num_classes, scale=ds.scale, mean=ds.mean,
                         std=ds.std, augmentation=augmentation if augmentation is not None else ds.augmentation)


def poison_at(n, seed, position):
    """The example at `position` of seed's first-epoch order."""
    return int(shard_indices(n, shuffle=True, seed=seed, epoch=0)[position])


def test_divergence_freezes_the_weights_of_the_last_finite_step(digits, tmp_path):
    res = training.train(lenet(), digits, fast(lr=1e8, training_steps="5ep"), device="cpu")
    assert res.status == "diverged" and res.steps < 5 * 23 and len(res.history) == 1
    # A non-finite loss at step 30 (mid-epoch: 90 steps per epoch): no update at that step, nor after.
    hp = fast(training_steps="2ep", batch_size=16, weight_decay=1e-3)
    poisoned = with_poison(digits, poison_at(1437, 1, 30 * 16 + 5))
    model = lenet(2)
    res = training.train(model, poisoned, hp, seed=1, checkpoint_dir=tmp_path, device="cpu")
    assert (res.status, res.steps) == ("diverged", 30) and [h["step"] for h in res.history] == [30]
    assert res.history[-1]["lr"] == hp.lr and 0 < res.history[-1]["train_loss"] < 3
    state = checkpoints.load(tmp_path / "state.pt")
    assert (state["status"], state["step"]) == ("diverged", 30)
    clean = lenet(2)
    training.train(clean, digits, hp.replace(training_steps="30it"), seed=1, device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), clean.parameters()))
    # Resuming a diverged run trains no further.
    again = training.train(lenet(2), poisoned, hp, seed=1, checkpoint_dir=tmp_path, device="cpu")
    assert (again.status, again.steps, again.history) == ("diverged", 30, res.history)


HOST_READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__, torch.Tensor.__float__,
              torch.Tensor.__int__, torch.Tensor.__index__, torch.Tensor.numpy}


class HostReads(torch.overrides.TorchFunctionMode):
    """Counts the tensor values read on the host (each one waits for the device)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += func in HOST_READS
        return func(*args, **(kwargs or {}))


def host_reads(fn) -> int:
    with HostReads() as reads:
        fn()
    return reads.count


def test_no_host_read_per_step(digits):
    # The same two epochs in 23 or 90 steps each: the values read on the host do not depend on the step count
    # (they are read at evaluations only).
    counts = [host_reads(lambda: training.train(lenet(), digits, fast(training_steps="2ep", batch_size=b),
                                                device="cpu")) for b in (64, 16)]
    assert counts[0] == counts[1] < 46


# ---------- data parallel: two real gloo processes ----------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HP_DDP = dict(training_steps="2ep", lr=0.05)


def ddp_digits(poison=None):
    """1280 training examples (20 global batches of 64) in float64: the runs below compare data parallel with one
    process, the same algebra (each global batch's gradient is the mean of its halves' means), to FP64_TOL."""
    ds = data.get("digits", validation=157)
    return in_float64(ds if poison is None else with_poison(ds, poison))


def _ddp_worker(rank, port, out_dir):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        ds = ddp_digits()
        model = lenet(seed=rank).double()  # different on purpose: DDP must start every rank from rank 0's weights
        # Separate directories per rank only to observe who writes; real runs share one directory.
        res = training.train(model, ds, fast(**HP_DDP), seed=1, save_steps=(5,),
                             checkpoint_dir=out_dir / f"ckpt{rank}", device="cpu")
        torch.save({"weights": model.state_dict(), "history": res.history, "status": res.status},
                   out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_data_parallel_two_gloo_processes(tmp_path):
    import torch.multiprocessing as mp
    mp.spawn(_ddp_worker, args=(_free_port(), tmp_path), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2))
    assert r0["status"] == r1["status"] == "completed"
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    assert r0["history"] == r1["history"] and r0["history"][-1]["step"] == 40
    # The two halves of each global batch average to the full-batch gradient: a single process sees the same run.
    single = lenet(seed=0).double()
    res = training.train(single, ddp_digits(), fast(**HP_DDP), seed=1, device="cpu")
    for k, v in single.state_dict().items():
        assert v.dtype == torch.float64 and (v - r0["weights"][k]).abs().max().item() <= FP64_TOL, k
    assert_same_history(r0["history"], res.history)
    assert sorted(os.listdir(tmp_path / "ckpt0")) == ["state.pt", "step_5.pt"]
    assert not (tmp_path / "ckpt1").exists()  # only rank 0 writes


def _ddp_diverge_worker(rank, port, out_dir, poison):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        ds = ddp_digits(poison)
        model = lenet(seed=0).double()
        res = training.train(model, ds, fast(**HP_DDP), seed=1, device="cpu")
        torch.save({"weights": model.state_dict(), "history": res.history, "status": res.status,
                    "steps": res.steps}, out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_data_parallel_ranks_agree_on_divergence(tmp_path):
    # Only rank 1's half of global batch 7 holds the infinite example (rank 1 takes odd positions of the order):
    # rank 0's loss stays finite, yet both ranks stop at step 7 with the weights of step 7, as one process does.
    import torch.multiprocessing as mp
    poison = poison_at(1280, 1, 64 * 7 + 2 * 5 + 1)
    mp.spawn(_ddp_diverge_worker, args=(_free_port(), tmp_path, poison), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2))
    assert (r0["status"], r0["steps"]) == (r1["status"], r1["steps"]) == ("diverged", 7)
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    assert r0["history"] == r1["history"] and [h["step"] for h in r0["history"]] == [7]
    single = lenet(seed=0).double()
    res = training.train(single, ddp_digits(poison), fast(**HP_DDP), seed=1, device="cpu")
    assert (res.status, res.steps) == ("diverged", 7)
    for k, v in single.state_dict().items():
        assert v.dtype == torch.float64 and (v - r0["weights"][k]).abs().max().item() <= FP64_TOL, k
    assert_same_history(r0["history"], res.history)
