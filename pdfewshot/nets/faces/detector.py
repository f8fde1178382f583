"""The tiny face detector of face-api.js: a tiny YOLOv2 with depthwise-separable convolutions, 13x13 cells of
five anchor boxes at its default 416 px input.

The image is padded to a square at its right or bottom edge with black, resized to the input size (TensorFlow's
bilinear resize without half-pixel centres: Paddle's ``align_mode=1``), its channel means subtracted and divided
by 255. Each anchor of each cell gives a score (a sigmoid) and a box (centre offsets by sigmoid, size by the
anchor times an exponential); boxes scoring above the threshold are kept by greedy non-maximum suppression at
IoU 0.4, as the package does.
"""

from dataclasses import dataclass
from pathlib import Path

import paddle
import paddle.nn.functional as F
from paddle import nn

from pdfewshot.nets.tfjs import Slot, fill_layer, manifest_path, read_manifest

MODEL = "tiny_face_detector_model"
MEAN_RGB = (117.001, 114.697, 97.404)
ANCHORS = ((1.603231, 2.094468), (6.041143, 7.080126), (2.882459, 3.518061), (4.266906, 5.178857), (9.041765, 10.66308))
CHANNELS = (16, 32, 64, 128, 256, 512)
IOU_THRESHOLD = 0.4
INPUT_SIZE = 416  # face-api.js's default; a multiple of STRIDE
STRIDE = 32  # input pixels per output cell (five poolings)
SCORE_THRESHOLD = 0.5  # face-api.js's default


@dataclass(frozen=True)
class Detection:
    """A face's box in image pixels (left, top, right, bottom) and the detector's score."""

    box: tuple[float, float, float, float]
    score: float


def _leaky(x: paddle.Tensor) -> paddle.Tensor:
    """Leaky ReLU with slope 0.1, written out: Paddle 3.3.1's oneDNN inference crashes fusing F.leaky_relu into
    the convolution before it."""
    return paddle.maximum(x, x * 0.1)


class SeparableConv(nn.Layer):  # type: ignore[misc]
    """A 3x3 depthwise convolution without bias and a 1x1 pointwise one with it (TensorFlow's separable_conv2d)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, padding: str | int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2D(in_channels, in_channels, 3, stride, padding, groups=in_channels, bias_attr=False)
        self.pointwise = nn.Conv2D(in_channels, out_channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.pointwise(self.depthwise(x))

    def slots(self, prefix: str, key: str) -> list[Slot]:
        return [
            Slot(f"{prefix}/depthwise_filter", f"{key}.depthwise.weight", "depthwise"),
            Slot(f"{prefix}/pointwise_filter", f"{key}.pointwise.weight", "conv"),
            Slot(f"{prefix}/bias", f"{key}.pointwise.bias"),
        ]


class TinyFaceDetector(nn.Layer):  # type: ignore[misc]
    """Scaled pixels ``[N, 3, S, S]`` (S a multiple of 32) -> raw outputs ``[N, 25, S/32, S/32]``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2D(3, CHANNELS[0], 3)
        self.convs = nn.LayerList([SeparableConv(CHANNELS[i], CHANNELS[i + 1]) for i in range(len(CHANNELS) - 1)])
        self.conv8 = nn.Conv2D(CHANNELS[-1], len(ANCHORS) * 5, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = _leaky(self.conv0(x))
        for conv in self.convs:
            out = _leaky(conv(F.max_pool2d(out, 2, 2, padding="SAME")))
        return self.conv8(F.max_pool2d(out, 2, 1, padding="SAME"))

    def slots(self) -> list[Slot]:
        slots = [Slot("conv0/filters", "conv0.weight", "conv"), Slot("conv0/bias", "conv0.bias")]
        for index, conv in enumerate(self.convs):
            slots += conv.slots(f"conv{index + 1}", f"convs.{index}")
        return [*slots, Slot("conv8/filters", "conv8.weight", "conv"), Slot("conv8/bias", "conv8.bias")]


def non_max_suppression(boxes: list[tuple[float, ...]], scores: list[float], iou_threshold: float) -> list[int]:
    """Indices of the boxes kept, best first: each box drops the lower-scored ones it overlaps beyond the threshold."""
    remaining = sorted(range(len(boxes)), key=lambda i: scores[i])
    kept = []
    while remaining:
        best = remaining.pop()
        kept.append(best)
        remaining = [i for i in remaining if _iou(boxes[best], boxes[i]) <= iou_threshold]
    return kept


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def load_detector(net: TinyFaceDetector, source: str | Path) -> Path:
    """Sets ``net``'s weights from face-api's ``tiny_face_detector_model`` (a folder or its manifest)."""
    path = manifest_path(source, MODEL)
    fill_layer(net, read_manifest(path), net.slots(), path)
    return path
