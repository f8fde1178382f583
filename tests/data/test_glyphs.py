from pathlib import Path

import numpy as np

from pdfewshot.data.glyphs import GlyphSpec, glyph_images, iter_glyphs

SMALL = GlyphSpec(alphabets=3, characters=4, drawers=5, seed=7)


def test_same_seed_same_glyphs_other_seed_other_glyphs() -> None:
    first = [image for _, image in iter_glyphs(SMALL)]
    again = [image for _, image in iter_glyphs(SMALL)]
    other = [image for _, image in iter_glyphs(GlyphSpec(3, 4, 5, seed=8))]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_layout_and_counts() -> None:
    paths = [path for path, _ in iter_glyphs(SMALL)]
    assert len(paths) == 3 * 4 * 5 == len(set(paths))
    assert paths[0] == "alphabet00/character00/drawer00.png"
    image = next(iter_glyphs(SMALL))[1]
    assert image.shape == (105, 105) and image.dtype == np.uint8
    assert image.min() == 0 and image.max() == 255  # ink on paper


def test_drawings_of_a_character_resemble_each_other_more_than_other_characters() -> None:
    images = np.stack([image for _, image in iter_glyphs(SMALL)]).astype(np.float32)
    ink = (255 - images).reshape(3 * 4, 5, -1)
    ink /= np.linalg.norm(ink, axis=2, keepdims=True)
    means = ink.mean(axis=1)
    # nearest class mean (leave-one-in) recovers the character far above chance (1/12)
    predicted = np.argmax(ink.reshape(60, -1) @ means.T, axis=1)
    assert np.mean(predicted == np.repeat(np.arange(12), 5)) > 0.6


def test_cache_returns_exactly_what_drawing_gives(private_cache: Path) -> None:
    drawn = np.stack([image for _, image in iter_glyphs(SMALL)])
    paths, first = glyph_images(SMALL)
    assert any(private_cache.glob("glyphs-*.npz"))
    paths_again, cached = glyph_images(SMALL)
    assert paths == paths_again == [p for p, _ in iter_glyphs(SMALL)]
    np.testing.assert_array_equal(first, drawn)
    np.testing.assert_array_equal(cached, drawn)


def test_damaged_cache_is_redrawn(private_cache: Path) -> None:
    glyph_images(SMALL)
    for path in private_cache.glob("glyphs-*.npz"):
        path.write_bytes(b"garbage")
    _, images = glyph_images(SMALL)
    np.testing.assert_array_equal(images, np.stack([image for _, image in iter_glyphs(SMALL)]))
