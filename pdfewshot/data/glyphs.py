"""The built-in data set: Omniglot-like handwritten glyphs, generated from a seed, no download.

Each alphabet owns a few stroke primitives (curves through 3-5 control points); each of its
characters places one to three of them in the unit box. Characters of one alphabet therefore share a
look, as in Omniglot, which makes telling them apart a real few-shot task. Each drawing of a
character is a different "hand": jittered control points, a small rotation, shear, scale and shift,
and its own pen width. Images are 105x105 black-on-white greyscale, like Omniglot's, and go through
the same resizing as any other source.

Every drawing is seeded by (seed, alphabet, character, drawer) alone, so any one image can be
regenerated without the others and the set does not depend on the order of generation.
"""

from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pdfewshot.data.cache import cache_root

CANVAS = 105
# Bump when the drawing code changes, so that cached sets drawn by older code are not reused.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class GlyphSpec:
    """Size of the built-in set: ``alphabets * characters`` classes of ``drawers`` images each."""

    alphabets: int = 24
    characters: int = 15
    drawers: int = 20
    seed: int = 0


@dataclass(frozen=True)
class Character:
    """A character as strokes, each an array of control points ``[k, 2]`` in the unit box."""

    strokes: tuple[np.ndarray, ...]


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([abs(int(p)) for p in parts]))


def _catmull_rom(points: np.ndarray, samples_per_segment: int = 10) -> np.ndarray:
    """A smooth curve through the control points (centripetal tangents are not needed at this size)."""
    if len(points) < 3:
        t = np.linspace(0.0, 1.0, samples_per_segment + 1)[:, None]
        line: np.ndarray = points[0] * (1 - t) + points[-1] * t
        return line
    padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None]
    curve = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        curve.append(
            0.5
            * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    curve.append(points[-1:])
    return np.vstack(curve)


def make_alphabet(spec: GlyphSpec, alphabet: int) -> list[Character]:
    """The characters of one alphabet, built from that alphabet's stroke primitives."""
    rng = _rng(spec.seed, alphabet, 1_000_003)
    curviness = rng.uniform(0.0, 0.35)
    primitives = []
    for _ in range(rng.integers(4, 8)):
        count = int(rng.integers(3, 6))
        steps = rng.normal(0.0, 1.0, size=(count - 1, 2))
        steps /= np.linalg.norm(steps, axis=1, keepdims=True) + 1e-9
        # Straight-ish strokes keep their direction; curvy ones turn between segments.
        turn = rng.normal(0.0, curviness * 3, size=(count - 1, 1))
        directions = steps[:1] * (1 - np.abs(turn)) + steps * np.abs(turn)
        points = np.vstack([np.zeros((1, 2)), np.cumsum(directions, axis=0)])
        points -= points.mean(axis=0)
        points /= np.abs(points).max() + 1e-9
        primitives.append(points * 0.5)
    strokes_mean = rng.uniform(1.5, 2.8)
    characters = []
    for _ in range(spec.characters):
        strokes = []
        for _ in range(int(np.clip(rng.poisson(strokes_mean), 1, 4))):
            base = primitives[int(rng.integers(len(primitives)))]
            angle = rng.integers(4) * np.pi / 2 + rng.normal(0.0, 0.2)
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            scale = rng.uniform(0.45, 0.9)
            centre = rng.uniform(0.3, 0.7, size=2)
            strokes.append(np.clip(base @ rotation.T * scale + centre, 0.05, 0.95))
        characters.append(Character(strokes=tuple(strokes)))
    return characters


def draw(character: Character, rng: np.random.Generator, size: int = CANVAS) -> np.ndarray:
    """One handwritten drawing of a character: uint8 ``[size, size]``, black ink on white."""
    angle = np.deg2rad(rng.uniform(-8.0, 8.0))
    shear = rng.uniform(-0.15, 0.15)
    scale = rng.uniform(0.85, 1.1, size=2)
    shift = rng.uniform(-0.06, 0.06, size=2)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scale)
    pen = max(1, round(rng.uniform(2.5, 5.0) * size / CANVAS))

    canvas = Image.new("L", (size, size), 255)
    pencil = ImageDraw.Draw(canvas)
    margin = 0.12 * size
    for stroke in character.strokes:
        points = stroke + rng.normal(0.0, 0.025, size=stroke.shape)
        curve = _catmull_rom(points)
        curve = (curve - 0.5) @ affine.T + 0.5 + shift
        pixels = margin + curve * (size - 2 * margin)
        pencil.line([tuple(p) for p in pixels.tolist()], fill=0, width=pen, joint="curve")
    return np.asarray(canvas, dtype=np.uint8)


def iter_glyphs(spec: GlyphSpec) -> Iterator[tuple[str, np.ndarray]]:
    """Yields ``("alphabetAA/characterCC/drawerDD.png", image)`` for the whole set, in a fixed order."""
    for a in range(spec.alphabets):
        for c, character in enumerate(make_alphabet(spec, a)):
            for d in range(spec.drawers):
                image = draw(character, _rng(spec.seed, a, c, d))
                yield f"alphabet{a:02d}/character{c:02d}/drawer{d:02d}.png", image


def glyph_images(spec: GlyphSpec) -> tuple[list[str], np.ndarray]:
    """Relative paths and images ``[n, 105, 105]`` of the whole set, from the cache when there.

    Drawing the default set takes ~5 s on one core; reading it back from its ~1 MB cache, ~0.5 s.
    A cache that cannot be read or written is ignored: the set is drawn again.
    """
    root = cache_root()
    cached = (root or Path(".")) / ("glyphs-v{}-{}x{}x{}-seed{}.npz".format(GENERATOR_VERSION, *astuple(spec)))
    if root is not None and cached.is_file():
        try:
            with np.load(cached) as stored:
                return [str(p) for p in stored["paths"]], stored["images"]
        except (OSError, ValueError, KeyError):
            pass
    paths, images = [], []
    for relative, image in iter_glyphs(spec):
        paths.append(relative)
        images.append(image)
    stacked = np.stack(images)
    if root is None:
        return paths, stacked
    try:
        from pdfewshot.storage.atomic import atomic_write

        atomic_write(cached, lambda temporary: _save_npz(temporary, paths, stacked))
    except Exception:  # a cache is an optimisation: a read-only home must not stop the tool
        pass
    return paths, stacked


def _save_npz(path: str, paths: list[str], images: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.savez_compressed(handle, paths=np.array(paths), images=images)
