"""Settings chosen from the data: line drawings keep 28 px and affine distortions, photographs get a
larger size and photo distortions, the built-in set keeps what it was measured with."""

from pathlib import Path

import numpy as np
from PIL import Image

from pdfewshot.config import BUILTIN_SOURCE
from pdfewshot.data.profile import GLYPH_SIZE, PHOTO_SIZE, profile_sources


def write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_line_drawings_photographs_and_the_builtin_set(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(4):
        drawing = np.full((40, 40), 255, dtype=np.uint8)
        drawing[10 + i, 5:35] = 0  # ink on paper
        write(tmp_path / "glyphs" / f"c{i % 2}" / f"{i}.png", drawing)
        write(tmp_path / "photos" / f"c{i % 2}" / f"{i}.jpg", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
        write(tmp_path / "faces" / f"c{i % 2}" / f"{i}.png", rng.integers(60, 200, (40, 40), dtype=np.uint8))
    glyphs = profile_sources([str(tmp_path / "glyphs")])
    assert (glyphs.kind, glyphs.image_size, glyphs.augment, glyphs.user_data) == ("glyphs", GLYPH_SIZE, "affine", True)
    assert (glyphs.backbone, glyphs.loss) == ("conv4", "ce")
    photos = profile_sources([str(tmp_path / "photos")])
    assert (photos.kind, photos.image_size, photos.augment) == ("photos", PHOTO_SIZE, "photo")
    assert (photos.backbone, photos.loss) == ("conv4", "ce")
    assert profile_sources([str(tmp_path / "faces")]).kind == "photos"  # greyscale with tones: a photograph
    builtin = profile_sources([BUILTIN_SOURCE])
    assert (builtin.image_size, builtin.augment, builtin.user_data) == (GLYPH_SIZE, "none", False)
