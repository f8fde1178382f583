"""One image's bytes -> the pixels a network takes: decoded by Pillow, then centre-cropped to a square and
resized, or handed to a :class:`Shaper` that makes the rows instead (the face route's: the aligned chip of
the image's largest face). Both the decoding processes of the cache and the stages that read single files
go through :func:`shape_picture`, so an image becomes the same row wherever it enters.
"""

import io
import threading
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pdfewshot.errors import UnusableImage

GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
# Images are decoded at most this large (8192 x 8192, about 200 MB as RGB): a JPEG larger than WORKING_SIDE
# is decoded reduced (by 2, 4 or 8, which its format allows for free), so one of up to 64 times this many
# pixels is read; any other image of more pixels is refused before it is decoded.
MAX_PIXELS = 8192 * 8192
WORKING_SIDE = 2048  # a decoded image with a longer side is shrunk to it at once: no stage looks at more
JPEG_REDUCTION = 8  # the most libjpeg reduces by while decoding
DECODED_FROM = "pdfewshot_decoded_from"  # Image.info key: the size of an image decode_image made smaller


class ImageTooLarge(ValueError):
    """An image with more pixels than :data:`MAX_PIXELS` once decoded as small as its format allows."""


# What Pillow raises for a file that is not an image, is empty or is cut short, and an image too large.
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError)
_OPENING = threading.Lock()  # Pillow's own pixel limit is lifted while a file is opened: see open_image


class Shaper(Protocol):
    """Makes an image's row in place of centre-crop-and-resize; raises :class:`UnusableImage` for an image
    it cannot use. ``identity`` names what decides its output (it is part of the decoded cache's key)."""

    identity: str

    def __call__(self, picture: Image.Image, size: int) -> np.ndarray: ...


def decode_image(raw: bytes | np.ndarray) -> Image.Image:
    """A Pillow image from encoded bytes (or an array), fully decoded so damage shows here, with its longer
    side at most :data:`WORKING_SIDE`. A large JPEG is decoded reduced; an image that would still have more
    than :data:`MAX_PIXELS` is refused (:class:`ImageTooLarge`) without being decoded."""
    if isinstance(raw, np.ndarray):
        return Image.fromarray(raw)
    image = open_image(raw)
    width, height = image.size
    if image.format == "JPEG" and max(width, height) > WORKING_SIDE:
        image.draft(None, (WORKING_SIDE, WORKING_SIDE))  # the smallest reduction keeping that much
    if image.size[0] * image.size[1] > MAX_PIXELS:
        most = MAX_PIXELS * (JPEG_REDUCTION**2 if image.format == "JPEG" else 1)
        raise ImageTooLarge(
            f"{width}x{height} pixels, more than pdfewshot decodes ({most / 1e6:.0f} million for "
            f"{image.format or 'this format'}); shrink it first"
        )
    image.load()  # decode now, so that truncated files fail here and not later
    if max(image.size) > WORKING_SIDE:
        image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS)
    if image.size != (width, height):
        image.info[DECODED_FROM] = (width, height)
    return image


def decoded_scale(picture: Image.Image) -> tuple[float, float]:
    """How many of the file's pixels one pixel of ``picture`` stands for, across and down (1 unless
    :func:`decode_image` made it smaller): what takes a position in the picture back to the file's."""
    width, height = picture.info.get(DECODED_FROM, picture.size)
    return width / picture.size[0], height / picture.size[1]


def open_image(raw: bytes) -> Image.Image:
    """``Image.open`` without Pillow's decompression-bomb error, which would refuse a huge JPEG that
    :func:`decode_image` decodes reduced; the size is checked there instead, before anything is decoded."""
    with _OPENING:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(io.BytesIO(raw))
        finally:
            Image.MAX_IMAGE_PIXELS = limit


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
    if isinstance(error, ImageTooLarge):
        return f"too large: {error}"
    return str(error) if isinstance(error, UnusableImage) else f"unreadable image: {error}"


SKIPPED = (*UNREADABLE, UnusableImage)  # what reading an image may skip it for
