"""Image -> faces: found by the tiny detector, 68 landmarks on each, and the aligned chip the descriptor takes.

Each step follows face-api.js (``detectAllFaces(...).withFaceLandmarks().withFaceDescriptors()``): the face's
box, clipped to the image and floored, is cut out for the landmarks net; the landmarks' own bounding box,
widened by a fifth of its width and height, is the aligned box; that box, padded to a square with black on
both sides and resized to 150 px, is the chip. Images are float tensors inside, resized as TensorFlow.js
does (bilinear, no half-pixel centres), so the port's numbers can be checked against the package's own.

The finder is a layer only to hold the two networks' weights, which travel inside a face embedding's
checkpoint (keys ``face_finder.*``), so that every stage finds faces exactly as the stage before it did.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn
from PIL import Image

from pdfewshot.errors import UnusableImage
from pdfewshot.nets.faces import detector as det
from pdfewshot.nets.faces import landmarks as lm
from pdfewshot.nets.faces.descriptor import CHIP_SIZE
from pdfewshot.nets.runner import LayerRunner
from pdfewshot.storage.checkpoint import load_weights

ALIGN_PADDING = 0.2  # face-api.js's minBoxPadding
# The detector's anchors span faces of about 50-330 px of its input, so one input size misses faces that fill
# the image once it is enlarged (at 416 px, the package's default, it found a face in 85% of 628 lfw_dev
# portraits; at 160 and 320 together, 99.5%: docs/results.md, Faces). Sizes are tried together and their
# boxes pooled; an image larger than LARGE_IMAGE is also looked at near its own size, for small faces.
DETECTION_SIZES = (160, 320)
LARGE_IMAGE, LARGE_SIZE = 640, 608
# How a face's chip is cut from its landmarks (chosen by measurement: docs/results.md, Faces):
# - "landmarks": the 68 points' bounding box widened by a fifth (face-api.js);
# - "eyes-mouth": a square whose side is the mean eye-to-mouth distance / 0.45, placed by the centre of the
#   eyes and mouth (@vladmandic/face-api's dlib-like box, which its descriptors are computed on);
# - "level": that square turned so that the eyes are level, as dlib's own chips are.
ALIGNMENTS = ("landmarks", "eyes-mouth", "level")
DEFAULT_ALIGNMENT = "level"
NO_FACE = "no face found"  # why an image without a face is skipped
EYES_MOUTH = (slice(36, 42), slice(42, 48), slice(48, 68))  # left eye, right eye, mouth of the 68 points
RELATIVE_X, RELATIVE_Y, RELATIVE_SCALE = 0.5, 0.43, 0.45


@dataclass(frozen=True)
class Face:
    """A face in an image: its detected box (left, top, right, bottom, in pixels), score, 68 landmarks
    ``[68, 2]`` (x, y in pixels) and the aligned chip (uint8 ``[150, 150, 3]``)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    chip: np.ndarray

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def _resized(pixels: paddle.Tensor, size: int) -> paddle.Tensor:
    """``[1, 3, h, w]`` -> ``[1, 3, size, size]`` as TensorFlow's resizeBilinear (align_corners and half-pixel
    centres both off), unless it is that size already."""
    if pixels.shape[2] == size and pixels.shape[3] == size:
        return pixels
    return F.interpolate(pixels, size=[size, size], mode="bilinear", align_corners=False, align_mode=1)


def _js_round(value: float) -> int:
    """JavaScript's Math.round (halves up), which Python's round (halves to even) is not."""
    return int(np.floor(value + 0.5))


def _square(pixels: paddle.Tensor, centred: bool) -> paddle.Tensor:
    """Padded with black to a square: on the far side, or both sides (the far side taking the rounded half)."""
    height, width = pixels.shape[2], pixels.shape[3]
    difference = abs(height - width)
    after = _js_round(difference * 0.5) if centred else difference
    before = difference - after
    pad = [before, after, 0, 0] if height > width else [0, 0, before, after]  # [left, right, top, bottom]
    return F.pad(pixels, pad) if difference else pixels


def _scaled(pixels: paddle.Tensor, mean: tuple[float, float, float]) -> paddle.Tensor:
    return (pixels - paddle.to_tensor(mean, "float32").reshape([1, 3, 1, 1])) / 255.0


def _clipped(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of a box clipped to the image and floored, as face-api.js cuts faces out."""
    left, top = max(box[0], 0.0), max(box[1], 0.0)
    w, h = min(box[2] - left, width - left), min(box[3] - top, height - top)
    return int(np.floor(left)), int(np.floor(top)), int(np.floor(w)), int(np.floor(h))


def decode_boxes(raw: np.ndarray, width: int, height: int, input_size: int, threshold: float) -> list[det.Detection]:
    """The detector's output ``[25, cells, cells]`` for an image of ``width`` x ``height`` -> faces above
    ``threshold`` after non-maximum suppression, boxes in image pixels."""
    cells = raw.shape[1]
    scale = input_size / max(width, height)
    correct_x, correct_y = input_size / _js_round(width * scale), input_size / _js_round(height * scale)
    grid = raw.reshape(len(det.ANCHORS), 5, cells, cells)
    scores = 1.0 / (1.0 + np.exp(-grid[:, 4].astype(np.float64)))
    candidates = []
    for anchor, row, col in zip(*np.nonzero(scores > threshold), strict=True):
        tx, ty, tw, th = grid[anchor, :4, row, col].astype(np.float64)
        centre_x = (col + 1 / (1 + np.exp(-tx))) / cells * correct_x
        centre_y = (row + 1 / (1 + np.exp(-ty))) / cells * correct_y
        box_w = np.exp(tw) * det.ANCHORS[anchor][0] / cells * correct_x
        box_h = np.exp(th) * det.ANCHORS[anchor][1] / cells * correct_y
        left, top = centre_x - box_w / 2, centre_y - box_h / 2
        candidates.append(((left, top, left + box_w, top + box_h), float(scores[anchor, row, col])))
    kept = non_max_suppression([box for box, _ in candidates], [score for _, score in candidates], det.IOU_THRESHOLD)
    return [
        det.Detection((box[0] * width, box[1] * height, box[2] * width, box[3] * height), score)
        for box, score in (candidates[i] for i in kept)
    ]


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


class FaceFinder(nn.Layer):  # type: ignore[misc]
    """The detector and the landmarks net, and what turns an image into :class:`Face` records."""

    def __init__(
        self, input_sizes: tuple[int, ...] = DETECTION_SIZES, score_threshold: float = det.SCORE_THRESHOLD
    ) -> None:
        super().__init__()
        self.detector = det.TinyFaceDetector()
        self.landmarks = lm.FaceLandmark68Net()
        self.input_sizes = input_sizes
        self.score_threshold = score_threshold
        self._fast_landmarks: LayerRunner | None = None  # built on first use, once the weights are in
        for parameter in self.parameters():
            parameter.stop_gradient = True  # finding faces is never trained

    def load_face_api(self, folder: str | Path) -> list[Path]:
        """Reads both networks' weights from face-api's files (a folder holding their manifests)."""
        return [det.load_detector(self.detector, folder), lm.load_landmarks(self.landmarks, folder)]

    @paddle.no_grad()  # type: ignore[untyped-decorator]
    def detect_at(self, image: np.ndarray, input_size: int) -> list[det.Detection]:
        """The faces the detector finds in a uint8 ``[h, w, 3]`` image resized to ``input_size``."""
        height, width = image.shape[:2]
        pixels = paddle.to_tensor(image.transpose(2, 0, 1)[None].astype(np.float32))
        batch = _scaled(_resized(_square(pixels, centred=False), input_size), det.MEAN_RGB)
        raw = self.detector(batch).numpy()[0]
        return decode_boxes(raw, width, height, input_size, self.score_threshold)

    def detect(self, image: np.ndarray, largest: bool = False) -> list[det.Detection]:
        """The faces found at every input size, overlapping boxes pooled by non-maximum suppression, best first.
        With ``largest`` (only the largest face is wanted), the sizes are tried from the smallest, which finds
        the large faces, and the first that finds any is kept: on lfw_dev the smallest alone finds 98%."""
        sizes = self.input_sizes + ((LARGE_SIZE,) if max(image.shape[:2]) > LARGE_IMAGE else ())
        found: list[det.Detection] = []
        for size in sorted(sizes):
            found += self.detect_at(image, size)
            if largest and found:
                break
        kept = non_max_suppression([d.box for d in found], [d.score for d in found], det.IOU_THRESHOLD)
        return [found[i] for i in kept]

    @paddle.no_grad()  # type: ignore[untyped-decorator]
    def locate_landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """68 (x, y) points in image pixels for the face in ``box``."""
        x, y, w, h = _clipped(box, image.shape[1], image.shape[0])
        crop = paddle.to_tensor(image[y : y + h, x : x + w].transpose(2, 0, 1)[None].astype(np.float32))
        batch = _scaled(_resized(_square(crop, centred=True), lm.INPUT_SIZE), lm.MEAN_RGB)
        if self._fast_landmarks is None:
            self._fast_landmarks = LayerRunner(self.landmarks, 3)
        raw = self._fast_landmarks(batch.numpy())[0].reshape(68, 2).astype(np.float64)
        scale = lm.INPUT_SIZE / max(w, h)
        shown = np.array([w * scale, h * scale])
        padding = np.array([(shown[1] - shown[0]) / 2 if w < h else 0.0, (shown[0] - shown[1]) / 2 if h < w else 0.0])
        relative = (raw * lm.INPUT_SIZE - padding) / shown
        return np.asarray(relative * np.array([w, h]) + np.array([box[0], box[1]]))

    def find(
        self, image: np.ndarray, alignment: str = DEFAULT_ALIGNMENT, size: int = CHIP_SIZE, largest: bool = False
    ) -> list[Face]:
        """Every face in a uint8 ``[h, w, 3]`` image (see :meth:`detect` for ``largest``), the detector's best
        first, its chip cut by ``alignment``."""
        faces = []
        for found in self.detect(image, largest):
            points = self.locate_landmarks(image, found.box)
            faces.append(Face(found.box, found.score, points, face_chip(image, points, alignment, size)))
        return faces

    def digest(self) -> str:
        """A short hash of both networks' weights and the detection settings."""
        hasher = hashlib.sha256(repr((self.input_sizes, self.score_threshold, LARGE_IMAGE, LARGE_SIZE)).encode())
        for key, value in sorted(self.state_dict().items()):
            hasher.update(key.encode())
            hasher.update(np.ascontiguousarray(value.numpy()).tobytes())
        return hasher.hexdigest()[:16]


class FaceChips:
    """The face route's row maker (a :class:`pdfewshot.data.decoding.Shaper`): an image -> the aligned chip
    of its largest face; an image with none is unusable ("no face found")."""

    def __init__(self, finder: FaceFinder, alignment: str = DEFAULT_ALIGNMENT) -> None:
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment {alignment!r} is not one of {', '.join(ALIGNMENTS)}")
        self.finder, self.alignment = finder, alignment
        self.identity = f"faces:{alignment}:{finder.digest()}"
        self.several = 0  # images with more than one face, of those made into chips here

    @classmethod
    def from_weights(cls, state: Mapping[str, Any], alignment: str, source: str | Path) -> "FaceChips":
        """The chips a stored finder cuts: its detector's and landmarks' weights (keys as :class:`FaceFinder`'s,
        checked to fit; errors name ``source``) and the alignment it was made with."""
        finder = FaceFinder()
        load_weights(finder, state, source)
        finder.eval()
        return cls(finder, alignment)

    def __call__(self, picture: Image.Image, size: int) -> np.ndarray:
        faces = self.finder.find(np.asarray(picture.convert("RGB")), self.alignment, size, largest=True)
        if not faces:
            raise UnusableImage(NO_FACE)
        self.several += len(faces) > 1
        return max(faces, key=lambda face: face.area).chip


def aligned_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """The landmarks' bounding box widened by :data:`ALIGN_PADDING` of its size (face-api.js's alignment)."""
    left, top = points.min(axis=0)
    right, bottom = max(points[:, 0].max(), 0.0), max(points[:, 1].max(), 0.0)
    pad_x, pad_y = (right - left) * ALIGN_PADDING / 2, (bottom - top) * ALIGN_PADDING / 2
    return float(left - pad_x), float(top - pad_y), float(right + pad_x), float(bottom + pad_y)


def eyes_mouth_square(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The centre of the face's square, its side, and the eyes' angle (radians) from the 68 landmarks."""
    left_eye, right_eye, mouth = (points[part].mean(axis=0) for part in EYES_MOUTH)
    side = (np.linalg.norm(mouth - left_eye) + np.linalg.norm(mouth - right_eye)) / 2 / RELATIVE_SCALE
    reference = (left_eye + right_eye + mouth) / 3
    centre = reference + np.array([(0.5 - RELATIVE_X) * side, (0.5 - RELATIVE_Y) * side])
    angle = float(np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0]))
    return centre, float(side), angle


def face_chip(image: np.ndarray, points: np.ndarray, alignment: str, size: int = CHIP_SIZE) -> np.ndarray:
    """The chip of the face whose landmarks are ``points``, cut as ``alignment`` says (:data:`ALIGNMENTS`)."""
    if alignment == "landmarks":
        return chip(image, aligned_box(points), size)
    centre, side, angle = eyes_mouth_square(points)
    if alignment == "eyes-mouth":  # as the package places it: from the floored side
        whole = np.floor(side)
        left, top = np.floor(np.maximum(0.0, centre - side / 2 + (side - whole) * np.array([RELATIVE_X, RELATIVE_Y])))
        return chip(image, (left, top, left + whole, top + whole), size)
    return level_chip(image, centre, side, angle, size)


def level_chip(image: np.ndarray, centre: np.ndarray, side: float, angle: float, size: int) -> np.ndarray:
    """The square of ``side`` around ``centre`` turned by ``angle``, resampled bilinearly to ``size``
    (black outside the image)."""
    cos, sin, step = np.cos(angle), np.sin(angle), side / size
    # PIL reads output pixel centre (u, v) at A @ (u, v) + c; A turns and scales the chip into the image.
    a, b, d, e = cos * step, -sin * step, sin * step, cos * step
    coefficients = (a, b, centre[0] - (a + b) * size / 2, d, e, centre[1] - (d + e) * size / 2)
    turned = Image.fromarray(image).transform(
        (size, size), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR, fillcolor=(0, 0, 0)
    )
    return np.asarray(turned, dtype=np.uint8)


def chip(image: np.ndarray, box: tuple[float, float, float, float], size: int = CHIP_SIZE) -> np.ndarray:
    """The part of ``image`` in ``box``, padded to a square and resized to ``size``: uint8 ``[size, size, 3]``."""
    x, y, w, h = _clipped(box, image.shape[1], image.shape[0])
    crop = paddle.to_tensor(image[y : y + max(h, 1), x : x + max(w, 1)].transpose(2, 0, 1)[None].astype(np.float32))
    with paddle.no_grad():
        resized: np.ndarray = _resized(_square(crop, centred=True), size).numpy()[0]
    shaped: np.ndarray = np.clip(np.rint(resized), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return shaped
