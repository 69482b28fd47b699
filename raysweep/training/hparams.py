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
    augment: bool | str = _f(True, "training augmentation: True (the data set's own, Frankle A.2), False (none) or "
                                   "a name of raysweep.data.augmentations() (a paper's own choice)")
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
        from ..data.tensor_pipeline import augmentation
        augmentation(self.augment, None)   # raises on an unknown name
        from .schedule import parse_steps
        for v in (self.training_steps, self.warmup_steps, self.rewind_step, *self.lr_drops):
            parse_steps(v, steps_per_epoch=1)
        if parse_steps(self.training_steps, steps_per_epoch=1) == 0:
            raise ValueError(f"training_steps={self.training_steps!r} trains for no step")

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
    # Frankle et al. Appendix F, Table 7: the modified ResNet-18 on CIFAR-10 with "lr=0.2, batch size=256, drop
    # factor=0.1" (94.6%) or with Tanaka et al.'s "lr=0.01, batch size=128, drop factor=0.2" (93.7%), and on
    # TinyImageNet with Tanaka et al.'s "lr=0.01, batch size=128, epochs=100" (58.8%; the modified settings are
    # frankle_tinyimagenet_resnet18). What the text leaves out is Appendix A's: 160 CIFAR-10 epochs with drops at
    # 80 and 120, TinyImageNet drops at 1/2 and 3/4 of training, weight decay 1e-4.
    "frankle_cifar_modified_resnet18": _p(batch_size=256, lr=0.2, weight_decay=1e-4, training_steps="160ep",
                                          lr_drops=("80ep", "120ep")),
    "tanaka_cifar_modified_resnet18": _p(batch_size=128, lr=0.01, weight_decay=1e-4, training_steps="160ep",
                                         lr_drops=("80ep", "120ep"), gamma=0.2),
    "tanaka_tinyimagenet_modified_resnet18": _p(batch_size=128, lr=0.01, weight_decay=1e-4, training_steps="100ep",
                                                lr_drops=("50ep", "75ep")),
    # Vysogorets & Kempe, Appendix A Table 1 (SGD momentum 0.9, 10x drops). Augmentation (Appendix A): "shifts by at
    # most 4 pixels in any direction and horizontal flips (CIFAR-10, CIFAR-100, and TinyImageNet), (ii) rotations by
    # up to 4 degrees (MNIST), and (iii) random 224 x 224 crops and horizontal flips (ImageNet)".
    "vysogorets_mnist_lenet300": _p(batch_size=100, lr=0.1, weight_decay=5e-4, training_steps="160ep",
                                    lr_drops=("41ep", "83ep", "125ep"), augment="rotate4"),
    "vysogorets_cifar_lenet5": _p(batch_size=128, lr=0.1, weight_decay=5e-4, training_steps="307ep",
                                  lr_drops=("76ep", "153ep", "230ep"), augment="shift4_flip"),
    "vysogorets_cifar_vgg16": _p(batch_size=128, lr=0.1, weight_decay=1e-4, training_steps="160ep",
                                 lr_drops=("80ep", "120ep"), augment="shift4_flip"),
    "vysogorets_cifar100_vgg19": _p(batch_size=128, lr=0.1, weight_decay=5e-4, training_steps="160ep",
                                    lr_drops=("80ep", "120ep"), augment="shift4_flip"),
    "vysogorets_tinyimagenet_resnet18": _p(batch_size=256, lr=0.2, weight_decay=1e-4, training_steps="200ep",
                                           lr_drops=("100ep", "150ep"), augment="shift4_flip"),
    "vysogorets_imagenet_resnet50": _p(batch_size=512, lr=0.4, weight_decay=1e-4, training_steps="90ep",
                                       lr_drops=("30ep", "60ep", "80ep"), augment="random_crop_flip"),
    "vysogorets_imagenet_mobilenetv2": _p(batch_size=512, lr=0.4, weight_decay=1e-4, training_steps="90ep",
                                          lr_drops=("30ep", "60ep", "80ep"), augment="random_crop_flip"),
    # Liu et al. 2022, Table 1: CIFAR-10/100 ResNets and VGGs (dense and sparse alike), ImageNet (Wide) ResNets
    # with batch 192 x 4 GPUs.
    "liu_cifar": _p(batch_size=128, lr=0.1, weight_decay=5e-4, training_steps="160ep", lr_drops=("80ep", "120ep")),
    "liu_imagenet_dense": _p(batch_size=768, lr=0.4, weight_decay=1e-4, training_steps="90ep",
                             lr_drops=("30ep", "60ep", "80ep")),
    "liu_imagenet_sparse": _p(batch_size=768, lr=0.4, weight_decay=1e-4, training_steps="100ep",
                              lr_drops=("30ep", "60ep", "90ep")),
    # Wang et al.'s GraSP code (github.com/alecwangcq/GraSP, configs/*/resnet32|vgg19/GraSP_*.json and
    # main_prune_non_imagenet.py: SGD momentum 0.9, 10x drops at 1/2 and 3/4 of training). Hayou et al.'s tables
    # give no hyperparameters; their unpruned ResNet32 (94.80) is Wang et al.'s, so their CIFAR and TinyImageNet
    # tables train with these. Frankle et al. replicate VGG-19 and WRN-32-2 "with the hyperparameters of the GraSP
    # implementation" (Appendix E).
    "wang_cifar_resnet": _p(batch_size=128, lr=0.1, weight_decay=1e-4, training_steps="160ep",
                            lr_drops=("80ep", "120ep")),
    "wang_cifar_vgg": _p(batch_size=128, lr=0.1, weight_decay=5e-4, training_steps="160ep",
                         lr_drops=("80ep", "120ep")),
    "wang_tinyimagenet_resnet": _p(batch_size=128, lr=0.1, weight_decay=1e-4, training_steps="300ep",
                                   lr_drops=("150ep", "225ep")),
    # Our choices where Hayou et al. give nothing and GraSP has no such network. VGGs without BatchNorm (their
    # Table 5, see experiments/hayou_tables.py): GraSP's VGG schedule, but lr 0.05 after a 5-epoch linear warmup, as
    # a plain 16- or 48-layer network lacks the step-size robustness BatchNorm gives. The V-CNN on MNIST (Table 4):
    # GraSP's MNIST pipeline has no augmentation; 30 epochs of SGD at lr 0.01 with 10x drops at 15 and 25.
    "hayou_cifar_vgg_nobn": _p(batch_size=128, lr=0.05, weight_decay=5e-4, training_steps="160ep",
                               lr_drops=("80ep", "120ep"), warmup_steps="5ep"),
    "hayou_mnist_vcnn": _p(batch_size=128, lr=0.01, weight_decay=5e-4, training_steps="30ep",
                           lr_drops=("15ep", "25ep"), augment=False),
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
