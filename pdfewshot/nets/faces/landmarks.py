"""face-api.js's 68-point face landmarks net: four dense blocks of depthwise-separable convolutions (32, 64, 128
and 256 channels, each halving the size), a 7x7 average pool and a linear layer giving 68 (x, y) points.

Input: a face crop padded to a square with black on both sides, resized to 112 px, its channel means
subtracted and divided by 255. Output: each point relative to the crop (0..1 of its width and height).
"""

from pathlib import Path

import paddle
import paddle.nn.functional as F
from paddle import nn

from pdfewshot.nets.faces.detector import SeparableConv
from pdfewshot.nets.tfjs import Slot, fill_layer, manifest_path, read_manifest

MODEL = "face_landmark_68_model"
INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)
CHANNELS = (32, 64, 128, 256)


class DenseBlock(nn.Layer):  # type: ignore[misc]
    """A stride-2 convolution, then three separable ones, each fed the sum of the outputs before it."""

    def __init__(self, in_channels: int, channels: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.conv0 = (
            nn.Conv2D(in_channels, channels, 3, 2, padding="SAME")
            if first
            else SeparableConv(in_channels, channels, 2, "SAME")
        )
        self.convs = nn.LayerList([SeparableConv(channels, channels, 1, "SAME") for _ in range(3)])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        outputs = [F.relu(self.conv0(x))]
        for conv in self.convs:
            outputs.append(conv(outputs[0] if len(outputs) == 1 else F.relu(paddle.add_n(outputs))))
        return F.relu(paddle.add_n(outputs))

    def slots(self, prefix: str, key: str) -> list[Slot]:
        if self.first:
            slots = [Slot(f"{prefix}/conv0/filters", f"{key}.conv0.weight", "conv"),
                     Slot(f"{prefix}/conv0/bias", f"{key}.conv0.bias")]  # fmt: skip
        else:
            slots = self.conv0.slots(f"{prefix}/conv0", f"{key}.conv0")
        for index, conv in enumerate(self.convs):
            slots += conv.slots(f"{prefix}/conv{index + 1}", f"{key}.convs.{index}")
        return slots


class FaceLandmark68Net(nn.Layer):  # type: ignore[misc]
    """Scaled pixels ``[N, 3, 112, 112]`` -> ``[N, 136]``: x, y of each point in turn, relative to the input."""

    def __init__(self) -> None:
        super().__init__()
        widths = (3, *CHANNELS)
        self.blocks = nn.LayerList([DenseBlock(widths[i], widths[i + 1], i == 0) for i in range(len(CHANNELS))])
        self.fc = nn.Linear(CHANNELS[-1], 136)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.fc(F.avg_pool2d(x, 7, 2).flatten(1))

    def slots(self) -> list[Slot]:
        slots = []
        for index, block in enumerate(self.blocks):
            slots += block.slots(f"dense{index}", f"blocks.{index}")
        return [*slots, Slot("fc/weights", "fc.weight"), Slot("fc/bias", "fc.bias")]


def load_landmarks(net: FaceLandmark68Net, source: str | Path) -> Path:
    """Sets ``net``'s weights from face-api's ``face_landmark_68_model`` (a folder or its manifest)."""
    path = manifest_path(source, MODEL)
    fill_layer(net, read_manifest(path), net.slots(), path)
    return path
