"""One image's bytes -> the pixels a network takes: decoded by Pillow, then centre-cropped to a square and
resized, or handed to a :class:`Shaper` that makes the rows instead (the face route's: the aligned chip of
the image's largest face). Both the decoding processes of the cache and the stages that read single files
go through :func:`shape_picture`, so an image becomes the same row wherever it enters.
"""

import io
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pdfewshot.errors import UnusableImage

GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
# What Pillow raises for a file that is not an image, is empty or is cut short.
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


class Shaper(Protocol):
    """Makes an image's row in place of centre-crop-and-resize; raises :class:`UnusableImage` for an image
    it cannot use. ``identity`` names what decides its output (it is part of the decoded cache's key)."""

    identity: str

    def __call__(self, picture: Image.Image, size: int) -> np.ndarray: ...


def decode_image(raw: bytes | np.ndarray) -> Image.Image:
    """A Pillow image from encoded bytes (or an array), fully decoded so damage shows here."""
    if isinstance(raw, np.ndarray):
        return Image.fromarray(raw)
    image = Image.open(io.BytesIO(raw))
    image.load()  # decode now, so that truncated files fail here and not later
    return image


def image_to_array(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """uint8 ``[size, size, channels]``: centre-cropped to square, resized, transparency on white."""
    mode = "L" if channels == 1 else "RGB"
    image = flattened(image)
    image = ImageOps.fit(image.convert(mode), (size, size), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if channels == 1 else array


def flattened(image: Image.Image) -> Image.Image:
    """Transparent pixels on white rather than black, as a viewer shows them."""
    if image.mode in ("RGBA", "LA", "P"):
        backdrop = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(backdrop, image.convert("RGBA"))
    return image


def shape_picture(picture: Image.Image, size: int, channels: int, shaper: Shaper | None) -> np.ndarray:
    """The row of a decoded picture: by ``shaper`` when given (three channels), else centre crop and resize."""
    if shaper is None:
        return image_to_array(picture, size, channels)
    return shaper(flattened(picture).convert("RGB"), size)


def why_skipped(error: Exception) -> str:
    """The reason an image is skipped, as reports show it."""
    return str(error) if isinstance(error, UnusableImage) else f"unreadable image: {error}"


SKIPPED = (*UNREADABLE, UnusableImage)  # what reading an image may skip it for
