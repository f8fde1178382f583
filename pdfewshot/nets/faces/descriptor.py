"""FaceRecognitionNet: face-api.js's port of dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``).

A 7x7 stride-2 convolution and a 3x3 max-pool, then residual blocks of 32, 64, 128 and 256 channels (each
convolution followed by a per-channel scale and shift, dlib's "affine" layer in place of batch norm), global
average pooling and a 128-d linear layer. A down block convolves with stride 2 and adds the input average-pooled,
its channels padded with zeros; where the two disagree in size by a pixel the convolution's output is padded
at the far edge, as face-api.js does. Input: a 150x150 face chip; the pixel scaling (mean subtraction, /255)
is the embedding's ``face`` normalisation (:mod:`pdfewshot.nets.embedding`).
"""

from pathlib import Path

import paddle
import paddle.nn.functional as F
from paddle import nn

from pdfewshot.nets.tfjs import Slot, fill_layer, manifest_path, read_manifest

MODEL = "face_recognition_model"
CHIP_SIZE = 150
MEAN_RGB = (122.782, 117.001, 104.298)
# (name, channels, down) of each residual block, in order
BLOCKS = (
    ("conv32_1", 32, False), ("conv32_2", 32, False), ("conv32_3", 32, False),
    ("conv64_down", 64, True), ("conv64_1", 64, False), ("conv64_2", 64, False), ("conv64_3", 64, False),
    ("conv128_down", 128, True), ("conv128_1", 128, False), ("conv128_2", 128, False),
    ("conv256_down", 256, True), ("conv256_1", 256, False), ("conv256_2", 256, False),
    ("conv256_down_out", 256, True),
)  # fmt: skip


class ScaledConv(nn.Layer):  # type: ignore[misc]
    """A convolution with bias, then a learnt per-channel scale and shift."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: str) -> None:
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, kernel, stride, padding=padding)
        self.scale = self.create_parameter([out_channels], default_initializer=nn.initializer.Constant(1.0))
        self.shift = self.create_parameter([out_channels], is_bias=True)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv(x) * self.scale.reshape([1, -1, 1, 1]) + self.shift.reshape([1, -1, 1, 1])

    def slots(self, prefix: str, key: str) -> list[Slot]:
        return [
            Slot(f"{prefix}/conv/filters", f"{key}.conv.weight", "conv"),
            Slot(f"{prefix}/conv/bias", f"{key}.conv.bias"),
            Slot(f"{prefix}/scale/weights", f"{key}.scale"),
            Slot(f"{prefix}/scale/biases", f"{key}.shift"),
        ]


class Residual(nn.Layer):  # type: ignore[misc]
    """Two 3x3 scaled convolutions and the shortcut (average-pooled and zero-padded in a down block)."""

    def __init__(self, in_channels: int, channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = ScaledConv(in_channels, channels, 3, 2 if down else 1, "VALID" if down else "SAME")
        self.conv2 = ScaledConv(channels, channels, 3, 1, "SAME")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        shortcut = x
        if self.down:
            shortcut = F.avg_pool2d(x, 2, 2)
            size = shortcut.shape[2]
            if out.shape[2] != size:  # face-api.js pads the convolution's output at its far edge
                out = F.pad(out, [0, size - out.shape[3], 0, size - out.shape[2]])
            if shortcut.shape[1] != out.shape[1]:
                # shortcut * 0, not zeros_like: saved for the fast path, zeros_like warns about its place
                shortcut = paddle.concat([shortcut, shortcut * 0.0], axis=1)
        return F.relu(out + shortcut)

    def slots(self, prefix: str, key: str) -> list[Slot]:
        return self.conv1.slots(f"{prefix}/conv1", f"{key}.conv1") + self.conv2.slots(f"{prefix}/conv2", f"{key}.conv2")


class FaceRecognitionNet(nn.Layer):  # type: ignore[misc]
    """Scaled pixels of a face chip ``[N, 3, 150, 150]`` -> the 128-d descriptor (not normalised)."""

    feature_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.stem = ScaledConv(3, 32, 7, 2, "VALID")
        blocks, channels = [], 32
        for _, width, down in BLOCKS:
            blocks.append(Residual(channels, width, down))
            channels = width
        self.blocks = nn.LayerList(blocks)
        self.fc = nn.Linear(256, 128, bias_attr=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        for block in self.blocks:
            out = block(out)
        # average pooling, not mean: oneDNN's check of a mean prints a bare line when the fast path is built
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))

    def slots(self, key: str = "") -> list[Slot]:
        """Which tensor of face-api.js's manifest fills which parameter (keys under ``key``)."""
        at = f"{key}." if key else ""
        slots = self.stem.slots("conv32_down", f"{at}stem")
        for index, (name, _, _) in enumerate(BLOCKS):
            slots += self.blocks[index].slots(name, f"{at}blocks.{index}")
        return [*slots, Slot("fc", f"{at}fc.weight")]


def load_descriptor(net: FaceRecognitionNet, source: str | Path) -> Path:
    """Sets ``net``'s weights from face-api's ``face_recognition_model`` (a folder or its manifest); returns the
    manifest read."""
    path = manifest_path(source, MODEL)
    fill_layer(net, read_manifest(path), net.slots(), path)
    return path
