"""What kind of images a data source holds, to choose the settings that fit it when none are given.

Your own data trains the recipe measured best on it from scratch, on Omniglot and on Caltech-101
photographs alike (CHANGELOG.md, 0.3.0): Conv-4 with softmax over the base classes. Glyph-like data
(greyscale line drawings such as Omniglot: nearly every pixel is paper or ink) keeps 28 px and Koch et
al.'s affine distortions; photographs (colour, or greyscale with tones, such as face portraits) get
84 px and photo distortions. The built-in set keeps the main path it was measured with (ResNet18,
cosine-MSE triples after a softmax warm-up), as does an ImageNet start. The choice is a starting
point: an explicit option always wins.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np

from pdfewshot.config import BUILTIN_SOURCE
from pdfewshot.data.decoding import GREY_MODES, UNREADABLE, decode_image
from pdfewshot.data.sources import iter_source

GLYPH_SIZE = 28
PHOTO_SIZE = 84  # chosen by accuracy per minute on photographs (CHANGELOG.md, 0.3.0)
IMAGENET_SIZE = 224  # photographs from ImageNet weights, which were made at this size (docs/results.md)
SAMPLE = 64  # images looked at per source
INK_OR_PAPER = 0.85  # share of pixels within 40 levels of black or white for a line drawing


@dataclass(frozen=True)
class DataProfile:
    """The kind of images and the settings chosen for them."""

    kind: str  # "builtin", "glyphs", "photos", or "none" (no data: weights kept as they start)
    image_size: int
    augment: str
    user_data: bool  # False for the built-in set, which keeps its held-out alphabets
    backbone: str = "resnet18"
    loss: str = "cosine-mse"


def _is_line_drawing(pixels: np.ndarray) -> bool:
    extreme = np.mean((pixels < 40) | (pixels > 215))
    return bool(extreme >= INK_OR_PAPER)


def profile_sources(sources: Sequence[str]) -> DataProfile:
    """The profile of the sources, from the first :data:`SAMPLE` images of each (in the order a source is
    read; a few classes' worth is enough to tell drawings from photographs)."""
    if not sources:
        return DataProfile("none", PHOTO_SIZE, "none", user_data=True, backbone="resnet18")
    if all(source == BUILTIN_SOURCE for source in sources):
        return DataProfile("builtin", GLYPH_SIZE, "none", user_data=False)
    drawings = photos = 0
    for source in sources:
        if source == BUILTIN_SOURCE:
            drawings += 1
            continue
        for _, read in islice(iter_source(source), SAMPLE):
            try:
                image = decode_image(read())
            except UNREADABLE:
                continue
            grey = image.mode in GREY_MODES
            if grey and _is_line_drawing(np.asarray(image.convert("L"))):
                drawings += 1
            else:
                photos += 1
    if drawings > photos:
        return DataProfile("glyphs", GLYPH_SIZE, "affine", user_data=True, backbone="conv4", loss="ce")
    return DataProfile("photos", PHOTO_SIZE, "photo", user_data=True, backbone="conv4", loss="ce")
