"""Backbones: image -> feature vector ``[N, feature_dim]``."""

import paddle
from paddle import nn
from paddle.vision.models import resnet18

from pdfewshot.errors import PdfewshotError

BACKBONES = ("resnet18",)


class ResNet18Trunk(nn.Layer):  # type: ignore[misc]
    """``paddle.vision.models.resnet18`` without its classifier (He et al. 2016), flattened to 512-d.

    For greyscale input the first convolution takes one channel instead of three, which keeps the
    arithmetic of the rest of the network unchanged.
    """

    feature_dim = 512

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.net = resnet18(num_classes=0, with_pool=True)
        if channels != 3:
            self.net.conv1 = nn.Conv2D(channels, 64, kernel_size=7, stride=2, padding=3, bias_attr=False)

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        # resnet18(num_classes=0) returns [N, 512, 1, 1].
        return self.net(images).flatten(1)


def build_backbone(name: str, channels: int) -> nn.Layer:
    """The backbone called ``name`` for ``channels``-channel images."""
    if name == "resnet18":
        return ResNet18Trunk(channels)
    raise PdfewshotError(f"--backbone {name}: unknown, choose from {', '.join(BACKBONES)}")
