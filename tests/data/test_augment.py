import numpy as np

from pdfewshot.data.augment import affine_distortion, background


def glyph() -> np.ndarray:
    image = np.full((28, 28, 1), 255, dtype=np.uint8)
    image[8:20, 13:15, 0] = 0  # a vertical stroke on white
    return image


def test_distortions_keep_shape_background_and_roughly_the_ink() -> None:
    rng = np.random.default_rng(0)
    image = glyph()
    changed = 0
    for _ in range(40):
        out = affine_distortion(image, rng)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert background(out) == 255  # uncovered corners are filled with paper, not black
        ink = (out < 128).sum()
        assert 0.4 * (image < 128).sum() <= ink <= 2.0 * (image < 128).sum()
        changed += not np.array_equal(out, image)
    # each of four parts applies with probability 1/2: all four are skipped 1 time in 16
    assert 25 <= changed <= 40


def test_distortions_are_seeded() -> None:
    first = [affine_distortion(glyph(), np.random.default_rng(3)) for _ in range(3)]
    again = [affine_distortion(glyph(), np.random.default_rng(3)) for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_colour_images() -> None:
    image = np.repeat(glyph(), 3, axis=2)
    out = affine_distortion(image, np.random.default_rng(1))
    assert out.shape == (28, 28, 3)


def test_affine_matrix_shifts_and_keeps_the_centre() -> None:
    from pdfewshot.data.augment import affine_matrix

    moved = affine_matrix((11, 11), angle=0.0, shear=(0.0, 0.0), scale=1.0, shift=(2.0, -1.0))
    np.testing.assert_allclose(moved @ [3.0, 4.0, 1.0], [5.0, 3.0, 1.0])
    turned = affine_matrix((11, 11), angle=37.0, shear=(0.2, -0.1), scale=1.1, shift=(0.0, 0.0))
    np.testing.assert_allclose(turned @ [5.0, 5.0, 1.0], [5.0, 5.0, 1.0], atol=1e-12)
