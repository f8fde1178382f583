"""Image sources, the built-in glyph set, class splits and samplers. Knows nothing of nets or stages."""

from pdfewshot.data.imageset import ImageSet

__all__ = ["ImageSet"]
