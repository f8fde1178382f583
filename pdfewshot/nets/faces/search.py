"""Where the tiny detector looks for faces in an image, and what counts as a face once its landmarks are found.

The detector's anchors span faces of about 50-330 px of its input, a range of six: one input size cannot see a
face that fills a 92 px ID photo and one 40 px wide in a 640 px group photo. So the image is looked at several
times (:class:`Look`), each look seeing another range of face sizes:

- with a grey border half the image's longer side wide, at 160 and 224 px: faces that fill the frame, which
  without context around them are not taken for faces (on 628 tight grey portraits of lfw_dev's people a face
  was found in 45% without the border, 99% with it: docs/results.md, Faces);
- as it is at 320 px (portraits, faces a quarter of the image or more);
- near its own size, up to 640 px and as a rectangle rather than a square (the padding to a square would cost a
  quarter more for a 4:3 photo), for the small faces of group photos (56 px faces of a 640x480 scene: all found).

Boxes from every look are pooled by non-maximum suppression. A face the detector scores above
:data:`SCORE_THRESHOLD` is kept only if its 68 landmarks make a face (:func:`plausible`), which is what lets the
threshold sit below the package's 0.5 without taking backgrounds for faces. When nothing is found, the image is
turned by each of :data:`TURNS` in turn (heads tilted 45 degrees are missed upright).
"""

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

GREY = (128, 128, 128)
SCORE_THRESHOLD = 0.3  # below face-api.js's 0.5: landmarks that make a face confirm what is kept
# A detection scored between these needs steady landmarks as well: located again in the box they span, they
# move by less than STEADY x the eyes' distance (tight portraits 0.01-0.1; backgrounds mostly more).
LOW_THRESHOLD, STEADY = 0.1, 0.1
TURNS = (45.0, -45.0)  # degrees the image is turned when nothing is found upright
NATIVE_LIMIT = 640  # the largest look's longer side
STRIDE = 32  # the detector's input must be a multiple of this
# The tiny detector (the default), or SSD MobileNetV1 (measured against it in benchmarks/faces.py: slower, and
# no more faces found in any framing there).
DETECTORS = ("tiny", "ssd")
SSD_SIZE = 512


@dataclass(frozen=True)
class Look:
    """One pass of the detector: the image with a grey border ``pad`` x its longer side wide on every side,
    resized so that its longer side is ``size``; ``square``: padded to a square with black on the far side and
    resized whole (face-api.js's own way), else resized and padded to multiples of 32 only."""

    size: int
    pad: float = 0.0
    square: bool = True


@dataclass(frozen=True)
class FaceSearch:
    """How faces are looked for: by which of :data:`DETECTORS`, at fixed ``sizes`` (square, as face-api.js does;
    None: looks chosen from the image by :func:`looks_for`), the detector's ``score_threshold``, the ``turns``
    tried when nothing is found, and whether a face's landmarks must make a face (``check_landmarks``)."""

    detector: str = "tiny"
    sizes: tuple[int, ...] | None = None
    score_threshold: float = SCORE_THRESHOLD
    low_threshold: float = LOW_THRESHOLD
    turns: tuple[float, ...] = TURNS
    check_landmarks: bool = True
    refine: bool = True
    # When nothing is found, take the whole image for a face crop if its landmarks make a steady face (measured
    # in benchmarks/faces.py, not the default: it took background crops for faces).
    whole_image: bool = False

    def looks(self, width: int, height: int) -> tuple[Look, ...]:
        if self.sizes is not None:
            return tuple(Look(size) for size in self.sizes)
        if self.detector == "ssd":  # its anchors are fixed for 512 px: only a border changes what it sees
            return (Look(SSD_SIZE), Look(SSD_SIZE, pad=0.5))
        return looks_for(width, height)


DEFAULT_SEARCH = FaceSearch()
# face-api.js's own settings (detectAllFaces with TinyFaceDetectorOptions at 416 px), for checking the port.
PACKAGE_SEARCH = FaceSearch(
    sizes=(416,), score_threshold=0.5, low_threshold=0.5, turns=(), check_landmarks=False, refine=False
)
# The same with SsdMobilenetv1Options (512 px, minConfidence 0.5).
PACKAGE_SSD_SEARCH = replace(PACKAGE_SEARCH, detector="ssd", sizes=(SSD_SIZE,))


def looks_for(width: int, height: int) -> tuple[Look, ...]:
    """The looks at an image of ``width`` x ``height``, cheapest first (so that a search for the largest face
    can stop at the first look that finds one)."""
    looks = [Look(160, square=False), Look(160, pad=0.5, square=False), Look(224, pad=0.5, square=False)]
    looks.append(Look(320, pad=0.25, square=False))
    native = min(NATIVE_LIMIT, -(-max(width, height) // STRIDE) * STRIDE)
    if native > 320:
        looks.append(Look(native, square=False))
    return tuple(looks)


def with_border(image: np.ndarray, pixels: int) -> np.ndarray:
    """``image`` inside a grey border ``pixels`` wide."""
    if pixels <= 0:
        return image
    height, width = image.shape[:2]
    out = np.empty((height + 2 * pixels, width + 2 * pixels, 3), np.uint8)
    out[...] = GREY
    out[pixels : pixels + height, pixels : pixels + width] = image
    return out


def turned(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` turned anticlockwise by ``degrees`` (enlarged to hold it all, grey around it), and the 2x3
    matrix that takes (x, y) of the turned image back to the image's own."""
    picture = Image.fromarray(image).rotate(degrees, Image.Resampling.BILINEAR, expand=True, fillcolor=GREY)
    theta = np.deg2rad(degrees)
    cos, sin = np.cos(theta), np.sin(theta)
    # About the centres (pixel centres at +0.5): turned = R (own - c) + c', own = R^T (turned - c') + c.
    centre = np.array([image.shape[1], image.shape[0]]) / 2
    turned_centre = np.array([picture.width, picture.height]) / 2
    back = np.array([[cos, -sin], [sin, cos]])
    return np.asarray(picture), np.hstack([back, (centre - back @ turned_centre)[:, None]])


def moved(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(x, y) points ``[n, 2]`` taken through a 2x3 affine ``matrix``."""
    return np.asarray(points @ matrix[:, :2].T + matrix[:, 2])


def bounds(points: np.ndarray) -> tuple[float, float, float, float]:
    left, top = points.min(axis=0)
    right, bottom = points.max(axis=0)
    return float(left), float(top), float(right), float(bottom)


# Where the detector's box lies around a face, in units of the mean eye-to-mouth distance from the centre of the
# eyes and mouth: measured on 200 lfw_dev portraits found at 160 or 320 px (box centre 0.29 below that point,
# box 2.6 wide and 2.5 high). Landmarks are located again in this box, so that they depend less on which look
# found the face (a look that saw the face small draws a rougher box).
BOX_DOWN, BOX_WIDTH, BOX_HEIGHT = 0.285, 2.63, 2.535


EYES_MOUTH = (slice(36, 42), slice(42, 48), slice(48, 68))  # left eye, right eye, mouth of the 68 points


def eyes_and_mouth(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centres of the left eye, the right eye and the mouth of 68 landmarks."""
    left_eye, right_eye, mouth = (points[part].mean(axis=0) for part in EYES_MOUTH)
    return left_eye, right_eye, mouth


def landmarks_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """The box the detector would draw around the face whose 68 landmarks are ``points``."""
    left_eye, right_eye, mouth = eyes_and_mouth(points)
    unit = (np.linalg.norm(mouth - left_eye) + np.linalg.norm(mouth - right_eye)) / 2
    centre_x, centre_y = (left_eye + right_eye + mouth) / 3 + np.array([0.0, BOX_DOWN * unit])
    half_w, half_h = BOX_WIDTH * unit / 2, BOX_HEIGHT * unit / 2
    return float(centre_x - half_w), float(centre_y - half_h), float(centre_x + half_w), float(centre_y + half_h)


def eye_distance(points: np.ndarray) -> float:
    left_eye, right_eye, _ = eyes_and_mouth(points)
    return float(np.hypot(*(right_eye - left_eye)))


def plausible(points: np.ndarray) -> bool:
    """Whether 68 landmarks make a face: levelled by the eyes, the eyes lie above the nose's tip and the nose
    above the mouth, the eyes are neither merged nor further apart than the eye-to-mouth height allows, and the
    head is tilted less than 70 degrees."""
    left_eye, right_eye, mouth = eyes_and_mouth(points)
    across = right_eye - left_eye
    apart = float(np.hypot(*across))
    if apart < 1e-6 or abs(np.degrees(np.arctan2(across[1], across[0]))) > 70:
        return False
    cos, sin = across / apart
    level = (np.array([points[30], mouth]) - (left_eye + right_eye) / 2) @ np.array([[cos, -sin], [sin, cos]])
    nose_down, mouth_down = level[0, 1], level[1, 1]
    return bool(0 < nose_down < mouth_down and 0.5 < mouth_down / apart < 2.0)
