"""The base/novel split: which classes pretraining may see and which are kept for few-shot use; and the
base images kept out of the training steps when there are no validation classes."""

from collections.abc import Sequence

import numpy as np

from pdfewshot.data.imageset import ImageSet
from pdfewshot.errors import PdfewshotError
from pdfewshot.storage.metadata import Split

__all__ = ["Split", "hold_out_images", "split_classes"]


def _group(class_name: str) -> str:
    return class_name.rsplit("/", 1)[0] if "/" in class_name else ""


def split_classes(class_names: Sequence[str], novel_fraction: float, seed: int) -> Split:
    """Holds out a seeded ``novel_fraction`` of the alphabets (nested layouts) or of the classes.

    Holding out whole alphabets, as Omniglot's background/evaluation division does, keeps the novel
    classes from looking like near-copies of base ones. A fraction of 0 holds out nothing: every class
    is a base class (for a model evaluated on other data, such as Omniglot's runs).
    """
    if not 0.0 <= novel_fraction < 1.0:
        raise PdfewshotError(f"{novel_fraction}: must be at least 0 and below 1", "novel_fraction")
    groups = sorted({_group(name) for name in class_names})
    by_alphabet = len(groups) >= 2 and "" not in groups
    units = groups if by_alphabet else sorted(class_names)
    if len(class_names) < 2:
        named = f" ({class_names[0]})" if class_names else ""
        raise PdfewshotError(
            f"has {len(class_names)} class{named}: learning to tell classes apart needs images of at least 2, "
            "a folder for each",
            "data",
        )
    count = min(len(units) - 1, max(1, round(novel_fraction * len(units)))) if novel_fraction else 0
    rng = np.random.default_rng(seed)
    novel_units = {units[i] for i in rng.permutation(len(units))[:count]}
    novel = tuple(n for n in sorted(class_names) if (_group(n) if by_alphabet else n) in novel_units)
    base = tuple(n for n in sorted(class_names) if n not in set(novel))
    return Split(base=base, novel=novel, unit="alphabet" if by_alphabet else "class")


HELD_OUT_CLASSES = 100  # base classes that give images for the pair threshold, at most


def hold_out_images(images: ImageSet, seed: int) -> tuple[ImageSet, ImageSet]:
    """(kept, held out): a few seeded images of up to :data:`HELD_OUT_CLASSES` base classes kept out of the
    training steps, to choose a pair threshold on when there are no validation classes: 3 of each class of
    10 or more images, 2 of a class of 6 to 9, none of smaller ones (which keep what they have to train on)."""
    rng = np.random.default_rng([seed, 31])
    counts = np.bincount(images.labels, minlength=images.num_classes)
    classes = [c for c in rng.permutation(images.num_classes) if counts[c] >= 6][:HELD_OUT_CLASSES]
    held = [
        index
        for c in sorted(classes)
        for index in rng.choice(np.flatnonzero(images.labels == c), 3 if counts[c] >= 10 else 2, replace=False)
    ]
    keep = np.setdiff1d(np.arange(len(images.labels)), held)
    return images.subset_indices(keep), images.subset_indices(np.sort(np.asarray(held, dtype=np.int64)))
