"""Training hyperparameters and the papers' settings as named presets."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace


def _f(default, help):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainHparams:
    batch_size: int = _f(128, "global mini-batch size (split evenly across data-parallel ranks)")
    lr: float = _f(0.1, "initial SGD learning rate")
    momentum: float = _f(0.9, "SGD momentum")
    nesterov: bool = _f(False, "use Nesterov momentum")
    weight_decay: float = _f(1e-4, "L2 weight decay added to the gradient by SGD")
    training_steps: str = _f("160ep", "length of training: 'Nep' epochs or 'Nit' iterations")
    lr_drops: tuple = _f(("80ep", "120ep"), "steps ('Nep'/'Nit') at which the learning rate is multiplied by gamma")
    gamma: float = _f(0.1, "learning-rate multiplier applied at each drop")
    warmup_steps: str = _f("0it", "linear learning-rate warmup from 0 over this many steps ('Nep'/'Nit')")
    augment: bool = _f(True, "apply the data set's training augmentation (Frankle A.2)")
    rewind_step: str = _f("0it", "the paper's lottery-ticket rewinding point ('Nep'/'Nit'); dense runs save it")
    precision: str = _f("amp", "'amp': float16 autocast with loss scaling on CUDA, float32 elsewhere; 'fp32': "
                               "float32 everywhere; 'bf16': bfloat16 autocast on any device")
    channels_last: bool = _f(False, "store images and convolution weights as NHWC (channels_last)")
    eval_batch_size: int = _f(1000, "batch size of evaluation passes")

    def __post_init__(self):
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {self.batch_size} and {self.eval_batch_size}")
        if self.lr < 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"invalid lr={self.lr}, weight_decay={self.weight_decay} or momentum={self.momentum}")
        from .precision import PRECISIONS
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if isinstance(self.lr_drops, list):
            object.__setattr__(self, "lr_drops", tuple(self.lr_drops))
        from .schedule import parse_steps
        for v in (self.training_steps, self.warmup_steps, self.rewind_step, *self.lr_drops):
            parse_steps(v, steps_per_epoch=1)

    def replace(self, **changes) -> "TrainHparams":
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise KeyError(f"unknown TrainHparams fields {sorted(unknown)}")
        return replace(self, **changes)


def _p(**kw) -> TrainHparams:
    return TrainHparams(**kw)


_PRESETS = {
    # Frankle et al. 2021, Appendix A.3 (all SGD, momentum 0.9, Kaiming normal); rewind iterations from A.3/App. B.
    "frankle_cifar_resnet20": _p(batch_size=128, lr=0.1, weight_decay=1e-4, training_steps="160ep",
                                 lr_drops=("80ep", "120ep"), rewind_step="1000it"),
    "frankle_cifar_vgg16": _p(batch_size=128, lr=0.1, weight_decay=1e-4, training_steps="160ep",
                              lr_drops=("80ep", "120ep"), rewind_step="2000it"),
    "frankle_tinyimagenet_resnet18": _p(batch_size=256, lr=0.2, weight_decay=1e-4, training_steps="200ep",
                                        lr_drops=("100ep", "150ep"), rewind_step="1000it"),
    # Appendix B's text uses t=6000; the A.3 table lists 6255 (5 epochs of 1251 iterations).
    "frankle_imagenet_resnet50": _p(batch_size=1024, lr=0.4, weight_decay=1e-4, training_steps="90ep",
                                    lr_drops=("30ep", "60ep", "80ep"), rewind_step="6000it"),
    # Vysogorets & Kempe, Appendix A Table 1 (SGD momentum 0.9, 10x drops).
    "vysogorets_mnist_lenet300": _p(batch_size=100, lr=0.1, weight_decay=5e-4, training_steps="160ep",
                                    lr_drops=("41ep", "83ep", "125ep")),
    "vysogorets_cifar_lenet5": _p(batch_size=128, lr=0.1, weight_decay=5e-4, training_steps="307ep",
                                  lr_drops=("76ep", "153ep", "230ep")),
    "vysogorets_cifar_vgg16": _p(batch_size=128, lr=0.1, weight_decay=1e-4, training_steps="160ep",
                                 lr_drops=("80ep", "120ep")),
    "vysogorets_cifar100_vgg19": _p(batch_size=128, lr=0.1, weight_decay=5e-4, training_steps="160ep",
                                    lr_drops=("80ep", "120ep")),
    "vysogorets_tinyimagenet_resnet18": _p(batch_size=256, lr=0.2, weight_decay=1e-4, training_steps="200ep",
                                           lr_drops=("100ep", "150ep")),
    "vysogorets_imagenet_resnet50": _p(batch_size=512, lr=0.4, weight_decay=1e-4, training_steps="90ep",
                                       lr_drops=("30ep", "60ep", "80ep")),
    "vysogorets_imagenet_mobilenetv2": _p(batch_size=512, lr=0.4, weight_decay=1e-4, training_steps="90ep",
                                          lr_drops=("30ep", "60ep", "80ep")),
    # Liu et al. 2022, Table 1: CIFAR-10/100 ResNets and VGGs (dense and sparse alike), ImageNet (Wide) ResNets
    # with batch 192 x 4 GPUs.
    "liu_cifar": _p(batch_size=128, lr=0.1, weight_decay=5e-4, training_steps="160ep", lr_drops=("80ep", "120ep")),
    "liu_imagenet_dense": _p(batch_size=768, lr=0.4, weight_decay=1e-4, training_steps="90ep",
                             lr_drops=("30ep", "60ep", "80ep")),
    "liu_imagenet_sparse": _p(batch_size=768, lr=0.4, weight_decay=1e-4, training_steps="100ep",
                              lr_drops=("30ep", "60ep", "90ep")),
    # Embedded default: LeNet-300-100 on scikit-learn's digits trains in seconds on a CPU.
    "digits": _p(batch_size=64, lr=0.05, weight_decay=5e-4, training_steps="20ep", lr_drops=("10ep", "15ep"),
                 augment=False, eval_batch_size=1000),
}


def presets() -> list[str]:
    return list(_PRESETS)


def preset(name: str) -> TrainHparams:
    if name not in _PRESETS:
        raise KeyError(f"unknown training preset {name!r}; known: {presets()}")
    return _PRESETS[name]
