"""Writing the built-in glyph set to disk as an ordinary image folder."""

from pathlib import Path

from PIL import Image

from pdfewshot.data.glyphs import GlyphSpec, iter_glyphs
from pdfewshot.errors import PdfewshotError, about
from pdfewshot.storage.atomic import atomic_folder


def write_glyph_folder(out: Path, alphabets: int, characters: int, drawers: int, seed: int) -> int:
    """Writes the glyphs as PNGs under ``out``; built in a temporary folder, then renamed into place."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PdfewshotError(f"{out}: already exists and is not an empty folder", "out")
    count = 0
    with about("out"), atomic_folder(out) as staging:
        for relative, image in iter_glyphs(GlyphSpec(alphabets, characters, drawers, seed)):
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target)
            count += 1
    return count
