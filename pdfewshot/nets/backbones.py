"""Backbones: image -> feature vector ``[N, feature_dim]``.

- ``resnet18``: ``paddle.vision.models.resnet18`` without its classifier (He et al. 2016), 512-d.
- ``conv4``: four 64-channel conv-BN-ReLU-pool blocks, the backbone of Matching Networks (Vinyals et
  al. 2016) and Prototypical Networks (Snell et al. 2017); for 28-84 px.
- ``koch``: Koch et al. (2015)'s Siamese network for 105x105 Omniglot: conv 64@10x10, 128@7x7,
  128@4x4, 256@4x4 with ReLU and max-pooling, then a 4096-d sigmoid layer.
"""

import paddle
from paddle import nn
from paddle.vision.models import resnet18

from pdfewshot.errors import PdfewshotError

BACKBONES = ("resnet18", "conv4", "koch")
# The smallest input each backbone's pooling leaves at least one pixel of.
MIN_SIZE = {"resnet18": 8, "conv4": 16, "koch": 64}


class ResNet18Trunk(nn.Layer):  # type: ignore[misc]
    """ResNet18 flattened to 512-d; for greyscale input the first convolution takes one channel."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.net = resnet18(num_classes=0, with_pool=True)
        if channels != 3:
            self.net.conv1 = nn.Conv2D(channels, 64, kernel_size=7, stride=2, padding=3, bias_attr=False)
        self.feature_dim = 512

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        # resnet18(num_classes=0) returns [N, 512, 1, 1].
        return self.net(images).flatten(1)


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


def build_backbone(name: str, channels: int, image_size: int = 28) -> nn.Layer:
    """The backbone called ``name`` for ``channels``-channel, ``image_size``-pixel images."""
    if name not in BACKBONES:
        raise PdfewshotError(f"{name}: unknown, choose from {', '.join(BACKBONES)}", "backbone")
    if image_size < MIN_SIZE[name]:
        raise PdfewshotError(f"{image_size}: the {name} backbone needs at least {MIN_SIZE[name]}", "image_size")
    if name == "resnet18":
        return ResNet18Trunk(channels)
    if name == "conv4":
        return Conv4(channels, image_size)
    return KochNet(channels, image_size)
