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


HELD_OUT_SAME_PAIRS = 200  # same-class pairs the held-out images give, about: enough to choose a threshold on


def hold_out_images(images: ImageSet, seed: int) -> tuple[ImageSet, ImageSet]:
    """(kept, held out): a few seeded images of some base classes kept out of the training steps, to choose a
    pair threshold on when there are no validation classes. A class of ``n >= 6`` images gives ``min(5, n // 3)``
    (so it keeps two thirds at least; smaller classes keep all theirs), and classes are taken in a seeded order
    until they give :data:`HELD_OUT_SAME_PAIRS` same-class pairs: few images leave training, as many pairs as
    can be made from them."""
    rng = np.random.default_rng([seed, 31])
    counts = np.bincount(images.labels, minlength=images.num_classes)
    held: list[int] = []
    pairs = 0
    for c in rng.permutation(images.num_classes):
        if counts[c] < 6:
            continue
        taken = min(5, int(counts[c]) // 3)
        held.extend(rng.choice(np.flatnonzero(images.labels == c), taken, replace=False).tolist())
        pairs += taken * (taken - 1) // 2
        if pairs >= HELD_OUT_SAME_PAIRS:
            break
    keep = np.setdiff1d(np.arange(len(images.labels)), held)
    return images.subset_indices(keep), images.subset_indices(np.sort(np.asarray(held, dtype=np.int64)))
