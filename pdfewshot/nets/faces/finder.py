"""Image -> faces: found by the tiny detector, 68 landmarks on each, and the aligned chip the descriptor takes.

Where the detector looks, and what confirms a face, is :mod:`.search`'s (several looks at an image, landmarks
that must make a face, the image turned when nothing is found upright). With ``PACKAGE_SEARCH`` each step
follows face-api.js (``detectAllFaces(...).withFaceLandmarks().withFaceDescriptors()``): the face's box, clipped
to the image and floored, is cut out for the landmarks net; the landmarks' own bounding box, widened by a fifth
of its width and height, is the aligned box; that box, padded to a square with black on both sides and resized
to 150 px, is the chip. Images are then float tensors, resized as TensorFlow.js does (bilinear, no half-pixel
centres), so the port's numbers can be checked against the package's own. The default search cuts a box that
reaches out of the image from inside a grey border, and locates the landmarks a second time in the box they
imply (``search.landmarks_box``).

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
from pdfewshot.nets.faces import ssd
from pdfewshot.nets.faces.descriptor import CHIP_SIZE
from pdfewshot.nets.faces.search import (
    DEFAULT_SEARCH,
    DETECTORS,
    STEADY,
    FaceSearch,
    Look,
    bounds,
    eye_distance,
    eyes_and_mouth,
    landmarks_box,
    looks_for,
    moved,
    plausible,
    turned,
    with_border,
)
from pdfewshot.nets.runner import LayerRunner
from pdfewshot.storage.checkpoint import load_weights

ALIGN_PADDING = 0.2  # face-api.js's minBoxPadding
# How a face's chip is cut from its landmarks (chosen by measurement: docs/results.md, Faces):
# - "landmarks": the 68 points' bounding box widened by a fifth (face-api.js);
# - "eyes-mouth": a square whose side is the mean eye-to-mouth distance / 0.45, placed by the centre of the
#   eyes and mouth (@vladmandic/face-api's dlib-like box, which its descriptors are computed on);
# - "level": that square turned so that the eyes are level, as dlib's own chips are.
ALIGNMENTS = ("landmarks", "eyes-mouth", "level")
DEFAULT_ALIGNMENT = "level"
SMALLEST_FACE = 12  # px: an image narrower than this is not looked at (the landmarks alone need more)
NO_FACE = "no face found"  # why an image without a face is skipped
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


def decode_boxes(
    raw: np.ndarray, width: int, height: int, shown: tuple[int, int], threshold: float
) -> list[det.Detection]:
    """The detector's output ``[25, rows, cols]`` for an image of ``width`` x ``height`` shown to it at
    ``shown`` (width, height in input pixels, at its top left) -> faces above ``threshold`` after non-maximum
    suppression, boxes in image pixels. With a square input of side S and ``shown`` the image's size scaled by
    S / its longer side, this is face-api.js's decoding."""
    rows, cols = raw.shape[1:]
    per_x, per_y = det.STRIDE * width / shown[0], det.STRIDE * height / shown[1]  # image pixels per cell
    grid = raw.reshape(len(det.ANCHORS), 5, rows, cols)
    scores = 1.0 / (1.0 + np.exp(-grid[:, 4].astype(np.float64)))
    candidates = []
    for anchor, row, col in zip(*np.nonzero(scores > threshold), strict=True):
        tx, ty, tw, th = grid[anchor, :4, row, col].astype(np.float64)
        centre_x, centre_y = (col + 1 / (1 + np.exp(-tx))) * per_x, (row + 1 / (1 + np.exp(-ty))) * per_y
        box_w, box_h = np.exp(tw) * det.ANCHORS[anchor][0] * per_x, np.exp(th) * det.ANCHORS[anchor][1] * per_y
        left, top = centre_x - box_w / 2, centre_y - box_h / 2
        candidates.append(((left, top, left + box_w, top + box_h), float(scores[anchor, row, col])))
    kept = det.non_max_suppression(
        [box for box, _ in candidates], [score for _, score in candidates], det.IOU_THRESHOLD
    )
    return [det.Detection(*candidates[i]) for i in kept]


@dataclass(frozen=True)
class Located:
    """A detected face with its 68 landmarks, before its chip is cut."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray


class FaceFinder(nn.Layer):  # type: ignore[misc]
    """The detector and the landmarks net, and what turns an image into :class:`Face` records: looked for as
    ``search`` says (:mod:`.search`)."""

    def __init__(self, search: FaceSearch = DEFAULT_SEARCH) -> None:
        super().__init__()
        self.detector = det.TinyFaceDetector()
        self.landmarks = lm.FaceLandmark68Net()
        if search.detector not in DETECTORS:
            raise ValueError(f"detector {search.detector!r} is not one of {', '.join(DETECTORS)}")
        if search.detector == "ssd":  # held only when used: its weights would travel in every face checkpoint
            self.ssd = ssd.SsdMobilenetV1()
        self.search = search
        self._fast: dict[str, LayerRunner] = {}  # paddle.inference of each net, built on first use
        for parameter in self.parameters():
            parameter.stop_gradient = True  # finding faces is never trained

    def load_face_api(self, folder: str | Path) -> list[Path]:
        """Reads both networks' weights from face-api's files (a folder holding their manifests)."""
        paths = [det.load_detector(self.detector, folder), lm.load_landmarks(self.landmarks, folder)]
        return [*paths, ssd.load_ssd(self.ssd, folder)] if self.search.detector == "ssd" else paths

    def _run(self, name: str, batch: np.ndarray) -> np.ndarray:
        if name not in self._fast:
            self._fast[name] = LayerRunner(getattr(self, name), 3)
        return self._fast[name](batch)

    def detect_at(self, image: np.ndarray, look: Look, threshold: float | None = None) -> list[det.Detection]:
        """The faces the detector finds in a uint8 ``[h, w, 3]`` image looked at as ``look`` says, scored above
        ``threshold`` (the search's score threshold unless given)."""
        threshold = self.search.score_threshold if threshold is None else threshold
        if self.search.detector == "ssd":
            return self._detect_ssd(image, look, threshold)
        height, width = image.shape[:2]
        if look.square and not look.pad:  # face-api.js's way: padded to a square, then resized as TensorFlow does
            pixels = paddle.to_tensor(image.transpose(2, 0, 1)[None].astype(np.float32))
            with paddle.no_grad():
                batch = _scaled(_resized(_square(pixels, centred=False), look.size), det.MEAN_RGB).numpy()
            scale = look.size / max(width, height)
            shown = (_js_round(width * scale), _js_round(height * scale))
            return decode_boxes(self._run("detector", batch)[0], width, height, shown, threshold)
        border = round(look.pad * max(height, width))
        scale = look.size / (max(height, width) + 2 * border)
        # Resized first and bordered after: the same input as bordering the whole image, at a fraction of the cost.
        small = Image.fromarray(image).resize(
            (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR
        )
        framed = with_border(np.asarray(small), round(border * scale))
        shown = (framed.shape[1], framed.shape[0])
        cells = [-(-side // det.STRIDE) * det.STRIDE for side in shown]
        batch = np.zeros((1, 3, cells[1], cells[0]), np.float32)
        batch[0, :, : shown[1], : shown[0]] = framed.transpose(2, 0, 1)
        batch = (batch - np.array(det.MEAN_RGB, np.float32).reshape(1, 3, 1, 1)) / 255.0
        found = decode_boxes(self._run("detector", batch)[0], width + 2 * border, height + 2 * border, shown, threshold)
        return [det.Detection(moved_box(d.box, -border), d.score) for d in found]

    def _detect_ssd(self, image: np.ndarray, look: Look, threshold: float) -> list[det.Detection]:
        """SSD MobileNetV1 as face-api.js runs it (padded to a square on the far side, 512 px), in ``look``'s border."""
        border = round(look.pad * max(image.shape[:2]))
        framed = with_border(image, border)
        pixels = paddle.to_tensor(framed.transpose(2, 0, 1)[None].astype(np.float32))
        with paddle.no_grad():
            batch = ssd.scaled(_resized(_square(pixels, centred=False), ssd.INPUT_SIZE)).numpy()
        outputs = self._run("ssd", batch)[0]
        height, width = framed.shape[:2]
        found = ssd.decode_ssd(outputs, self.ssd.anchors.numpy()[0], width, height, threshold)
        return [det.Detection(moved_box(d.box, -border), d.score) for d in found]

    def detect(self, image: np.ndarray, largest: bool = False) -> list[det.Detection]:
        """The faces found by every look, overlapping boxes pooled by non-maximum suppression, best first.
        With ``largest`` (only the largest face is wanted), the looks are tried cheapest first and the first that
        finds any is kept."""
        return [face for face, _ in self._looked(image, largest, check=False)]

    def _looked(self, image: np.ndarray, largest: bool, check: bool) -> list[tuple[det.Detection, np.ndarray]]:
        """Detections pooled over the looks, with their landmarks; with ``check``, only those whose landmarks
        make a face (without, the landmarks are left as zeros). Looking for the largest face stops at the first
        look that finds one."""
        found: list[det.Detection] = []
        points: dict[tuple[float, ...], np.ndarray] = {}  # landmarks of each box located so far

        def confirmed() -> list[tuple[det.Detection, np.ndarray]]:
            scores = [d.score for d in found]
            kept = [found[i] for i in det.non_max_suppression([d.box for d in found], scores, det.IOU_THRESHOLD)]
            if not check:
                return [(d, np.zeros((68, 2))) for d in kept]
            new = [d.box for d in kept if d.box not in points]
            points.update(zip(new, self._landmarks(image, new), strict=True))
            faces = [(d, points[d.box]) for d in kept]
            return distinct(
                [face for face, confirmed in zip(faces, self._confirm(image, faces), strict=True) if confirmed]
            )

        threshold = self.search.low_threshold if check else self.search.score_threshold
        for look in self.search.looks(image.shape[1], image.shape[0]):
            found += self.detect_at(image, look, threshold)
            if largest and found and (faces := confirmed()):
                return faces
        return confirmed()

    def _landmarks(self, image: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> list[np.ndarray]:
        """The landmarks in each box, located again in the box they imply when the search refines them."""
        points = self.locate_all_landmarks(image, boxes)
        return self.locate_all_landmarks(image, [landmarks_box(p) for p in points]) if self.search.refine else points

    def _confirm(self, image: np.ndarray, faces: list[tuple[det.Detection, np.ndarray]]) -> list[bool]:
        """Whether each face's landmarks make a face, and for a low score, stay put when located again in their
        own box (the landmarks net run once on all such boxes)."""
        shaped = [plausible(points) for _, points in faces]
        unsure = [i for i, (d, _) in enumerate(faces) if shaped[i] and d.score < self.search.score_threshold]
        again = self.locate_all_landmarks(image, [aligned_box(faces[i][1]) for i in unsure])
        for i, moved_to in zip(unsure, again, strict=True):
            points = faces[i][1]
            shaped[i] = bool(np.abs(moved_to - points).mean() < STEADY * eye_distance(points))
        return shaped

    def locate(self, image: np.ndarray, largest: bool = False) -> list[Located]:
        """Every face with its landmarks, the detector's best first; when none is found upright, the faces of
        the image turned by each of the search's turns, until one is found (boxes and points in ``image``)."""
        if min(image.shape[:2]) < SMALLEST_FACE:
            return []
        check = self.search.check_landmarks
        found = self._looked(image, largest, check)
        if found:
            if not check:
                found = list(zip((d for d, _ in found), self._landmarks(image, [d.box for d, _ in found]), strict=True))
            return [Located(d.box, d.score, p) for d, p in found]
        for degrees in self.search.turns:
            view, back = turned(image, degrees)
            found = self._looked(view, largest, check=True)
            if found:
                return [Located(bounds(moved(corners(d.box), back)), d.score, moved(p, back)) for d, p in found]
        return self._whole_image_face(image) if self.search.whole_image else []

    def _whole_image_face(self, image: np.ndarray) -> list[Located]:
        """The image taken as a face crop when no detector finds one: the landmarks net on the whole image,
        kept when its points make a face and stay put when located again in their own box (score 0)."""
        height, width = image.shape[:2]
        points = self.locate_landmarks(image, (0.0, 0.0, float(width), float(height)))
        detection = det.Detection((0.0, 0.0, float(width), float(height)), 0.0)
        if not self._confirm(image, [(detection, points)])[0]:
            return []
        return [Located(aligned_box(points), 0.0, points)]

    def locate_landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """68 (x, y) points in image pixels for the face in ``box``."""
        return self.locate_all_landmarks(image, [box])[0]

    def locate_all_landmarks(
        self, image: np.ndarray, boxes: list[tuple[float, float, float, float]]
    ) -> list[np.ndarray]:
        """68 (x, y) points in image pixels for the face in each box, the landmarks net run once on them all (a
        box reaching out of the image is cut from the image inside a grey border, as the detector saw it)."""
        if not boxes:
            return []
        crops = [_landmarks_crop(image, box) for box in boxes]
        raw = self._run("landmarks", np.concatenate([batch for batch, _ in crops]))
        return [_landmarks_in_image(raw[i], place) for i, (_, place) in enumerate(crops)]

    def find(
        self, image: np.ndarray, alignment: str = DEFAULT_ALIGNMENT, size: int = CHIP_SIZE, largest: bool = False
    ) -> list[Face]:
        """Every face in a uint8 ``[h, w, 3]`` image (see :meth:`locate`; ``largest``: only the largest is
        wanted), the detector's best first, its chip cut by ``alignment``."""
        return [
            Face(face.box, face.score, face.landmarks, face_chip(image, face.landmarks, alignment, size))
            for face in self.locate(image, largest)
        ]

    def digest(self) -> str:
        """A short hash of both networks' weights and the search settings."""
        hasher = hashlib.sha256(repr((self.search, looks_for(640, 480))).encode())
        for key, value in sorted(self.state_dict().items()):
            hasher.update(key.encode())
            hasher.update(np.ascontiguousarray(value.numpy()).tobytes())
        return hasher.hexdigest()[:16]


def distinct(faces: list[tuple[det.Detection, np.ndarray]]) -> list[tuple[det.Detection, np.ndarray]]:
    """The faces in order, less any whose landmarks lie on an earlier one's (a larger box around a face that
    overlaps its own box too little to be suppressed, whose landmarks still settle on that face)."""
    kept: list[tuple[det.Detection, np.ndarray]] = []
    for detection, points in faces:
        centre, reach = points[36:68].mean(axis=0), eye_distance(points) / 2
        if all(np.hypot(*(centre - other[36:68].mean(axis=0))) > reach for _, other in kept):
            kept.append((detection, points))
    return kept


def _landmarks_crop(
    image: np.ndarray, box: tuple[float, float, float, float]
) -> tuple[np.ndarray, tuple[float, float, int, int, int]]:
    """The landmarks net's input ``[1, 3, 112, 112]`` for the face in ``box``, and where it was cut: (left, top,
    width, height, grey border)."""
    border = int(np.ceil(max(0.0, -box[0], -box[1], box[2] - image.shape[1], box[3] - image.shape[0])))
    image = with_border(image, border)
    box = moved_box(box, border)
    x, y, w, h = _clipped(box, image.shape[1], image.shape[0])
    crop = paddle.to_tensor(image[y : y + h, x : x + w].transpose(2, 0, 1)[None].astype(np.float32))
    with paddle.no_grad():
        batch = _scaled(_resized(_square(crop, centred=True), lm.INPUT_SIZE), lm.MEAN_RGB).numpy()
    return batch, (box[0], box[1], w, h, border)


def _landmarks_in_image(raw: np.ndarray, place: tuple[float, float, int, int, int]) -> np.ndarray:
    """The net's output for one crop -> 68 (x, y) points in the pixels of the image it was cut from."""
    left, top, w, h, border = place
    points = raw.reshape(68, 2).astype(np.float64)
    scale = lm.INPUT_SIZE / max(w, h)
    shown = np.array([w * scale, h * scale])
    padding = np.array([(shown[1] - shown[0]) / 2 if w < h else 0.0, (shown[0] - shown[1]) / 2 if h < w else 0.0])
    relative = (points * lm.INPUT_SIZE - padding) / shown
    return np.asarray(relative * np.array([w, h]) + np.array([left, top]) - border)


def moved_box(box: tuple[float, float, float, float], by: float) -> tuple[float, float, float, float]:
    """``box`` moved by ``by`` pixels along both axes (out of a border of ``-by``)."""
    return box[0] + by, box[1] + by, box[2] + by, box[3] + by


def corners(box: tuple[float, float, float, float]) -> np.ndarray:
    return np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]])


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
    left_eye, right_eye, mouth = eyes_and_mouth(points)
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
