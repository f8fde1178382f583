"""Writing the built-in glyph set to disk as an ordinary image folder."""

import shutil
import tempfile
from pathlib import Path

from PIL import Image

from pdfewshot.data.glyphs import GlyphSpec, iter_glyphs
from pdfewshot.errors import PdfewshotError


def write_glyph_folder(out: Path, alphabets: int, characters: int, drawers: int, seed: int) -> int:
    """Writes the glyphs as PNGs under ``out``; built in a temporary folder, then renamed into place."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PdfewshotError(f"OUT {out}: already exists and is not an empty folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as error:
        raise PdfewshotError(f"OUT {out}: cannot write there ({error.strerror})") from None
    try:
        count = 0
        for relative, image in iter_glyphs(GlyphSpec(alphabets, characters, drawers, seed)):
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target)
            count += 1
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return count
