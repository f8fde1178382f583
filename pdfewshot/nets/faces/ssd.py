"""face-api.js's other face detector: SSD with a MobileNetV1 body, 5118 anchor boxes at its 512 px input.

The image is padded to a square at its right or bottom edge with black, resized to 512 px as TensorFlow does
and scaled to -1..1. MobileNetV1 (a 3x3 convolution, then 13 depthwise-separable pairs; ReLU6, TensorFlow's
"SAME" padding) gives two feature maps (32x32 from pair 11, 16x16 from pair 13); four more strided layers
give 8, 4, 2 and 1 cells. Each map's box predictor gives, per cell and anchor, four box offsets and three class
logits, of which the second is the face's (a sigmoid). Boxes are decoded from the anchors stored with the
weights (``Output/extra_dim``) and kept from a score of 0.5 by greedy non-maximum suppression at IoU 0.5, as
the package does. :func:`decode_ssd` turns the net's outputs into :class:`Detection` boxes in image pixels.
"""

from pathlib import Path

import numpy as np
import paddle
from paddle import nn

from pdfewshot.nets.faces.detector import Detection, non_max_suppression
from pdfewshot.nets.tfjs import Slot, fill_layer, manifest_path, read_manifest

MODEL = "ssd_mobilenetv1_model"
INPUT_SIZE = 512
ANCHOR_COUNT = 5118
IOU_THRESHOLD = 0.5
SCORE_THRESHOLD = 0.5  # face-api.js's minConfidence
BATCH_NORM_EPSILON = 0.0010000000474974513
PAIRS = (  # MobileNetV1's depthwise-separable pairs: (input channels, output channels, depthwise stride)
    (32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
    (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 1024, 2), (1024, 1024, 1),
)  # fmt: skip
EXTRA = ((1024, 256, 1, 1), (256, 512, 3, 2), (512, 128, 1, 1), (128, 256, 3, 2), (256, 128, 1, 1), (128, 256, 3, 2),
         (256, 64, 1, 1), (64, 128, 3, 2))  # fmt: skip  # the prediction layer's convolutions: in, out, kernel, stride
PREDICTED = ((512, 3), (1024, 6), (512, 6), (256, 6), (256, 6), (128, 6))  # per feature map: channels, anchors a cell
# Tensors of the exported graph that are not weights (shapes and axes of its reshapes, its preprocessing).
GRAPH_CONSTANTS = ("Preprocessor/", "Postprocessor/", "concat_1/axis", "/stack_1/", "/stack/", "/strided_slice/")


def _relu6(x: paddle.Tensor) -> paddle.Tensor:
    return paddle.clip(x, 0.0, 6.0)


class PointwiseConv(nn.Layer):  # type: ignore[misc]
    """A convolution whose batch norm is folded into its bias ("convolution_bn_offset"), then ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, kernel, stride, padding="SAME")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return _relu6(self.conv(x))

    def slots(self, prefix: str, key: str) -> list[Slot]:
        return [
            Slot(f"{prefix}/weights", f"{key}.conv.weight", "conv"),
            Slot(f"{prefix}/convolution_bn_offset", f"{key}.conv.bias"),
        ]


class DepthwiseConv(nn.Layer):  # type: ignore[misc]
    """A 3x3 depthwise convolution with its own batch norm, then ReLU6."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2D(channels, channels, 3, stride, padding="SAME", groups=channels, bias_attr=False)
        self.norm = nn.BatchNorm2D(channels, epsilon=BATCH_NORM_EPSILON)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return _relu6(self.norm(self.conv(x)))

    def slots(self, prefix: str, key: str) -> list[Slot]:
        return [
            Slot(f"{prefix}/depthwise_weights", f"{key}.conv.weight", "depthwise"),
            Slot(f"{prefix}/BatchNorm/gamma", f"{key}.norm.weight"),
            Slot(f"{prefix}/BatchNorm/beta", f"{key}.norm.bias"),
            Slot(f"{prefix}/BatchNorm/moving_mean", f"{key}.norm._mean"),
            Slot(f"{prefix}/BatchNorm/moving_variance", f"{key}.norm._variance"),
        ]


class SsdMobilenetV1(nn.Layer):  # type: ignore[misc]
    """Scaled pixels ``[N, 3, 512, 512]`` -> ``[N, 5118, 7]``: each anchor's four box offsets, then its three
    class logits (one output, so that the fast path, which returns one, can run it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = PointwiseConv(3, PAIRS[0][0], 3, 2)
        self.depthwise = nn.LayerList([DepthwiseConv(i, stride) for i, _, stride in PAIRS])
        self.pointwise = nn.LayerList([PointwiseConv(i, o) for i, o, _ in PAIRS])
        self.extra = nn.LayerList([PointwiseConv(*shape) for shape in EXTRA])
        self.box_predictors = nn.LayerList([nn.Conv2D(c, a * 4, 1) for c, a in PREDICTED])
        self.class_predictors = nn.LayerList([nn.Conv2D(c, a * 3, 1) for c, a in PREDICTED])
        anchors = paddle.zeros([1, ANCHOR_COUNT, 4])
        self.anchors = self.create_parameter(anchors.shape, default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        # Index loops: paddle.jit's translation of forward for the fast path knows no zip(..., strict=True).
        out = self.conv0(x)
        maps = []
        for index in range(len(PAIRS)):
            out = self.pointwise[index](self.depthwise[index](out))
            if index == 10 or index == len(PAIRS) - 1:  # pair 11's 32x32 map and the last 16x16 one
                maps.append(out)
        for index in range(len(EXTRA)):
            out = self.extra[index](out)
            if index % 2:
                maps.append(out)
        boxes = [_per_anchor(self.box_predictors[i](maps[i]), 4) for i in range(len(PREDICTED))]
        classes = [_per_anchor(self.class_predictors[i](maps[i]), 3) for i in range(len(PREDICTED))]
        return paddle.concat([paddle.concat(boxes, axis=1), paddle.concat(classes, axis=1)], axis=2)

    def slots(self) -> list[Slot]:
        slots = self.conv0.slots("MobilenetV1/Conv2d_0_pointwise", "conv0")
        for index in range(len(PAIRS)):
            slots += self.depthwise[index].slots(f"MobilenetV1/Conv2d_{index + 1}_depthwise", f"depthwise.{index}")
            slots += self.pointwise[index].slots(f"MobilenetV1/Conv2d_{index + 1}_pointwise", f"pointwise.{index}")
        for index, layer in enumerate(self.extra):
            slots += layer.slots(f"Prediction/Conv2d_{index}_pointwise", f"extra.{index}")
        for index in range(len(PREDICTED)):
            for part, key in (("BoxEncodingPredictor", "box_predictors"), ("ClassPredictor", "class_predictors")):
                slots += [
                    Slot(f"Prediction/BoxPredictor_{index}/{part}/weights", f"{key}.{index}.weight", "conv"),
                    Slot(f"Prediction/BoxPredictor_{index}/{part}/biases", f"{key}.{index}.bias"),
                ]
        return [*slots, Slot("Output/extra_dim", "anchors")]


def _per_anchor(x: paddle.Tensor, values: int) -> paddle.Tensor:
    """``[N, anchors * values, h, w]`` -> ``[N, h * w * anchors, values]`` in TensorFlow's (cell-major) order."""
    return x.transpose([0, 2, 3, 1]).reshape([0, -1, values])  # 0: the batch dimension kept


def load_ssd(net: SsdMobilenetV1, source: str | Path) -> Path:
    """Sets ``net``'s weights and anchors from face-api's ``ssd_mobilenetv1_model`` (a folder or its manifest)."""
    path = manifest_path(source, MODEL)
    tensors = {
        name: value for name, value in read_manifest(path).items() if not any(c in name for c in GRAPH_CONSTANTS)
    }
    fill_layer(net, tensors, net.slots(), path)
    return path


def scaled(pixels: paddle.Tensor) -> paddle.Tensor:
    """Pixels 0..255 -> the net's -1..1."""
    return pixels / 127.5 - 1.0


def decode_ssd(outputs: np.ndarray, anchors: np.ndarray, width: int, height: int, threshold: float) -> list[Detection]:
    """One image's outputs (``[5118, 7]``; anchors ``[5118, 4]``) for an image of ``width`` x
    ``height`` padded at its far side to a square -> faces scoring above ``threshold`` after non-maximum
    suppression, boxes clipped to the image, in its pixels (face-api.js's ``locateFaces``)."""
    offsets, logits = outputs[:, :4], outputs[:, 4:]
    scores = 1.0 / (1.0 + np.exp(-logits[:, 1].astype(np.float64)))
    chosen = np.nonzero(scores > threshold)[0]
    anchor, offset = anchors[chosen].astype(np.float64), offsets[chosen].astype(np.float64)
    sizes, centres = anchor[:, 2:] - anchor[:, :2], (anchor[:, :2] + anchor[:, 2:]) / 2
    centre = offset[:, :2] / 10 * sizes + centres
    half = np.exp(offset[:, 2:] / 5) * sizes / 2
    corners = np.clip(np.concatenate([centre - half, centre + half], axis=1), 0.0, 1.0)
    # As the package scales them: by the input's side over the image's shown side, times the image's side.
    per_x = INPUT_SIZE / np.floor(width * INPUT_SIZE / max(width, height) + 0.5) * width
    per_y = INPUT_SIZE / np.floor(height * INPUT_SIZE / max(width, height) + 0.5) * height
    boxes: list[tuple[float, ...]] = [
        (float(c[1] * per_x), float(c[0] * per_y), float(c[3] * per_x), float(c[2] * per_y)) for c in corners.tolist()
    ]
    kept = non_max_suppression(boxes, [float(scores[i]) for i in chosen], IOU_THRESHOLD)
    return [Detection(boxes[i], float(scores[chosen[i]])) for i in kept]  # type: ignore[arg-type]
