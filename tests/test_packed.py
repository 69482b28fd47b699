"""raysweep.training.train_packed: each member of a pack ends as the same trial trained alone by train()."""

import shutil

import pytest
import torch
from torch import nn

from raysweep import data, models, training
from raysweep.data.dataset import Split, TensorDataSet
from raysweep.data.sharding import shard_indices
from raysweep.data.tensor_pipeline import Augmentation
from raysweep.training import Member, checkpoints, train_packed
from raysweep.training.precision import LossScaler
from test_training import SmallConvNet, host_reads, in_float64, one_thread, random_masks, with_poison  # noqa: F401

# Packing changes which kernels compute a step and in what order they sum, never the algebra: in float64 (unit
# roundoff 1.1e-16) the runs compared below end within 1e-14 of each other after 200 steps. 1e-10 leaves room for the
# training to amplify rounding a million-fold (in float32 these learning rates amplify a 1e-7 perturbation at most
# ~1e4-fold) while anything that changes the algebra (a mask, a member's data order or augmentation, its momentum,
# learning rate or BatchNorm statistics) moves the weights by 1e-4 or more.
FP64_TOL = 1e-10
U32 = 2.0 ** -24  # float32 unit roundoff: a rounded operation is within U32 relative of its exact result


@pytest.fixture(scope="module")
def digits():
    return data.get("digits")


def tiny_cifar(n_train=256, n_test=48, size=8, seed=0):
    """CIFAR-shaped random images with the CIFAR augmentation (shifts and flips, drawn per member seed)."""
    g = torch.Generator().manual_seed(seed)
    split = {"train": Split(torch.randint(0, 256, (n_train, 3, size, size), generator=g, dtype=torch.uint8),
                            torch.randint(0, 10, (n_train,), generator=g)),
             "test": Split(torch.randint(0, 256, (n_test, 3, size, size), generator=g, dtype=torch.uint8),
                           torch.randint(0, 10, (n_test,), generator=g))}
    return TensorDataSet("tiny-cifar", split, num_classes=10, scale=255.0, mean=(0.5,) * 3, std=(0.25,) * 3,
                         augmentation=Augmentation(shift=2, flip=True))


# 200 steps cross several epochs. At larger learning rates LeNet-5 and the BatchNorm ResNet amplify a 1e-7 relative
# perturbation of their initial weights to 1e-5..1e-1 within 200 steps, which would use up FP64_TOL's margin too.
MODELS = {  # model -> (hparams changes, data augmentation, mask densities of members 1 and 2)
    "lenet_300_100": (dict(batch_size=64, lr=0.05), Augmentation(), (0.3, 0.6)),
    "lenet_5": (dict(batch_size=64, lr=0.003), Augmentation(), (0.3, 0.6)),
    # Sparser masks leave single-digit weights in the 1->4 channel first convolution; BatchNorm then divides by
    # a tiny variance and the training itself becomes chaotic.
    "cifar_resnet_8_4": (dict(batch_size=32, lr=0.001, augment=True), Augmentation(shift=1, flip=True), (0.8, 0.5)),
}
SHAPE = (1, 8, 8)


def setup(name, digits, steps, poison=None, dtype=torch.float64, **more):
    changes, augmentation, _ = MODELS[name]
    ds = with_poison(digits, poison, augmentation)
    hp = training.preset("digits").replace(training_steps=steps, lr_drops=("120it",), gamma=0.5, nesterov=True,
                                           weight_decay=1e-3, precision="fp32", **{**changes, **more})
    return SHAPE, (in_float64(ds) if dtype == torch.float64 else ds), hp


def make(name, shape, seed, density, dtype=torch.float64):
    model = models.create(name, num_classes=10, input_shape=shape, seed=seed)
    return model.to(dtype), (random_masks(model, density, seed) if density else None)


def state_diff(a: nn.Module, b: nn.Module) -> float:
    """max |a - b| over parameters and buffers (BatchNorm statistics included); NaN where both are NaN is equal."""
    worst = 0.0
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        x, y = x.double(), y.double()
        both_nan = x.isnan() & y.isnan()
        assert torch.equal(x.isnan(), y.isnan()), k
        worst = max(worst, (x - y).abs().masked_fill(both_nan, 0).max().item() if x.numel() else 0.0)
    return worst


def assert_same_run(single, packed):
    """The same records; losses to FP64_TOL, relative (float64 runs)."""
    assert (packed.status, packed.steps) == (single.status, single.steps)
    assert [(h["step"], h["epoch"], h["lr"]) for h in packed.history] == \
        [(h["step"], h["epoch"], h["lr"]) for h in single.history]
    assert [h["accuracy"] for h in packed.history] == [h["accuracy"] for h in single.history]
    for key in ("loss", "train_loss"):
        assert [h[key] for h in packed.history] == pytest.approx([h[key] for h in single.history], rel=FP64_TOL,
                                                                 nan_ok=True)


def run_both(name, shape, ds, hp, specs, dtype=torch.float64, **kw):
    """specs: (seed, mask density or None). Trains each alone and all as one pack; returns both and the diffs."""
    singles, members = [], []
    for seed, density in specs:
        model, masks = make(name, shape, seed, density, dtype)
        singles.append((model, training.train(model, ds, hp, masks, seed=seed, device="cpu", **kw)))
        model, masks = make(name, shape, seed, density, dtype)
        members.append(Member(model, masks, seed=seed))
    packed = train_packed(members, ds, hp, device="cpu", **kw)
    diffs = [state_diff(m, p.model) for (m, _), p in zip(singles, members)]
    return singles, members, packed, diffs


@pytest.mark.parametrize("name", list(MODELS))
def test_members_end_as_their_single_runs(name, digits):
    shape, ds, hp = setup(name, digits, "200it")
    specs = [(0, None), (1, MODELS[name][2][0]), (2, MODELS[name][2][1])]  # a dense run and two masks
    singles, members, packed, diffs = run_both(name, shape, ds, hp, specs)
    print(f"\n{name}, float64: max |diff| after 200 steps per member: {['%.2e' % d for d in diffs]}")
    assert all(p.dtype == torch.float64 for p in members[0].model.parameters())
    assert max(diffs) <= FP64_TOL
    for (_, single), member, res in zip(singles, members, packed):
        assert res.status == "completed" and res.steps == 200
        assert_same_run(single, res)
        for n, m in (member.masks or {}).items():  # pruned weights stayed exactly zero
            assert torch.count_nonzero(dict(member.model.named_parameters())[n][~m]) == 0
    # Members really differ: a pack is not K copies of one run.
    assert state_diff(members[0].model, members[1].model) > 1e-2


def one_step_bound(before: nn.Module, after: nn.Module, relative: float) -> dict:
    """Per floating state_dict entry, how far two computations of one training step from `before` (float32 weights)
    may end apart when their gradients and batch statistics are `relative` apart, relative to the update they
    make: packed and single, or NHWC and NCHW.

    Both start from the same bits and apply the same elementwise operations per element (weight decay, momentum,
    Nesterov, learning rate, mask, the running-statistics update), each of which may round to a neighbouring float
    (2 * U32 relative) once its inputs differ at all: 5 roundings of the update (weight decay product and sum,
    momentum product and sum, learning rate product), and of the new value itself 2 ulps (4 * U32 relative)."""
    old = before.state_dict()
    return {k: 4 * U32 * v.abs().max().item() + (relative + 10 * U32) * (v - old[k]).abs().max().item()
            for k, v in after.state_dict().items() if v.is_floating_point() and v.numel()}


def layers(model: nn.Module) -> int:
    return sum(1 for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.BatchNorm2d)))


def sum_order_bound(model: nn.Module, batch: int, shape) -> float:
    """How far apart, relatively, two float32 computations of a step's gradients and batch statistics may be when
    their kernels sum in different orders. They come out of a chain of sums, one per layer forward and one backward,
    each over at most batch x pixels terms (the batch and the positions; no fan-in of these nets is larger): n terms
    in all, summed in any order within n * U32 of the exact value relative to the terms' size, which at a first
    step from initialisation is the update's. Two orders are then 2 * n * U32 apart."""
    n = 2 * layers(model) * batch * shape[-1] * shape[-2]
    return 2 * n * U32


def first_step(name, shape, seed, density):
    """The masked initial weights a first step starts from."""
    model, masks = make(name, shape, seed, density, torch.float32)
    with torch.no_grad():
        for n, m in (masks or {}).items():
            dict(model.named_parameters())[n].mul_(m)
    return model


def assert_within(bound: dict, a: nn.Module, b: nn.Module):
    other = b.state_dict()
    for k, v in a.state_dict().items():
        if k in bound:
            assert (v - other[k]).abs().max().item() <= bound[k], k
        else:
            assert torch.equal(v, other[k]), k


@pytest.mark.parametrize("name", list(MODELS))
def test_one_float32_step_of_a_member_is_its_single_runs(name, digits):
    # float32, the precision sweeps train in: one step, where the difference between a packed and a single
    # computation is bounded by the arithmetic (one_step_bound), not by how a trajectory amplifies it.
    shape, ds, hp = setup(name, digits, "1it", dtype=torch.float32)
    specs = [(0, None), (1, MODELS[name][2][0]), (2, MODELS[name][2][1])]
    singles, members, packed, diffs = run_both(name, shape, ds, hp, specs, dtype=torch.float32)
    print(f"\n{name}, float32: max |diff| after 1 step per member: {['%.2e' % d for d in diffs]}")
    for (seed, density), (single, _), member in zip(specs, singles, members):
        before = first_step(name, shape, seed, density)
        assert all(p.dtype == torch.float32 for p in member.model.parameters())
        assert_within(one_step_bound(before, single, sum_order_bound(before, hp.batch_size, shape)), single,
                      member.model)


def _late_and_early_poison(n, batch, horizon, survivors, diverger):
    """A training example that the survivors' first epoch reaches only after `horizon` steps and the diverger's at
    a step in the middle of the run."""
    for index in range(n):
        step = {s: int((shard_indices(n, shuffle=True, seed=s, epoch=0) == index).nonzero()) // batch
                for s in (*survivors, diverger)}
        if all(step[s] >= horizon for s in survivors) and horizon // 4 <= step[diverger] <= horizon // 2:
            return index, step[diverger]
    raise AssertionError("no suitable example")


@pytest.mark.parametrize("name", list(MODELS))
def test_a_diverging_member_is_frozen_and_the_others_untouched(name, digits):
    batch = 8
    n = digits.size("train")
    horizon = min(60, n // batch // 2)  # within the first epoch, where the poisoned example is met once
    poison, at = _late_and_early_poison(n, batch, horizon, survivors=(0, 1), diverger=3)
    shape, ds, hp = setup(name, digits, f"{horizon}it", poison=poison, batch_size=batch)
    singles, members, packed, diffs = run_both(name, shape, ds, hp, [(0, None), (1, MODELS[name][2][0]), (3, 0.5)])
    print(f"\n{name}: member 3 diverges at step {at}; max |diff| per member: {['%.2e' % d for d in diffs]}")
    assert [r.status for r in packed] == ["completed", "completed", "diverged"]
    assert packed[2].steps == at and len(packed[2].history) == 1 and packed[2].history[0]["step"] == at
    assert max(diffs) <= FP64_TOL
    for (_, single), res in zip(singles, packed):
        assert_same_run(single, res)
    # Frozen at the last finite step: the same weights as the run trained for exactly `at` steps.
    _, clean, short = setup(name, digits, f"{at}it", batch_size=batch)
    model, masks = make(name, shape, 3, 0.5)
    training.train(model, clean, short, masks, seed=3, device="cpu")
    params = lambda m: nn.utils.parameters_to_vector(m.parameters())  # noqa: E731
    assert (params(model) - params(members[2].model)).abs().max() <= FP64_TOL


def test_batchnorm_statistics_are_the_modules_own(digits):
    # lr = 0 keeps the weights at their initial values, so after each step every member's running statistics can
    # be compared with nn.BatchNorm2d's update on that member's own batches.
    ds = in_float64(tiny_cifar(size=8))
    hp = training.preset("digits").replace(training_steps="3it", batch_size=16, augment=True, lr=0.0,
                                           precision="fp32")
    net = lambda s: models.create("cifar_resnet_8_4", input_shape=(3, 8, 8), seed=s).double()  # noqa: E731
    members = [Member(net(s), seed=s) for s in (0, 1)]
    reference = [net(s).train() for s in (0, 1)]
    train_packed(members, ds, hp, device="cpu")
    for ref, member in zip(reference, members):
        loader = ds.loader("train", 16, shuffle=True, augment=True, seed=member.seed)
        loader.set_epoch(0)
        with torch.no_grad():
            for _, (x, _) in zip(range(3), loader):
                ref(x)
        for (k, a), b in zip(ref.state_dict().items(), member.model.state_dict().values()):
            assert torch.allclose(a.double(), b.double(), rtol=0, atol=FP64_TOL), k
        assert member.model.bn.num_batches_tracked.item() == 3
        assert member.model.bn.running_mean.abs().min() > 0


def crash_members(seeds, crash_at=None):
    out = []
    for s in seeds:
        model = models.initialize(SmallConvNet(), s).double()
        model.crash_at_forward = crash_at  # every member alike: a pack holds one architecture
        out.append(model)
    return out


def test_interrupted_pack_resumes_in_any_packing(digits, tmp_path):
    digits = in_float64(digits)
    hp = training.preset("digits").replace(training_steps="4ep", lr=0.01, weight_decay=1e-3, nesterov=True,
                                           precision="fp32")
    seeds, save, crash = (0, 1, 2), 30, 40
    masks = [None, random_masks(SmallConvNet(), 0.5, 1), random_masks(SmallConvNet(), 0.3, 2)]

    def members(models_, root):
        return [Member(m, k, seed=s, checkpoint_dir=root / f"m{s}") for m, k, s in zip(models_, masks, seeds)]

    whole = members(crash_members(seeds), tmp_path / "whole")
    reference = train_packed(whole, digits, hp, save_steps=(save,), device="cpu")
    interrupted = members(crash_members(seeds, crash_at=crash), tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        train_packed(interrupted, digits, hp, save_steps=(save,), device="cpu")
    for s in seeds:
        assert checkpoints.load(tmp_path / "cut" / f"m{s}" / "state.pt")["step"] == save
    shutil.copytree(tmp_path / "cut", tmp_path / "regrouped")

    # The same pack again: bit-identical to the uninterrupted one.
    again = members(crash_members(seeds), tmp_path / "cut")
    resumed = train_packed(again, digits, hp, save_steps=(save,), device="cpu")
    for ref, res, a, b in zip(reference, resumed, whole, again):
        assert res.history == ref.history
        assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
        assert res.checkpoints == {save: str(b.checkpoint_dir / f"step_{save}.pt")}

    # Regrouped: member 0 alone with train(), members 1 and 2 as a pack of two.
    regrouped = members(crash_members(seeds), tmp_path / "regrouped")
    alone = training.train(regrouped[0].model, digits, hp, masks[0], seed=0, save_steps=(save,),
                           checkpoint_dir=regrouped[0].checkpoint_dir, device="cpu")
    pair = train_packed(regrouped[1:], digits, hp, save_steps=(save,), device="cpu")
    for ref, res, a, b in zip(reference, [alone, *pair], whole, regrouped):
        assert_same_run(ref, res)
        assert state_diff(a.model, b.model) <= FP64_TOL

    # A finished pack trains no further when run again.
    rerun = train_packed(members(crash_members(seeds), tmp_path / "whole"), digits, hp, save_steps=(save,),
                         device="cpu")
    assert [r.history for r in rerun] == [r.history for r in reference]


def test_members_resume_at_different_steps(digits, tmp_path):
    digits = in_float64(digits)
    # Member 0 resumes a single run's state at step 30, member 1 starts fresh, member 2 starts at step 10 of the
    # schedule: the laggards train as smaller packs until they catch up, and each ends as its single run.
    hp = training.preset("digits").replace(training_steps="3ep", lr=0.01, nesterov=True, precision="fp32")
    seeds = (0, 1, 2)
    starts = {0: 0, 1: 0, 2: 10}
    masks = {s: random_masks(SmallConvNet(), 0.5, s) for s in seeds}
    singles = {}
    for s in seeds:
        model = crash_members([s])[0]
        singles[s] = (model, training.train(model, digits, hp, masks[s], seed=s, start_step=starts[s],
                                            device="cpu"))
    cut = crash_members([0], crash_at=35)[0]
    with pytest.raises(KeyboardInterrupt):
        training.train(cut, digits, hp, masks[0], seed=0, save_steps=(30,), checkpoint_dir=tmp_path / "m0",
                       device="cpu")
    evals = []
    members = [Member(m, masks[s], seed=s, start_step=starts[s], checkpoint_dir=tmp_path / f"m{s}")
               for s, m in zip(seeds, crash_members(seeds))]
    packed = train_packed(members, digits, hp, save_steps=(30,), device="cpu",
                          on_eval=lambda i, step, m: evals.append((i, step)))
    for s, member, res in zip(seeds, members, packed):
        model, single = singles[s]
        assert_same_run(single, res)
        assert state_diff(model, member.model) <= FP64_TOL
        assert (tmp_path / f"m{s}" / "step_30.pt").exists()
    # Member 0 resumed after step 30, so it reports the evaluations of epochs 2 and 3 only.
    assert sorted(evals) == sorted([(0, 46), (0, 69), (1, 23), (1, 46), (1, 69), (2, 23), (2, 46), (2, 69)])
    # The step_30 weights a pack member wrote are the single run's.
    full = crash_members([1])[0]
    training.train(full, digits, hp, masks[1], seed=1, save_steps=(30,), checkpoint_dir=tmp_path / "single1",
                   device="cpu")
    a, b = training.load_weights(tmp_path / "single1" / "step_30.pt"), training.load_weights(tmp_path / "m1" /
                                                                                             "step_30.pt")
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= FP64_TOL


def test_bad_packs_are_rejected(digits, tmp_path):
    hp = training.preset("digits").replace(training_steps="2ep")
    lenet = lambda s=0: models.create("lenet_300_100", num_classes=10, input_shape=(1, 8, 8), seed=s)  # noqa: E731
    with pytest.raises(ValueError, match="member 1's model differs"):
        train_packed([Member(lenet()), Member(models.create("lenet_5", input_shape=(1, 8, 8)))], digits, hp,
                     device="cpu")
    stable = models.create("stable_resnet_8", input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match="differs"):  # same parameters, another residual scale
        train_packed([Member(models.create("cifar_resnet_8", input_shape=(3, 8, 8))), Member(stable)],
                     tiny_cifar(), hp, device="cpu")
    with pytest.raises(ValueError, match="Dropout"):
        train_packed([Member(nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10)))], digits, hp,
                     device="cpu")
    with pytest.raises(ValueError, match="share a checkpoint_dir"):
        train_packed([Member(lenet(), checkpoint_dir=tmp_path), Member(lenet(1), checkpoint_dir=tmp_path)],
                     digits, hp, device="cpu")
    with pytest.raises(ValueError, match="member 1: start_step 99"):
        train_packed([Member(lenet()), Member(lenet(1), start_step=99)], digits, hp, device="cpu")
    with pytest.raises(ValueError, match="member 0: save_steps given without a checkpoint_dir"):
        train_packed([Member(lenet())], digits, hp, save_steps=(3,), device="cpu")
    with pytest.raises(KeyError, match="nonexistent"):
        train_packed([Member(lenet(), {"nonexistent": torch.ones(3, dtype=torch.bool)})], digits, hp, device="cpu")
    with pytest.raises(ValueError, match="at least one"):
        train_packed([], digits, hp, device="cpu")
    with pytest.raises(ValueError, match="precision"):
        hp.replace(precision="fp16")


def test_bf16_and_channels_last_on_cpu():
    # Width 16: torch 2.14's CPU backward of a channels_last 1x1 stride-2 convolution with fewer than 8 input
    # channels (width-4 ResNet shortcuts) corrupts the heap.
    net, shape, ds = "cifar_resnet_8", (3, 8, 8), tiny_cifar()
    hp = training.preset("digits").replace(training_steps="20it", batch_size=16, augment=True, lr=0.01,
                                           precision="fp32")
    specs = [(0, 0.5), (1, None)]
    # channels_last changes only the memory layout, the algebra not at all: float64 runs, single and packed, agree.
    ds64 = in_float64(ds)
    nchw = []
    for seed, density in specs:
        model, masks = make(net, shape, seed, density)
        training.train(model, ds64, hp, masks, seed=seed, device="cpu")
        nchw.append(model)
    singles, members, _, _ = run_both(net, shape, ds64, hp.replace(channels_last=True), specs)
    assert members[0].model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    for ref, (single, _), member in zip(nchw, singles, members):
        assert single.conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert state_diff(ref, single) <= FP64_TOL and state_diff(ref, member.model) <= FP64_TOL

    # bf16 autocast: every convolution and linear layer of a training step computes in bfloat16, packed as alone
    # (vmap's convolution rule runs below autocast, so a pack must cast for it), and one step of each member
    # (channels_last too) ends as its single run's within the arithmetic's bound.
    low = hp.replace(precision="bf16", channels_last=True, training_steps="1it")
    dtypes = []

    def record(module, inputs, out):
        if module.training:
            dtypes.append((type(module).__name__, out.dtype))

    def make_recorded(*args):
        model, masks = make(*args)
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.register_forward_hook(record)  # train_packed's functional copy of member 0 keeps the hooks
        return model, masks

    singles, members = [], []
    for seed, density in specs:
        model, masks = make_recorded(net, shape, seed, density, torch.float32)
        training.train(model, ds, low, masks, seed=seed, device="cpu")
        singles.append(model)
        members.append(Member(*make_recorded(net, shape, seed, density, torch.float32), seed=seed))
    lowered = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in singles[0].modules())
    assert len(dtypes) == 2 * lowered
    packed = train_packed(members, ds, low, device="cpu")
    assert len(dtypes) == 3 * lowered  # one vmapped pass for both members
    assert [(i, n) for i, (n, d) in enumerate(dtypes) if d != torch.bfloat16] == []
    # Beyond float32's reordering, each of the step's bfloat16 roundings (per layer: its output forward, the gradients
    # of its input and of its weight backward) may round the two computations to neighbouring bfloat16 values: one
    # bfloat16 ulp, 2 ** -8 relative.
    for (seed, density), single, member, res in zip(specs, singles, members, packed):
        before = first_step(net, shape, seed, density)
        relative = sum_order_bound(before, low.batch_size, shape) + 3 * layers(before) * 2.0 ** -8
        assert res.status == "completed"
        assert_within(one_step_bound(before, single, relative), single, member.model)


def test_compiled_pack_matches_eager(digits):
    # torch.compile (inductor, CPU) of the packed step: 20 steps stay within the first epoch, so one graph is
    # compiled (a short last batch would compile a second).
    shape, ds, hp = setup("lenet_300_100", digits, "20it")
    specs = [(0, None), (1, 0.5)]
    _, eager, eager_results, _ = run_both("lenet_300_100", shape, ds, hp, specs)
    members = [Member(*make("lenet_300_100", shape, s, d), seed=s) for s, d in specs]
    compiled = train_packed(members, ds, hp, device="cpu", compile=True)
    diffs = [state_diff(m.model, e.model) for m, e in zip(members, eager)]
    print(f"\ncompiled vs eager pack, 20 steps: max |diff| {['%.2e' % d for d in diffs]}")
    assert max(diffs) <= FP64_TOL
    for eager_result, result in zip(eager_results, compiled):
        assert_same_run(eager_result, result)


def test_loss_scaler_matches_grad_scaler():
    # LossScaler is GradScaler's arithmetic on the device; compare them step by step through an overflow and a
    # growth, for one run and for a stack of two.
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    reference = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=2)
    ours = LossScaler((), init_scale=8.0, growth_interval=2)
    stacked = LossScaler((2,), init_scale=8.0, growth_interval=2)
    for step, poison in enumerate([False, False, True, False, False, False]):
        opt.zero_grad()
        reference.scale(model(torch.ones(1, 4)).sum()).backward()
        if poison:
            model.weight.grad[0, 0] = float("inf")
        grads = [model.weight.grad.clone(), model.bias.grad.clone()]
        found = ours.unscale_(grads)
        reference.step(opt)
        reference.update()
        ours.update(found, torch.tensor(True))
        assert ours.state_dict() == reference.state_dict(), step
        assert found.item() == poison
        # member 1 of the stack sees the same gradients; member 0 sees clean ones and is inactive on poisoned steps
        pair = [torch.stack([g.nan_to_num(posinf=0.0), g]) * stacked.scale.view(2, *[1] * g.dim()) for g in grads]
        found2 = stacked.unscale_(pair)
        stacked.update(found2, torch.tensor([not poison, True]))
        assert stacked.state_dict(1) == reference.state_dict()
        assert found2.tolist() == [False, poison]
    assert reference.get_scale() == 16.0 and stacked.state_dict(0)["scale"] == 32.0  # member 0 skipped a backoff


def test_no_host_read_per_step(digits):
    # As train(): the same two epochs in 23 or 90 steps each read the same values on the host.
    def pack(batch):
        members = [Member(models.create("lenet_300_100", input_shape=SHAPE, seed=s), seed=s) for s in range(3)]
        train_packed(members, digits, training.preset("digits").replace(training_steps="2ep", batch_size=batch),
                     device="cpu")
    counts = [host_reads(lambda: pack(b)) for b in (64, 16)]
    assert counts[0] == counts[1] < 180


def test_members_share_one_resident_copy_of_the_data(digits):
    ds = tiny_cifar()
    hp = training.preset("digits").replace(training_steps="2it", batch_size=16, augment=True)
    members = [Member(models.create("cifar_resnet_8_4", input_shape=(3, 8, 8), seed=s), seed=s) for s in range(3)]
    train_packed(members, ds, hp, device="cpu")
    assert sorted(ds._resident) == [("test", "cpu"), ("train", "cpu")]
    resident = ds._on("train", "cpu").images
    assert ds.loader("train", 16, shuffle=True, seed=5).images.data_ptr() == resident.data_ptr()
