"""Training-time distortions of images: ``affine`` for glyphs, ``photo`` for photographs.

``affine`` is Koch et al. (2015)'s distortions for Siamese training on Omniglot.

Each of rotation (+-10 degrees), shear (+-0.3 on each axis), scale (0.8-1.2) and translation (+-2 px
on each axis) is applied with probability 0.5, about the image centre. Uncovered pixels take the
image's background (the median of its border), so a black-on-white glyph stays on white.

Pillow does the resampling. ``paddle.vision.transforms.functional.affine`` was the first choice, but
in Paddle 3.3 its PIL path hands the fill colour to Pillow's ``transform`` as the positional ``fill``
argument rather than ``fillcolor``, so uncovered pixels always come out black.
"""

import numpy as np
import paddle.vision.transforms.functional as TF
from PIL import Image

from pdfewshot.config import AUGMENT_NAMES

AUGMENTATIONS = AUGMENT_NAMES


def background(image: np.ndarray) -> int:
    """The median of the border pixels: the paper colour of a scanned or drawn glyph."""
    border = np.concatenate([image[0].ravel(), image[-1].ravel(), image[:, 0].ravel(), image[:, -1].ravel()])
    return int(np.median(border))


def affine_matrix(size: tuple[int, int], angle: float, shear: tuple[float, float], scale: float,
                  shift: tuple[float, float]) -> np.ndarray:  # fmt: skip
    """Forward 3x3 map of output from input pixel coordinates: about the centre, then shifted."""
    centre = np.array([(size[0] - 1) / 2, (size[1] - 1) / 2])
    radians = np.deg2rad(angle)
    rotation = np.array([[np.cos(radians), -np.sin(radians)], [np.sin(radians), np.cos(radians)]])
    linear = rotation @ np.array([[1.0, shear[0]], [shear[1], 1.0]]) * scale
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = centre + np.asarray(shift) - linear @ centre
    return matrix


def affine_distortion(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly distorted copy of a uint8 ``[h, w, c]`` image (the image itself when no part is drawn)."""

    def maybe(low: float, high: float, neutral: float) -> float:
        return float(rng.uniform(low, high)) if rng.random() < 0.5 else neutral

    angle = maybe(-10.0, 10.0, 0.0)
    shear = (maybe(-0.3, 0.3, 0.0), maybe(-0.3, 0.3, 0.0))
    scale = maybe(0.8, 1.2, 1.0)
    shift = (maybe(-2.0, 2.0, 0.0), maybe(-2.0, 2.0, 0.0))
    if angle == 0.0 and shear == (0.0, 0.0) and scale == 1.0 and shift == (0.0, 0.0):
        return image
    channels = image.shape[2]
    picture = Image.fromarray(image[:, :, 0] if channels == 1 else image)
    # Pillow maps each output pixel back to the input, so it takes the inverse matrix.
    inverse = np.linalg.inv(affine_matrix(picture.size, angle, shear, scale, shift))
    fill = background(image)
    moved = picture.transform(
        picture.size,
        Image.Transform.AFFINE,
        tuple(inverse[:2].ravel().tolist()),
        resample=Image.Resampling.BILINEAR,
        fillcolor=fill if channels == 1 else (fill,) * channels,
    )
    array = np.asarray(moved, dtype=np.uint8)
    return array[:, :, None] if channels == 1 else array


def photo_distortion(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly distorted copy of a uint8 ``[h, w, c]`` photograph: a random crop of 50-100% of its area
    (aspect ratio 3/4 to 4/3) resized back, a horizontal flip with probability 0.5, and brightness,
    contrast and (colour pictures) saturation each scaled by a factor in [0.7, 1.3]: the usual
    distortions for learning from photographs (Szegedy et al. 2015's crops, as ``RandomResizedCrop``).

    ``paddle.vision.transforms.functional`` does the work; the parameters are drawn from ``rng``, since the
    transform classes draw from the global ``random`` and ``numpy.random`` generators, which would make
    a seeded or resumed run distort differently.
    """
    height, width, channels = image.shape
    picture = Image.fromarray(image[:, :, 0] if channels == 1 else image)
    for _ in range(10):
        area = rng.uniform(0.5, 1.0) * height * width
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        crop_w, crop_h = round(np.sqrt(area * ratio)), round(np.sqrt(area / ratio))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
            picture = TF.crop(picture, top, left, crop_h, crop_w)
            break
    picture = TF.resize(picture, (height, width), interpolation="bilinear")
    if rng.random() < 0.5:
        picture = TF.hflip(picture)
    picture = TF.adjust_brightness(picture, rng.uniform(0.7, 1.3))
    picture = TF.adjust_contrast(picture, rng.uniform(0.7, 1.3))
    if channels == 3:
        picture = TF.adjust_saturation(picture, rng.uniform(0.7, 1.3))
    array = np.asarray(picture, dtype=np.uint8)
    return array[:, :, None] if channels == 1 else array


def augment_batch(images: np.ndarray, augment: str, rng: np.random.Generator) -> np.ndarray:
    """A batch ``[n, h, w, c]`` with ``augment`` applied to each image (the batch itself for "none")."""
    if augment == "none":
        return images
    distort = photo_distortion if augment == "photo" else affine_distortion
    return np.stack([distort(image, rng) for image in images])
