"""A study plugin (spec `plugins: [this file]`) for tests that run one study two ways that must compute the same
algebra: packed or alone, one Ray Train worker or two.

`model: lenet_300_100_float64` is LeNet-300-100 computing in float64 from its input on: the two ways then stay
within ~1e-12 of each other (test_packed.FP64_TOL explains the margin) and record the same accuracies and losses
on any machine, where float32 runs drift apart by amounts that depend on the machine's kernels.
`data: digits_1280` is digits with 1280 of its 1437 training examples: 20 whole batches of 64, so that two workers'
halves of every batch are the single process's batch (1437 examples would pad one worker's shard with a repeated
example, and the last batch of each epoch would differ).
"""

import dataclasses

from torch import nn

from raysweep import data
from raysweep.data.dataset import Split
from raysweep.models import registry


class Float64(nn.Module):
    def forward(self, x):
        return x.double()


@registry.register(r"lenet_300_100_float64", ("lenet_300_100_float64",), "LeNet-300-100 computing in float64")
def lenet_300_100_float64(*, num_classes, input_shape):
    return nn.Sequential(Float64(), registry.build("lenet_300_100", num_classes, input_shape)).double()


def _digits_1280(root, download):
    splits = data.spec("digits").read(root, download)
    train = splits["train"]
    return {**splits, "train": Split(train.images[:1280], train.labels[:1280])}


data.register("digits_1280", dataclasses.replace(data.spec("digits"), read=_digits_1280))
